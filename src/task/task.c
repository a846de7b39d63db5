/* task: the built-in synthetic math task family (see include/mart/task.h).
 *
 * Why these problems: the demo's tiny byte-level model must solve some but far from all of
 * them after a few minutes of pretraining, and its mistakes must be "near" (a carry, a
 * remainder, a sign), so that a second attempt has a plausible different candidate to try.
 * Answers are short integers; solutions show one or two intermediate steps, the kind of
 * reasoning a small model can imitate. */
#include "mart/task.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void task_item_free(task_item *it) {
    if (!it) return;
    free(it->problem);
    free(it->answer);
    free(it->solution);
    for (int32_t i = 0; i < it->n_attempts; i++) free(it->attempts[i]);
    free(it->attempts);
    memset(it, 0, sizeof *it);
}

void task_items_free(task_item *items, int64_t n) {
    if (!items) return;
    for (int64_t i = 0; i < n; i++) task_item_free(&items[i]);
    free(items);
}

const char *task_kind_name(task_kind k) {
    static const char *const names[TASK_N_KINDS] = {"add", "sub", "mul", "mod", "eq", "word"};
    return (k >= 0 && k < TASK_N_KINDS) ? names[k] : "unknown";
}

static int64_t rr(mart_rng *r, int64_t lo, int64_t hi) { return mart_rng_range(r, lo, hi); }

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) { /* vasprintf fails only when out of memory */
        fprintf(stderr, "mart: out of memory formatting a task\n");
        abort();
    }
    return s;
}

/* Sets the answer and appends the box to the worked steps. */
static void finish(task_item *out, long long answer, char *steps) {
    out->answer = xprintf("%lld", answer);
    out->solution = xprintf("%s \\boxed{%lld}", steps, answer);
    free(steps);
}

static void gen_add(mart_rng *r, int32_t level, task_item *out) {
    long long a, b;
    if (level == 1) a = rr(r, 10, 49), b = rr(r, 2, 9);
    else if (level == 2) a = rr(r, 10, 99), b = rr(r, 10, 99);
    else a = rr(r, 100, 999), b = rr(r, 10, 99);
    out->problem = xprintf("What is %lld + %lld?", a, b);
    if (level == 1) {
        finish(out, a + b, xprintf("%lld + %lld = %lld.", a, b, a + b));
    } else {
        long long tens = b / 10 * 10, ones = b % 10; /* add the tens, then the ones */
        finish(out, a + b, xprintf("%lld + %lld = %lld + %lld = %lld.", a, b, a + tens, ones,
                                   a + b));
    }
}

static void gen_sub(mart_rng *r, int32_t level, task_item *out) {
    long long a, b;
    if (level == 1) a = rr(r, 11, 59), b = rr(r, 2, 9);
    else if (level == 2) a = rr(r, 30, 99), b = rr(r, 10, a - 10);
    else a = rr(r, 100, 999), b = rr(r, 10, 99);
    out->problem = xprintf("What is %lld - %lld?", a, b);
    if (level == 1) {
        finish(out, a - b, xprintf("%lld - %lld = %lld.", a, b, a - b));
    } else {
        long long tens = b / 10 * 10, ones = b % 10;
        finish(out, a - b, xprintf("%lld - %lld = %lld - %lld = %lld.", a, b, a - tens, ones,
                                   a - b));
    }
}

static void gen_mul(mart_rng *r, int32_t level, task_item *out) {
    long long a, b;
    if (level == 1) a = rr(r, 2, 9), b = rr(r, 2, 9);
    else if (level == 2) a = rr(r, 11, 19), b = rr(r, 2, 9);
    else a = rr(r, 21, 59), b = rr(r, 3, 9);
    out->problem = xprintf("What is %lld * %lld?", a, b);
    if (level == 1) {
        finish(out, a * b, xprintf("%lld * %lld = %lld.", a, b, a * b));
    } else {
        long long tens = a / 10 * 10, ones = a % 10;
        finish(out, a * b, xprintf("%lld * %lld = %lld + %lld = %lld.", a, b, tens * b, ones * b,
                                   a * b));
    }
}

static void gen_mod(mart_rng *r, int32_t level, task_item *out) {
    long long a, m;
    /* few possible answers: a wrong remainder leaves few others to try */
    if (level == 1) m = rr(r, 2, 4), a = rr(r, 6, 30);
    else if (level == 2) m = rr(r, 3, 5), a = rr(r, 20, 99);
    else m = rr(r, 3, 6), a = rr(r, 100, 999);
    out->problem = xprintf("What is the remainder when %lld is divided by %lld?", a, m);
    finish(out, a % m, xprintf("%lld = %lld * %lld + %lld.", a, m, a / m, a % m));
}

