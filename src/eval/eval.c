/* Evaluation by number of attempts: benchmark loading, the resumable work list, transcripts,
 * results.json, the table and the figure. Generation goes through an eval_runner so that
 * tests can drive the whole harness with a scripted policy. */
#include "mart/eval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mart/data.h"

/* Sequences decoded together (the engine's slots), and batches per runner call. Episodes
 * are written to transcripts.jsonl as they finish, so the wave size only bounds how long a
 * stop request (Ctrl-C) waits and how much memory finished episodes hold. */
#define EVAL_BATCH 32
#define EVAL_WAVE 8

void eval_config_default(eval_config *c) {
    memset(c, 0, sizeof *c);
    c->batch = EVAL_BATCH;
    env_config_default(&c->env);
    c->env.max_tokens = EVAL_MAX_TOKENS;
    c->env.min_attempts = c->env.max_attempts = 1;
    gen_params_default(&c->sampling);
    c->sampling.temperature = 0; /* greedy (SPEC §5) */
    c->sampling.top_p = 1;
    c->sampling.top_k = 0;
    c->sampling.seed = 0;
    c->progress = true;
}

void eval_results_free(eval_results *r) {
    if (!r) return;
    for (int32_t b = 0; b < r->n_benches; b++) {
        free(r->benches[b].name);
        free(r->benches[b].accuracy);
    }
    free(r->benches);
    free(r->ks);
    free(r->average);
    free(r->model);
    memset(r, 0, sizeof *r);
}

int eval_parse_ks(const char *spec, int32_t **ks, int32_t *n, mart_err *err) {
    int32_t *a = NULL, cnt = 0;
    const char *s = spec;
    while (s && *s) {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s) goto bad;
        if (*end == '-') {
            const char *t = end + 1;
            hi = strtol(t, &end, 10);
            if (end == t) goto bad;
        }
        if (lo < 1 || hi < lo || hi > 1000) goto bad;
        for (long k = lo; k <= hi; k++) {
            if (cnt && k <= a[cnt - 1]) goto bad;
            a = mart_xrealloc(a, (size_t)(cnt + 1) * sizeof *a);
            a[cnt++] = (int32_t)k;
        }
        if (*end == ',')
            end++;
        else if (*end)
            goto bad;
        s = end;
    }
    if (!cnt) goto bad;
    *ks = a;
    *n = cnt;
    return MART_OK;
bad:
    free(a);
    return mart_fail(err, "attempts '%s': expected increasing positive numbers like 1-7 or 1,2,5",
                     spec ? spec : "");
}

/* ---- benchmarks ---- */

typedef struct {
    char *name;            /* results key */
    env_problem *problems; /* (n) strings owned */
    int32_t n;
} eval_set;

static void set_free(eval_set *s) {
    for (int32_t i = 0; i < s->n; i++) {
        free((char *)s->problems[i].question);
        free((char *)s->problems[i].gold);
    }
    free(s->problems);
    free(s->name);
    memset(s, 0, sizeof *s);
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int load_set(const eval_config *cfg, const char *spec, eval_set *set, mart_err *err) {
    memset(set, 0, sizeof *set);
    bool is_file = has_suffix(spec, ".jsonl") || strchr(spec, '/');
    char path[8192], dir[4096];
    const char *bench = NULL;
    if (is_file) {
        snprintf(path, sizeof path, "%s", spec);
        const char *base = strrchr(spec, '/') ? strrchr(spec, '/') + 1 : spec;
        set->name = mart_xstrdup(base);
        if (has_suffix(set->name, ".jsonl")) set->name[strlen(set->name) - 6] = 0;
    } else {
        if (data_dir_resolve(cfg->data_dir, dir, sizeof dir, err) != MART_OK ||
            data_bench_path(dir, spec, path, sizeof path, err) != MART_OK)
            return MART_ERR;
        if (!mart_path_exists(path))
            return mart_fail(err, "benchmark '%s': %s not found (mart data get %s fetches it)",
                             spec, path, spec);
        set->name = mart_xstrdup(spec);
        bench = spec;
    }
    const char *qkey = cfg->question_key;
    if (!qkey && bench && (!strcmp(bench, "olympiadbench") || !strcmp(bench, "gsm8k")))
        qkey = "question";
    mart_jsonl r;
    if (mart_jsonl_open(&r, path, err) != MART_OK) {
        free(set->name);
        set->name = NULL;
        return MART_ERR;
    }
    int rc = MART_OK;
    int32_t cap = 0;
    for (;;) {
        if (cfg->limit > 0 && set->n >= cfg->limit) break;
        cJSON *rec = NULL;
        int got = mart_jsonl_next(&r, &rec, err);
        if (got == 0) break;
        if (got < 0) {
            rc = MART_ERR;
            break;
        }
        const char *keys[2] = {qkey ? qkey : "problem", qkey ? NULL : "question"};
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, keys[0]);
        if (!cJSON_IsString(q) && keys[1]) q = cJSON_GetObjectItemCaseSensitive(rec, keys[1]);
        char *gold = NULL;
        if (!cJSON_IsString(q))
            rc =
                mart_fail(err, "%s:%lld: no string field \"%s\"", path, (long long)r.line, keys[0]);
        else if (grade_gold_answer(rec, bench, cfg->answer_key, &gold, err) != MART_OK)
            rc = mart_fail_wrap(err, "%s:%lld", path, (long long)r.line);
        if (rc == MART_OK) {
            if (set->n == cap) {
                cap = cap ? 2 * cap : 64;
                set->problems = mart_xrealloc(set->problems, (size_t)cap * sizeof *set->problems);
            }
            set->problems[set->n].question = mart_xstrdup(q->valuestring);
            set->problems[set->n].gold = gold;
            set->n++;
        }
        cJSON_Delete(rec);
        if (rc != MART_OK) break;
    }
    mart_jsonl_close(&r);
    if (rc == MART_OK && set->n == 0) rc = mart_fail(err, "%s: no problems", path);
    if (rc != MART_OK) set_free(set);
    return rc;
}

static int load_sets(const eval_config *cfg, eval_set **out, int32_t *n_out, mart_err *err) {
    int32_t n = cfg->problems ? 1 : cfg->n_benches;
    if (n <= 0) return mart_fail(err, "no benchmark to evaluate");
    eval_set *sets = mart_xcalloc((size_t)n, sizeof *sets);
    if (cfg->problems) {
        eval_set *s = &sets[0];
        s->name = mart_xstrdup(cfg->problems_name ? cfg->problems_name : "custom");
        s->n = cfg->limit > 0 && cfg->limit < cfg->n_problems ? cfg->limit : cfg->n_problems;
        s->problems = mart_xcalloc((size_t)s->n + 1, sizeof *s->problems);
        for (int32_t i = 0; i < s->n; i++) {
            s->problems[i].question = mart_xstrdup(cfg->problems[i].question);
            s->problems[i].gold = mart_xstrdup(cfg->problems[i].gold);
        }
    } else {
        for (int32_t b = 0; b < n; b++)
            if (load_set(cfg, cfg->benches[b], &sets[b], err) != MART_OK) {
                for (int32_t j = 0; j < b; j++)
                    set_free(&sets[j]);
                free(sets);
                return MART_ERR;
            }
        for (int32_t b = 0; b < n; b++)
            for (int32_t j = 0; j < b; j++)
                if (!strcmp(sets[b].name, sets[j].name)) {
                    mart_fail(err, "benchmark '%s' given twice", sets[b].name);
                    for (int32_t k = 0; k < n; k++)
                        set_free(&sets[k]);
                    free(sets);
                    return MART_ERR;
                }
    }
    *out = sets;
    *n_out = n;
    return MART_OK;
}

/* ---- transcripts: one JSON line per episode; the resume state ---- */

static int32_t k_index(const eval_config *cfg, int64_t k) {
    for (int32_t j = 0; j < cfg->n_ks; j++)
        if (cfg->ks[j] == k) return j;
    return -1;
}