/* "3x + 7", "3x - 7", "x + 7": the left side of a*x + b. */
static char *lhs(long long a, long long b) {
    char ax[32];
    if (a == 1) snprintf(ax, sizeof ax, "x");
    else snprintf(ax, sizeof ax, "%lldx", a);
    return b >= 0 ? xprintf("%s + %lld", ax, b) : xprintf("%s - %lld", ax, -b);
}

static void gen_eq(mart_rng *r, int32_t level, task_item *out) {
    long long a, b, x;
    if (level == 1) a = 1, x = rr(r, 1, 20), b = rr(r, 1, 20);
    else if (level == 2) a = rr(r, 2, 5), x = rr(r, 1, 12), b = rr(r, 1, 20);
    else a = rr(r, 2, 9), x = rr(r, -9, 12), b = rr(r, -20, 20);
    if (b == 0) b = 1;
    long long c = a * x + b;
    char *l = lhs(a, b);
    out->problem = xprintf("Solve for x: %s = %lld.", l, c);
    free(l);
    /* moving b across: "c - b" or "c + |b|" */
    char *move = b >= 0 ? xprintf("%lld - %lld", c, b) : xprintf("%lld + %lld", c, -b);
    if (a == 1)
        finish(out, x, xprintf("x = %s = %lld.", move, x));
    else
        finish(out, x, xprintf("%lldx = %s = %lld, x = %lld / %lld = %lld.", a, move, a * x,
                               a * x, a, x));
    free(move);
}

static const char *const names[] = {"Tom", "Ann", "Sam", "Lia", "Ben", "Eva", "Max", "Zoe"};
static const char *const objs[] = {"apples", "pens", "cards", "stamps", "marbles", "books"};
#define N_NAMES ((int64_t)(sizeof names / sizeof names[0]))
#define N_OBJS ((int64_t)(sizeof objs / sizeof objs[0]))

static void gen_word(mart_rng *r, int32_t level, task_item *out) {
    const char *n1 = names[rr(r, 0, N_NAMES - 1)];
    const char *n2 = names[rr(r, 0, N_NAMES - 1)];
    while (n2 == n1) n2 = names[rr(r, 0, N_NAMES - 1)];
    const char *o = objs[rr(r, 0, N_OBJS - 1)];
    int64_t form = level == 1 ? rr(r, 0, 1) : level == 2 ? rr(r, 2, 3) : 4;
    long long a, b, c;
    switch (form) {
    case 0: /* add */
        a = rr(r, 5, 60), b = rr(r, 2, 30);
        out->problem = xprintf("%s has %lld %s and buys %lld more. How many %s does %s have now?",
                               n1, a, o, b, o, n1);
        finish(out, a + b, xprintf("%lld + %lld = %lld.", a, b, a + b));
        break;
    case 1: /* sub */
        a = rr(r, 10, 60), b = rr(r, 2, a - 1);
        out->problem = xprintf("%s has %lld %s and gives %lld to %s. How many %s does %s have "
                               "left?", n1, a, o, b, n2, o, n1);
        finish(out, a - b, xprintf("%lld - %lld = %lld.", a, b, a - b));
        break;
    case 2: /* mul */
        a = rr(r, 2, 12), b = rr(r, 2, 9);
        out->problem = xprintf("A box holds %lld %s. How many %s are in %lld boxes?", a, o, o, b);
        finish(out, a * b, xprintf("%lld * %lld = %lld.", a, b, a * b));
        break;
    case 3: /* div */
        a = rr(r, 2, 12), b = rr(r, 2, 9);
        out->problem = xprintf("%s shares %lld %s equally among %lld friends. How many %s does "
                               "each friend get?", n1, a * b, o, b, o);
        finish(out, a, xprintf("%lld / %lld = %lld.", a * b, b, a));
        break;
    default: /* two steps */
        a = rr(r, 3, 12), b = rr(r, 2, 9), c = rr(r, 1, a * b - 1);
        out->problem = xprintf("%s buys %lld packs of %lld %s and gives %lld to %s. How many %s "
                               "does %s have now?", n1, b, a, o, c, n2, o, n1);
        finish(out, a * b - c, xprintf("%lld * %lld = %lld, %lld - %lld = %lld.", b, a, a * b,
                                       a * b, c, a * b - c));
        break;
    }
}

void task_generate_one(mart_rng *r, task_kind kind, int32_t level, task_item *out) {
    memset(out, 0, sizeof *out);
    if (level < 1) level = 1;
    if (level > TASK_MAX_LEVEL) level = TASK_MAX_LEVEL;
    out->kind = kind;
    out->level = level;
    switch (kind) {
    case TASK_ADD: gen_add(r, level, out); break;
    case TASK_SUB: gen_sub(r, level, out); break;
    case TASK_MUL: gen_mul(r, level, out); break;
    case TASK_MOD: gen_mod(r, level, out); break;
    case TASK_EQ: gen_eq(r, level, out); break;
    default: gen_word(r, level, out); break;
    }
}