/* What makes two evaluations of the same (problem, k) interchangeable. */
static void setting_key(const eval_config *cfg, char *buf, size_t cap) {
    const env_config *e = &cfg->env;
    const char *prompt = e->system_template || e->feedback_template ? "custom"
                         : e->baseline_prompt                       ? "baseline"
                         : e->repeat_question                       ? "repeat"
                                                                    : "multi";
    snprintf(buf, cap, "model=%s;prompt=%s;max_tokens=%d;chunk=%d;temperature=%g;seed=%llu",
             cfg->model_name ? cfg->model_name : "model", prompt, e->max_tokens, e->chunk,
             (double)cfg->sampling.temperature, (unsigned long long)cfg->sampling.seed);
}

/* state[b][j*n + i]: -1 not done, 0 wrong, 1 solved. Reads path (if any), keeps lines that
 * match this configuration, and cuts a torn last line (a crash mid-write) off the file. */
static int resume_read(const char *path, const eval_config *cfg, const char *setting,
                       eval_set *sets, int32_t n_sets, int8_t **state, int64_t *n_resumed,
                       int64_t *n_correct, mart_err *err) {
    *n_resumed = *n_correct = 0;
    if (!mart_path_exists(path)) return MART_OK;
    char *data = NULL;
    size_t len = 0;
    if (mart_read_file(path, &data, &len, err) != MART_OK) return MART_ERR;
    size_t keep = len;
    while (keep > 0 && data[keep - 1] != '\n')
        keep--;
    if (keep < len && truncate(path, (off_t)keep) != 0) {
        free(data);
        return mart_fail(err, "%s: cannot cut the torn last line: %s", path, strerror(errno));
    }
    data[keep] = 0;
    int64_t line = 0;
    for (char *s = data; *s;) {
        char *nl = strchr(s, '\n');
        *nl = 0;
        line++;
        if (!*s) {
            s = nl + 1;
            continue;
        }
        cJSON *o = cJSON_Parse(s);
        s = nl + 1;
        if (!o) {
            free(data);
            return mart_fail(err, "%s:%lld: malformed JSON (delete the line to go on)", path,
                             (long long)line);
        }
        const cJSON *bench = cJSON_GetObjectItemCaseSensitive(o, "bench");
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(o, "index");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "k");
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "setting");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "correct");
        int32_t b = -1, j = cJSON_IsNumber(k) ? k_index(cfg, (int64_t)k->valuedouble) : -1;
        for (int32_t t = 0; cJSON_IsString(bench) && t < n_sets; t++)
            if (!strcmp(sets[t].name, bench->valuestring)) b = t;
        /* Only episodes of this very evaluation count: same problem text, same setting. */
        if (b >= 0 && j >= 0 && cJSON_IsNumber(idx) && cJSON_IsString(set) && cJSON_IsString(q) &&
            cJSON_IsBool(ok) && !strcmp(set->valuestring, setting)) {
            int64_t i = (int64_t)idx->valuedouble;
            if (i >= 0 && i < sets[b].n && !strcmp(sets[b].problems[i].question, q->valuestring)) {
                int8_t *st = &state[b][(int64_t)j * sets[b].n + i];
                if (*st < 0) {
                    (*n_resumed)++;
                    *n_correct += cJSON_IsTrue(ok);
                }
                *st = cJSON_IsTrue(ok) ? 1 : 0;
            }
        }
        cJSON_Delete(o);
    }
    free(data);
    return MART_OK;
}

static cJSON *transcript_line(const eval_set *set, int32_t index, int32_t k, const env_episode *ep,
                              const eval_config *cfg, const char *setting) {
    cJSON *o = cJSON_CreateObject();
    mart_json_add_string(o, "bench", set->name);
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddNumberToObject(o, "k", k);
    mart_json_add_string(o, "question", set->problems[index].question);
    mart_json_add_string(o, "gold", set->problems[index].gold);
    cJSON *atts = cJSON_AddArrayToObject(o, "attempts");
    for (int32_t a = 0; a < ep->n_attempts; a++) {
        const env_attempt *at = &ep->attempts[a];
        cJSON *x = cJSON_CreateObject();
        mart_json_add_string(x, "text", at->text);
        if (at->answer)
            mart_json_add_string(x, "answer", at->answer);
        else
            cJSON_AddNullToObject(x, "answer");
        cJSON_AddStringToObject(x, "status", env_attempt_status_name(at->status));
        cJSON_AddBoolToObject(x, "correct", at->status == ENV_ATTEMPT_RIGHT);
        cJSON_AddNumberToObject(x, "tokens", at->n_tokens);
        cJSON_AddItemToArray(atts, x);
    }
    cJSON_AddNumberToObject(o, "attempts_used", ep->n_attempts);
    cJSON_AddBoolToObject(o, "correct", ep->correct);
    cJSON_AddNumberToObject(o, "reward", ep->reward);
    cJSON_AddNumberToObject(o, "tokens", ep->n_sampled);
    cJSON_AddNumberToObject(o, "max_tokens", cfg->env.max_tokens);
    cJSON_AddStringToObject(o, "setting", setting);
    return o;
}

/* ---- the run ---- */

typedef struct {
    int32_t set, kj, index;
} work_item;

/* The sampling stream of an episode: its benchmark, problem and attempts allowed, never its
 * place in the work list (which a resumed run changes). */
static uint64_t episode_stream(const work_item *w, int32_t attempts) {
    return ((uint64_t)w->set << 48) ^ ((uint64_t)(uint32_t)attempts << 32) ^ (uint64_t)w->index;
}

/* Everything an episode's completion touches: the resume state, the transcript, the counts
 * and the progress bar. Episodes are recorded as they finish, so an interrupted wave loses
 * only the episodes still running. */
typedef struct {
    const eval_config *cfg;
    const char *setting;
    eval_set *sets;
    int8_t **state;
    const work_item *wave; /* the items of the runner call in progress */
    bool *recorded;        /* (wave size) */
    eval_results *res;
    FILE *tf; /* transcripts.jsonl or NULL */
    const char *tpath;
    double last_sync;
    int io_rc;
    mart_err io_err;
    mart_progress bar;
    bool bar_on;
    int64_t correct;              /* this call */
    int64_t prior, prior_correct; /* resumed */
} eval_ctx;

/* Transcript lines are flushed at once and synced to disk at most every few seconds. */
#define EVAL_SYNC_SECONDS 2.0

static int sync_transcripts(eval_ctx *c) {
    if (!c->tf || c->io_rc != MART_OK) return c->io_rc;
    if (fflush(c->tf) != 0 || fsync(fileno(c->tf)) != 0)
        c->io_rc = mart_fail(&c->io_err, "%s: write failed: %s", c->tpath, strerror(errno));
    c->last_sync = mart_now();
    return c->io_rc;
}

static void record_episode(eval_ctx *c, int32_t i, const env_episode *ep) {
    const work_item *it = &c->wave[i];
    const eval_set *set = &c->sets[it->set];
    c->recorded[i] = true;
    c->state[it->set][(int64_t)it->kj * set->n + it->index] = ep->correct;
    c->res->episodes_run++;
    c->res->tokens_sampled += ep->n_sampled;
    c->correct += ep->correct;
    if (c->tf && c->io_rc == MART_OK) {
        cJSON *o = transcript_line(set, it->index, c->cfg->ks[it->kj], ep, c->cfg, c->setting);
        mart_json_print_line(c->tf, o);
        cJSON_Delete(o);
        bool injected = mart_fault(MART_FAULT_WRITE);
        if (injected || fflush(c->tf) != 0)
            c->io_rc = mart_fail(&c->io_err, "%s: write failed: %s", c->tpath,
                                 strerror(injected ? ENOSPC : errno));
        else if (mart_now() - c->last_sync > EVAL_SYNC_SECONDS)
            sync_transcripts(c);
    }
    if (!c->bar_on) return;
    double el = mart_now() - c->bar.t_start;
    int64_t done = c->res->episodes_run, all = done + c->prior;
    char extra[128];
    snprintf(extra, sizeof extra, "acc %.1f%% | %.0f tok/s",
             all ? 100.0 * (double)(c->correct + c->prior_correct) / (double)all : 0.0,
             el > 0 ? (double)c->res->tokens_sampled / el : 0.0);
    mart_progress_update(&c->bar, done, extra);
}