void task_config_default(task_config *c) {
    c->seed = 0;
    c->n_train = 4000;
    c->n_test = 500;
    c->n_sft = 20000;
    c->sft_retry_frac = 0.1;
    c->sft_repeat = TASK_SOLVER_REPEAT;
}

/* Start of the last whole decimal number (digits not preceded by a digit) that ends before
 * `end` in s, or NULL. */
static const char *last_number(const char *s, const char *end) {
    const char *p = end;
    while (p > s && !(p[-1] >= '0' && p[-1] <= '9')) p--;
    if (p == s) return NULL;
    while (p > s && p[-1] >= '0' && p[-1] <= '9') p--;
    return p;
}

char *task_wrong_solution(const task_item *it, mart_rng *r) {
    long long answer = atoll(it->answer), wrong = answer;
    if (it->kind == TASK_MOD) {
        const char *by = strstr(it->problem, "divided by ");
        long long m = by ? atoll(by + 11) : 0;
        if (m >= 2)
            while (wrong == answer) wrong = mart_rng_range(r, 0, m - 1);
    }
    static const int deltas[] = {-10, -2, -1, 1, 2, 10};
    if (wrong == answer) wrong = answer + deltas[mart_rng_range(r, 0, 5)];
    /* the solution ends "... <answer>. \\boxed{<answer>}": replace both final numbers */
    const char *s = it->solution, *box = strstr(s, "\\boxed{");
    if (!box) return xprintf("%s", s);
    const char *prev = last_number(s, box);
    mart_buf b = {0};
    if (prev && atoll(prev) == llabs(answer)) {
        const char *num = prev > s && prev[-1] == '-' ? prev - 1 : prev;
        mart_buf_append(&b, s, (size_t)(num - s));
        mart_buf_printf(&b, "%lld", wrong);
        const char *after = prev;
        while (*after >= '0' && *after <= '9') after++;
        mart_buf_append(&b, after, (size_t)(box - after));
    } else {
        mart_buf_append(&b, s, (size_t)(box - s));
    }
    mart_buf_printf(&b, "\\boxed{%lld}", wrong);
    return b.data;
}

bool task_attempt_is_target(const char *solution, const char *const *attempts, int32_t a,
                            bool train_slips) {
    return train_slips || !strcmp(attempts[a], solution) ||
           (a > 0 && !strcmp(attempts[a], attempts[a - 1]));
}

/* Turns sft item `it` into a transcript of the independent imperfect solver. */
static void make_transcript(task_item *it, double p_repeat, mart_rng *r) {
    static const double err_by_level[] = {TASK_SOLVER_ERR_L1, TASK_SOLVER_ERR_L2,
                                          TASK_SOLVER_ERR_L3};
    double p_err = err_by_level[it->level - 1];
    it->attempts_allowed = (int32_t)mart_rng_range(r, 1, 5);
    it->attempts = mart_xcalloc((size_t)it->attempts_allowed, sizeof *it->attempts);
    for (int32_t a = 0; a < it->attempts_allowed; a++) {
        if (a > 0 && mart_rng_uniform(r) < p_repeat) {
            it->attempts[it->n_attempts] = xprintf("%s", it->attempts[it->n_attempts - 1]);
            it->n_attempts++;
            continue;
        }
        bool right = mart_rng_uniform(r) >= p_err;
        it->attempts[it->n_attempts++] = right ? xprintf("%s", it->solution)
                                               : task_wrong_solution(it, r);
        if (right) break;
    }
}

/* ---- a set of problem texts (open addressing, FNV-1a) to keep the splits disjoint ---- */

typedef struct {
    const char **keys; /* not owned */
    int64_t cap, n;
} text_set;

static uint64_t fnv1a(const char *s) {
    return mart_fnv1a(MART_FNV_OFFSET, s, strlen(s));
}

/* Inserts s; returns false when it was already there. */
static bool set_add(text_set *t, const char *s) {
    if (2 * (t->n + 1) > t->cap) {
        text_set g = {mart_xcalloc((size_t)(t->cap ? 2 * t->cap : 1024), sizeof(char *)),
                      t->cap ? 2 * t->cap : 1024, 0};
        for (int64_t i = 0; i < t->cap; i++)
            if (t->keys[i]) set_add(&g, t->keys[i]);
        free(t->keys);
        *t = g;
    }
    uint64_t i = fnv1a(s) & (uint64_t)(t->cap - 1);
    while (t->keys[i]) {
        if (!strcmp(t->keys[i], s)) return false;
        i = (i + 1) & (uint64_t)(t->cap - 1);
    }
    t->keys[i] = s;
    t->n++;
    return true;
}