/* Records the episode; a failed write (a full disk) or a stop request halts the wave at once
 * rather than generating episodes that could not be kept. */
static bool on_episode_done(void *ctx, int32_t i, const env_episode *ep) {
    eval_ctx *c = ctx;
    record_episode(c, i, ep);
    return c->io_rc == MART_OK && !mart_stop_requested();
}

int eval_run_with(eval_runner run, void *run_ctx, const tok_tokenizer *tok, const eval_config *cfg,
                  const char *out_dir, eval_results *res, mart_err *err) {
    memset(res, 0, sizeof *res);
    if (cfg->n_ks <= 0) return mart_fail(err, "no number of attempts to evaluate");
    double t0 = mart_now();
    eval_set *sets = NULL;
    int32_t n_sets = 0;
    if (load_sets(cfg, &sets, &n_sets, err) != MART_OK) return MART_ERR;
    int8_t **state = mart_xcalloc((size_t)n_sets, sizeof *state);
    for (int32_t b = 0; b < n_sets; b++) {
        size_t cells = (size_t)cfg->n_ks * (size_t)sets[b].n;
        state[b] = mart_xmalloc(cells);
        memset(state[b], 0xff, cells);
    }
    int rc = MART_OK;
    char tpath[4096] = "", setting[1024];
    setting_key(cfg, setting, sizeof setting);
    eval_ctx c = {.cfg = cfg,
                  .setting = setting,
                  .sets = sets,
                  .state = state,
                  .res = res,
                  .tpath = tpath,
                  .last_sync = mart_now()};
    if (out_dir) {
        rc = mart_mkdirs(out_dir, err);
        mart_path_join(tpath, sizeof tpath, out_dir, "transcripts.jsonl");
        if (rc == MART_OK)
            rc = resume_read(tpath, cfg, setting, sets, n_sets, state, &c.prior, &c.prior_correct,
                             err);
        if (rc == MART_OK && !(c.tf = fopen(tpath, "ab")))
            rc = mart_fail(err, "%s: cannot open for appending: %s", tpath, strerror(errno));
    }

    /* The work list: every (benchmark, problem, k) not yet done. A problem's k runs sit side
     * by side, so where their prompts are identical (the baseline prompt does not state k)
     * they land in one batch and the engine prefills the prompt once. */
    work_item *work = NULL;
    int64_t n_work = 0;
    for (int32_t b = 0; rc == MART_OK && b < n_sets; b++)
        for (int32_t i = 0; i < sets[b].n; i++)
            for (int32_t j = 0; j < cfg->n_ks; j++)
                if (state[b][(int64_t)j * sets[b].n + i] < 0) {
                    work = mart_xrealloc(work, (size_t)(n_work + 1) * sizeof *work);
                    work[n_work++] = (work_item){b, j, i};
                }

    /* Each runner call gets a wave of several batches: the engine refills a finished
     * episode's slot at once, so only the wave's tail runs below full batch. */
    int32_t wave = (cfg->batch > 0 ? cfg->batch : EVAL_BATCH) * EVAL_WAVE;
    env_problem *probs = mart_xcalloc((size_t)wave, sizeof *probs);
    int32_t *atts = mart_xcalloc((size_t)wave, sizeof *atts);
    uint64_t *streams = mart_xcalloc((size_t)wave, sizeof *streams);
    env_episode *eps = mart_xcalloc((size_t)wave, sizeof *eps);
    c.recorded = mart_xcalloc((size_t)wave, sizeof *c.recorded);
    c.bar_on = cfg->progress && n_work > 0;
    if (c.bar_on) mart_progress_start(&c.bar, "eval", n_work);
    for (int64_t w = 0; rc == MART_OK && w < n_work; w += wave) {
        if (mart_stop_requested()) {
            rc = mart_fail(err,
                           "interrupted after %lld of %lld episodes; rerun the same "
                           "command to resume",
                           (long long)res->episodes_run, (long long)n_work);
            break;
        }
        int32_t m = (int32_t)(n_work - w < wave ? n_work - w : wave);
        for (int32_t t = 0; t < m; t++) {
            probs[t] = sets[work[w + t].set].problems[work[w + t].index];
            atts[t] = cfg->ks[work[w + t].kj];
            streams[t] = episode_stream(&work[w + t], atts[t]);
            c.recorded[t] = false;
        }
        c.wave = &work[w];
        rc = run(run_ctx, tok, &cfg->env, probs, atts, m, &cfg->sampling, streams,
                 on_episode_done, &c, eps, err);
        if (rc != MART_OK) { /* a halted wave: say why */
            if (c.io_rc != MART_OK)
                mart_fail(err, "%s", c.io_err.msg);
            else if (mart_stop_requested())
                mart_fail(err, "interrupted after %lld of %lld episodes; rerun the same command "
                               "to resume",
                          (long long)res->episodes_run, (long long)n_work);
            break;
        }
        for (int32_t t = 0; t < m; t++) {
            if (!c.recorded[t]) record_episode(&c, t, &eps[t]);
            env_episode_free(&eps[t]);
        }
        if (sync_transcripts(&c) != MART_OK) rc = mart_fail(err, "%s", c.io_err.msg);
    }
    if (c.bar_on) mart_progress_finish(&c.bar);
    free(probs);
    free(atts);
    free(streams);
    free(eps);
    free(c.recorded);
    free(work);
    if (c.tf && fclose(c.tf) != 0 && rc == MART_OK)
        rc = mart_fail(err, "%s: close failed: %s", tpath, strerror(errno));

    if (rc == MART_OK) {
        res->model = mart_xstrdup(cfg->model_name ? cfg->model_name : "model");
        res->n_ks = cfg->n_ks;
        res->ks = mart_xmalloc((size_t)cfg->n_ks * sizeof *res->ks);
        memcpy(res->ks, cfg->ks, (size_t)cfg->n_ks * sizeof *res->ks);
        res->n_benches = n_sets;
        res->benches = mart_xcalloc((size_t)n_sets, sizeof *res->benches);
        res->average = mart_xcalloc((size_t)cfg->n_ks, sizeof *res->average);
        for (int32_t b = 0; b < n_sets; b++) {
            eval_bench *eb = &res->benches[b];
            eb->name = mart_xstrdup(sets[b].name);
            eb->n = sets[b].n;
            eb->accuracy = mart_xcalloc((size_t)cfg->n_ks, sizeof *eb->accuracy);
            for (int32_t j = 0; j < cfg->n_ks; j++) {
                int64_t solved = 0;
                for (int32_t i = 0; i < sets[b].n; i++)
                    solved += state[b][(int64_t)j * sets[b].n + i] == 1;
                eb->accuracy[j] = (double)solved / (double)sets[b].n;
                res->average[j] += eb->accuracy[j] / n_sets;
            }
        }
        res->episodes_resumed = c.prior;
        res->seconds = mart_now() - t0;
        if (out_dir) {
            char path[4096];
            rc = eval_results_save(res, mart_path_join(path, sizeof path, out_dir, "results.json"),
                                   err);
        }
        if (rc == MART_OK && !cfg->quiet) eval_print_table(res, stdout);
        if (rc != MART_OK) eval_results_free(res);
    }
    for (int32_t b = 0; b < n_sets; b++) {
        free(state[b]);
        set_free(&sets[b]);
    }
    free(state);
    free(sets);
    return rc;
}