/* The mix of the task: every kind equally often, levels 1..3 equally often. */
static void draw_item(mart_rng *r, task_item *out) {
    task_kind k = (task_kind)rr(r, 0, TASK_N_KINDS - 1);
    int32_t level = (int32_t)rr(r, 1, TASK_MAX_LEVEL);
    task_generate_one(r, k, level, out);
}

static int fill_split(text_set *seen, uint64_t seed, uint64_t stream, int64_t n,
                      task_item **items, const char *split, mart_err *err) {
    mart_rng r;
    mart_rng_seed(&r, seed, stream);
    *items = mart_xcalloc((size_t)(n > 0 ? n : 1), sizeof(task_item));
    /* the space holds millions of problems; a long run of duplicates means it is exhausted */
    int64_t got = 0, misses = 0, max_misses = 100000;
    while (got < n) {
        if (misses > max_misses) {
            task_items_free(*items, got);
            *items = NULL;
            return mart_fail(err, "task: cannot draw %lld distinct %s problems (only %lld after "
                             "%lld duplicates in a row): ask for fewer", (long long)n, split,
                             (long long)got, (long long)max_misses);
        }
        task_item it;
        draw_item(&r, &it);
        if (set_add(seen, it.problem)) {
            (*items)[got++] = it;
            misses = 0;
        } else {
            task_item_free(&it);
            misses++;
        }
    }
    return MART_OK;
}

int task_generate_splits(const task_config *c, task_splits *out, mart_err *err) {
    memset(out, 0, sizeof *out);
    text_set seen = {0};
    int rc = fill_split(&seen, c->seed, 1, c->n_test, &out->test, "test", err);
    if (rc == MART_OK) out->n_test = c->n_test;
    if (rc == MART_OK) rc = fill_split(&seen, c->seed, 2, c->n_train, &out->train, "train", err);
    if (rc == MART_OK) out->n_train = c->n_train;
    if (rc == MART_OK) rc = fill_split(&seen, c->seed, 3, c->n_sft, &out->sft, "sft", err);
    if (rc == MART_OK) {
        out->n_sft = c->n_sft;
        mart_rng r;
        mart_rng_seed(&r, c->seed, 4);
        for (int64_t i = 0; i < out->n_sft; i++)
            if (mart_rng_uniform(&r) < c->sft_retry_frac)
                make_transcript(&out->sft[i], c->sft_repeat, &r);
    }
    free(seen.keys);
    if (rc != MART_OK) task_splits_free(out);
    return rc;
}

void task_splits_free(task_splits *s) {
    task_items_free(s->train, s->n_train);
    task_items_free(s->test, s->n_test);
    task_items_free(s->sft, s->n_sft);
    memset(s, 0, sizeof *s);
}

int task_write_jsonl(const char *path, const task_item *items, int64_t n, mart_err *err) {
    mart_buf b = {0};
    for (int64_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        mart_json_add_string(o, "problem", items[i].problem);
        mart_json_add_string(o, "answer", items[i].answer);
        mart_json_add_string(o, "solution", items[i].solution);
        cJSON_AddStringToObject(o, "type", task_kind_name(items[i].kind));
        cJSON_AddNumberToObject(o, "level", items[i].level);
        if (items[i].n_attempts > 0) {
            cJSON_AddNumberToObject(o, "attempts_allowed", items[i].attempts_allowed);
            cJSON_AddItemToObject(o, "attempts",
                                  cJSON_CreateStringArray((const char *const *)items[i].attempts,
                                                          items[i].n_attempts));
        }
        char *s = cJSON_PrintUnformatted(o);
        mart_buf_append(&b, s, strlen(s));
        mart_buf_append(&b, "\n", 1);
        free(s);
        cJSON_Delete(o);
    }
    int rc = mart_write_file_atomic(path, b.data ? b.data : "", b.len, err);
    mart_buf_free(&b);
    return rc;
}

int task_write_splits(const task_config *c, const char *dir, mart_err *err) {
    task_splits s;
    if (mart_mkdirs(dir, err) != MART_OK || task_generate_splits(c, &s, err) != MART_OK)
        return MART_ERR;
    const char *files[3] = {"train.jsonl", "test.jsonl", "sft.jsonl"};
    const task_item *items[3] = {s.train, s.test, s.sft};
    int64_t n[3] = {s.n_train, s.n_test, s.n_sft};
    int rc = MART_OK;
    char path[4096];
    for (int i = 0; i < 3 && rc == MART_OK; i++)
        rc = task_write_jsonl(mart_path_join(path, sizeof path, dir, files[i]), items[i], n[i],
                              err);
    task_splits_free(&s);
    return rc;
}