static int engine_runner(void *ctx, const tok_tokenizer *tok, const env_config *cfg,
                         const env_problem *problems, const int32_t *attempts, int32_t n,
                         const gen_params *p, const uint64_t *streams, env_done_fn on_done,
                         void *done_ctx, env_episode *out, mart_err *err) {
    return env_run_ex(ctx, tok, cfg, problems, attempts, n, p, streams, on_done, done_ctx, out,
                      err);
}

int eval_run_engine(gen_engine *g, const tok_tokenizer *tok, const eval_config *cfg,
                    const char *out_dir, eval_results *res, mart_err *err) {
    return eval_run_with(engine_runner, g, tok, cfg, out_dir, res, err);
}

/* The longest sequence an episode can reach: prompt with the largest k, k-1 feedback turns
 * (their length grows with the question in the repeat-question variant), the token budget. */
static int longest_episode(const tok_tokenizer *tok, const eval_config *cfg, int32_t *out,
                           mart_err *err) {
    eval_set *sets = NULL;
    int32_t n_sets = 0, kmax = cfg->ks[cfg->n_ks - 1], longest = 0;
    if (load_sets(cfg, &sets, &n_sets, err) != MART_OK) return MART_ERR;
    int rc = MART_OK;
    for (int32_t b = 0; rc == MART_OK && b < n_sets; b++)
        for (int32_t i = 0; rc == MART_OK && i < sets[b].n; i++) {
            int32_t *ids = NULL, np = 0, nf = 0;
            rc = env_build_prompt(tok, &cfg->env, sets[b].problems[i].question, kmax, &ids, &np,
                                  err);
            free(ids);
            ids = NULL;
            if (rc == MART_OK && kmax > 1)
                rc = env_build_feedback(tok, &cfg->env, sets[b].problems[i].question, kmax - 1,
                                        false, &ids, &nf, err);
            free(ids);
            int32_t len = np + (kmax - 1) * nf;
            if (len > longest) longest = len;
        }
    for (int32_t b = 0; b < n_sets; b++)
        set_free(&sets[b]);
    free(sets);
    *out = longest + cfg->env.max_tokens;
    return rc;
}

int eval_run(model *m, const tok_tokenizer *tok, const eval_config *cfg, const char *out_dir,
             eval_results *res, mart_err *err) {
    memset(res, 0, sizeof *res);
    if (cfg->n_ks <= 0) return mart_fail(err, "no number of attempts to evaluate");
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = cfg->batch > 0 ? cfg->batch : EVAL_BATCH;
    if (cfg->kv_budget_mb > 0) gc.kv_budget_mb = cfg->kv_budget_mb;
    if (longest_episode(tok, cfg, &gc.max_len, err) != MART_OK) return MART_ERR;
    gen_engine *g = NULL;
    if (gen_create(m, &gc, &g, err) != MART_OK) return mart_fail_wrap(err, "evaluation engine");
    int rc = eval_run_engine(g, tok, cfg, out_dir, res, err);
    gen_free(g);
    return rc;
}

/* ---- results.json, table, figure ---- */

int eval_results_save(const eval_results *r, const char *path, mart_err *err) {
    cJSON *o = cJSON_CreateObject();
    mart_json_add_string(o, "model", r->model ? r->model : "model");
    cJSON *bs = cJSON_AddObjectToObject(o, "benchmarks");
    char key[16];
    for (int32_t b = 0; b < r->n_benches; b++) {
        cJSON *x = cJSON_AddObjectToObject(bs, r->benches[b].name);
        cJSON_AddNumberToObject(x, "n", r->benches[b].n);
        cJSON *acc = cJSON_AddObjectToObject(x, "accuracy");
        for (int32_t j = 0; j < r->n_ks; j++) {
            snprintf(key, sizeof key, "%d", r->ks[j]);
            cJSON_AddNumberToObject(acc, key, r->benches[b].accuracy[j]);
        }
    }
    cJSON *avg = cJSON_AddObjectToObject(o, "average");
    for (int32_t j = 0; j < r->n_ks; j++) {
        snprintf(key, sizeof key, "%d", r->ks[j]);
        cJSON_AddNumberToObject(avg, key, r->average[j]);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    mart_buf b = {0};
    mart_buf_printf(&b, "%s\n", s);
    cJSON_free(s);
    int rc = mart_write_file_atomic(path, b.data, b.len, err);
    mart_buf_free(&b);
    return rc;
}

/* Reads {"1":0.4,"2":0.5} into acc aligned with ks; a missing k reads as NaN. */
static void read_acc(const cJSON *obj, const int32_t *ks, int32_t n, double *acc) {
    char key[16];
    for (int32_t j = 0; j < n; j++) {
        snprintf(key, sizeof key, "%d", ks[j]);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        acc[j] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    }
}

int eval_results_load(const char *path, eval_results *r, mart_err *err) {
    memset(r, 0, sizeof *r);
    char *data = NULL;
    size_t len = 0;
    if (mart_read_file(path, &data, &len, err) != MART_OK) return MART_ERR;
    cJSON *o = cJSON_Parse(data);
    free(data);
    if (!o) return mart_fail(err, "%s: malformed JSON", path);
    const cJSON *model_name = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "benchmarks");
    const cJSON *avg = cJSON_GetObjectItemCaseSensitive(o, "average");
    if (!cJSON_IsObject(bs) || !cJSON_IsObject(avg)) {
        cJSON_Delete(o);
        return mart_fail(err, "%s: needs objects \"benchmarks\" and \"average\"", path);
    }
    r->model = mart_xstrdup(cJSON_IsString(model_name) ? model_name->valuestring : path);
    /* The ks are the keys of "average", in increasing order. */
    for (const cJSON *e = avg->child; e; e = e->next) {
        char *end;
        long k = strtol(e->string, &end, 10);
        if (*end || k < 1 || !cJSON_IsNumber(e)) {
            cJSON_Delete(o);
            eval_results_free(r);
            return mart_fail(err, "%s: average: bad entry \"%s\"", path, e->string);
        }
        int32_t at = r->n_ks;
        r->ks = mart_xrealloc(r->ks, (size_t)(r->n_ks + 1) * sizeof *r->ks);
        while (at > 0 && r->ks[at - 1] > k) {
            r->ks[at] = r->ks[at - 1];
            at--;
        }
        r->ks[at] = (int32_t)k;
        r->n_ks++;
    }
    r->average = mart_xcalloc((size_t)r->n_ks + 1, sizeof *r->average);
    read_acc(avg, r->ks, r->n_ks, r->average);
    for (const cJSON *e = bs->child; e; e = e->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "n");
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(e, "accuracy");
        if (!cJSON_IsNumber(n) || !cJSON_IsObject(acc)) {
            cJSON_Delete(o);
            eval_results_free(r);
            return mart_fail(err, "%s: benchmarks.%s: needs \"n\" and \"accuracy\"", path,
                             e->string);
        }
        r->benches = mart_xrealloc(r->benches, (size_t)(r->n_benches + 1) * sizeof *r->benches);
        eval_bench *eb = &r->benches[r->n_benches++];
        eb->name = mart_xstrdup(e->string);
        eb->n = (int32_t)n->valuedouble;
        eb->accuracy = mart_xcalloc((size_t)r->n_ks + 1, sizeof *eb->accuracy);
        read_acc(acc, r->ks, r->n_ks, eb->accuracy);
    }
    cJSON_Delete(o);
    return MART_OK;
}

void eval_print_table(const eval_results *r, FILE *f) {
    fprintf(f, "%-16s %6s", "benchmark", "n");
    for (int32_t j = 0; j < r->n_ks; j++) {
        char h[16];
        snprintf(h, sizeof h, "k=%d", r->ks[j]);
        fprintf(f, "  %6s", h);
    }
    fprintf(f, "\n");
    for (int32_t b = 0; b < r->n_benches; b++) {
        fprintf(f, "%-16s %6d", r->benches[b].name, r->benches[b].n);
        for (int32_t j = 0; j < r->n_ks; j++)
            fprintf(f, "  %5.1f%%", 100 * r->benches[b].accuracy[j]);
        fprintf(f, "\n");
    }
    fprintf(f, "%-16s %6s", "average", "");
    for (int32_t j = 0; j < r->n_ks; j++)
        fprintf(f, "  %5.1f%%", 100 * r->average[j]);
    fprintf(f, "\n");
}

