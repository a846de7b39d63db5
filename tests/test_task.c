/* task: every generated answer checked by an independent solver that reads the problem text,
 * solutions end in the boxed answer, splits are disjoint, the seed fixes the output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "mart/task.h"

/* Reads every integer of s in order (a '-' directly before a digit is a sign). */
static int ints(const char *s, long long *v, int cap) {
    int n = 0;
    for (const char *p = s; *p && n < cap;) {
        if ((*p >= '0' && *p <= '9') || (*p == '-' && p[1] >= '0' && p[1] <= '9')) {
            char *end;
            v[n++] = strtoll(p, &end, 10);
            p = end;
        } else {
            p++;
        }
    }
    return n;
}

/* Solves a problem from its text alone; returns false when the text is not understood. */
static bool solve(const char *q, long long *ans) {
    long long v[8];
    int n = ints(q, v, 8);
    long long a, b, c;
    char op;
    if (sscanf(q, "What is %lld %c %lld?", &a, &op, &b) == 3) {
        *ans = op == '+' ? a + b : op == '-' ? a - b : a * b;
        return op == '+' || op == '-' || op == '*';
    }
    if (sscanf(q, "What is the remainder when %lld is divided by %lld?", &a, &b) == 2) {
        *ans = a % b;
        return true;
    }
    if (!strncmp(q, "Solve for x: ", 13)) {
        const char *e = q + 13;
        a = 1;
        if (*e != 'x') a = strtoll(e, (char **)&e, 10);
        if (*e != 'x') return false;
        char sign;
        if (sscanf(e, "x %c %lld = %lld.", &sign, &b, &c) != 3) return false;
        if (sign == '-') b = -b;
        if ((c - b) % a) return false;
        *ans = (c - b) / a;
        return true;
    }
    if (strstr(q, "packs of") && n == 3) { *ans = v[0] * v[1] - v[2]; return true; }
    if (strstr(q, "and buys") && n == 2) { *ans = v[0] + v[1]; return true; }
    if (strstr(q, "and gives") && n == 2) { *ans = v[0] - v[1]; return true; }
    if (strstr(q, "A box holds") && n == 2) { *ans = v[0] * v[1]; return true; }
    if (strstr(q, "equally among") && n == 2) {
        if (v[0] % v[1]) return false;
        *ans = v[0] / v[1];
        return true;
    }
    return false;
}

static void every_kind_and_level_has_an_independently_verified_answer(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 7, 0);
    for (int k = 0; k < TASK_N_KINDS; k++)
        for (int level = 1; level <= TASK_MAX_LEVEL; level++)
            for (int i = 0; i < 300; i++) {
                task_item it;
                task_generate_one(&r, (task_kind)k, level, &it);
                long long want = 0;
                if (!solve(it.problem, &want)) fail_msg("not understood: %s", it.problem);
                char buf[32];
                snprintf(buf, sizeof buf, "%lld", want);
                if (strcmp(buf, it.answer))
                    fail_msg("%s: answer %s, independent solver %s", it.problem, it.answer, buf);
                task_item_free(&it);
            }
}

static void solutions_end_in_the_boxed_answer(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 3, 0);
    for (int k = 0; k < TASK_N_KINDS; k++)
        for (int level = 1; level <= TASK_MAX_LEVEL; level++) {
            task_item it;
            task_generate_one(&r, (task_kind)k, level, &it);
            char box[64];
            snprintf(box, sizeof box, "\\boxed{%s}", it.answer);
            size_t ls = strlen(it.solution), lb = strlen(box);
            assert_true(ls > lb);
            assert_string_equal(it.solution + ls - lb, box);
            assert_non_null(strstr(it.solution, "= "));
            assert_int_equal(it.level, level);
            task_item_free(&it);
        }
}

static bool in_split(const task_item *items, int64_t n, const char *problem) {
    for (int64_t i = 0; i < n; i++)
        if (!strcmp(items[i].problem, problem)) return true;
    return false;
}

static void splits_are_disjoint_and_free_of_duplicates(void **state) {
    (void)state;
    task_config c = {.seed = 11, .n_train = 400, .n_test = 200, .n_sft = 600};
    task_splits s;
    mart_err err = {{0}};
    assert_int_equal(task_generate_splits(&c, &s, &err), MART_OK);
    assert_int_equal(s.n_train, 400);
    assert_int_equal(s.n_test, 200);
    assert_int_equal(s.n_sft, 600);
    for (int64_t i = 0; i < s.n_test; i++) {
        assert_false(in_split(s.train, s.n_train, s.test[i].problem));
        assert_false(in_split(s.sft, s.n_sft, s.test[i].problem));
        assert_false(in_split(s.test, i, s.test[i].problem));
    }
    for (int64_t i = 0; i < s.n_train; i++) {
        assert_false(in_split(s.sft, s.n_sft, s.train[i].problem));
        assert_false(in_split(s.train, i, s.train[i].problem));
    }
    for (int64_t i = 0; i < s.n_sft; i++) assert_false(in_split(s.sft, i, s.sft[i].problem));
    task_splits_free(&s);
}

static void the_same_seed_gives_the_same_splits_and_another_seed_differs(void **state) {
    (void)state;
    task_config c = {.seed = 5, .n_train = 50, .n_test = 50, .n_sft = 50};
    task_splits a, b, d;
    mart_err err = {{0}};
    assert_int_equal(task_generate_splits(&c, &a, &err), MART_OK);
    assert_int_equal(task_generate_splits(&c, &b, &err), MART_OK);
    c.seed = 6;
    assert_int_equal(task_generate_splits(&c, &d, &err), MART_OK);
    int same = 0;
    for (int64_t i = 0; i < 50; i++) {
        assert_string_equal(a.test[i].problem, b.test[i].problem);
        assert_string_equal(a.train[i].solution, b.train[i].solution);
        assert_string_equal(a.sft[i].answer, b.sft[i].answer);
        same += !strcmp(a.test[i].problem, d.test[i].problem);
    }
    assert_true(same < 10);
    task_splits_free(&a);
    task_splits_free(&b);
    task_splits_free(&d);
}

static void the_jsonl_has_the_math_fields(void **state) {
    (void)state;
    task_config c = {.seed = 2, .n_train = 3, .n_test = 3, .n_sft = 3};
    task_splits s;
    mart_err err = {{0}};
    assert_int_equal(task_generate_splits(&c, &s, &err), MART_OK);
    char dir[] = "/tmp/mart_task_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/t.jsonl", dir);
    assert_int_equal(task_write_jsonl(path, s.test, s.n_test, &err), MART_OK);
    cJSON **objs;
    int64_t n;
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_OK);
    assert_int_equal(n, 3);
    for (int64_t i = 0; i < n; i++) {
        assert_string_equal(cJSON_GetObjectItem(objs[i], "problem")->valuestring,
                            s.test[i].problem);
        assert_string_equal(cJSON_GetObjectItem(objs[i], "answer")->valuestring,
                            s.test[i].answer);
        assert_non_null(cJSON_GetObjectItem(objs[i], "solution"));
        assert_non_null(cJSON_GetObjectItem(objs[i], "type"));
        assert_non_null(cJSON_GetObjectItem(objs[i], "level"));
    }
    mart_jsonl_free(objs, n);
    unlink(path);
    rmdir(dir);
    task_splits_free(&s);
}

/* The boxed integer at the end of a solution. */
static long long boxed_value(const char *sol) {
    const char *b = strstr(sol, "\\boxed{");
    assert_non_null(b);
    return strtoll(b + 7, NULL, 10);
}

static void sft_transcripts_retry_until_the_first_right_attempt(void **state) {
    (void)state;
    const double repeat_probs[] = {TASK_SOLVER_REPEAT, 0.0, 1.0};
    for (size_t pi = 0; pi < sizeof repeat_probs / sizeof repeat_probs[0]; pi++) {
        task_config c;
        task_config_default(&c);
        c.n_train = 10, c.n_test = 10, c.n_sft = 3000, c.sft_retry_frac = 0.5;
        c.sft_repeat = repeat_probs[pi];
        task_splits s;
        mart_err err = {{0}};
        assert_int_equal(task_generate_splits(&c, &s, &err), MART_OK);
        int64_t transcripts = 0, wrong = 0, retries = 0, repeats = 0, fresh = 0;
        for (int64_t i = 0; i < s.n_sft; i++) {
            const task_item *it = &s.sft[i];
            if (it->n_attempts == 0) continue;
            transcripts++;
            assert_true(it->attempts_allowed >= it->n_attempts && it->attempts_allowed <= 5);
            long long answer = atoll(it->answer);
            for (int32_t a = 0; a < it->n_attempts; a++) {
                long long v = boxed_value(it->attempts[a]);
                bool last = a + 1 == it->n_attempts;
                /* every attempt but the last is wrong; the last is right unless attempts ran out */
                if (!last || it->n_attempts == it->attempts_allowed) {
                    if (v != answer) wrong++;
                } else {
                    assert_true(v == answer);
                }
                if (!last) assert_true(v != answer);
                if (a > 0) {
                    if (!strcmp(it->attempts[a], it->attempts[a - 1])) repeats++;
                    else fresh++;
                }
                if (v != answer && it->kind == TASK_MOD) {
                    long long m = atoll(strstr(it->problem, "divided by ") + 11);
                    assert_true(v >= 0 && v < m); /* another remainder */
                } else if (v != answer) {
                    long long d = llabs(v - answer);
                    assert_true(d == 1 || d == 2 || d == 10); /* a near miss */
                }
            }
            retries += it->n_attempts - 1;
        }
        /* about half the items are transcripts; the solver errs often enough to retry */
        assert_true(transcripts > 1300 && transcripts < 1700);
        assert_true(wrong > 300 && retries > 300);
        /* told it is wrong, the solver repeats itself with probability sft_repeat; a fresh
         * attempt can also slip to the same wrong answer (a few percent of them) */
        double rep = (double)repeats / (double)(repeats + fresh);
        double lo = c.sft_repeat - 0.04, hi = c.sft_repeat + 0.15 * (1.0 - c.sft_repeat) + 0.04;
        if (!(rep > lo && rep < hi))
            fail_msg("repeat probability %.2f: measured %.3f", c.sft_repeat, rep);
        task_splits_free(&s);
    }
}

/* Runs `mart pretrain` in-process on one JSONL line; returns its exit status. */
static int pretrain_on_line(const char *line) {
    char dir[] = "/tmp/mart_pretrain_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char data[128], out[128];
    snprintf(data, sizeof data, "%s/sft.jsonl", dir);
    snprintf(out, sizeof out, "%s/base", dir);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", line);
    fclose(f);
    char *argv[] = {"pretrain", "--data", data, "--out", out, "--steps", "1", "--batch", "1",
                    "--merges", "0", NULL};
    int rc = cmd_pretrain(11, argv);
    mart_err err = {{0}};
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
    return rc;
}

static void pretrain_reads_transcripts_and_refuses_malformed_attempts(void **state) {
    (void)state;
    const char *good = "{\"problem\":\"What is 2 + 3?\",\"solution\":\"2 + 3 = 5. \\\\boxed{5}\","
                       "\"attempts_allowed\":3,\"attempts\":[\"2 + 3 = 6. \\\\boxed{6}\","
                       "\"2 + 3 = 6. \\\\boxed{6}\",\"2 + 3 = 5. \\\\boxed{5}\"]}";
    assert_int_equal(pretrain_on_line(good), 0);
    /* more attempts than allowed, a non-string attempt, an empty list: each an error */
    assert_int_not_equal(pretrain_on_line("{\"problem\":\"q\",\"solution\":\"s\","
                                          "\"attempts_allowed\":1,\"attempts\":[\"a\",\"b\"]}"),
                         0);
    assert_int_not_equal(pretrain_on_line("{\"problem\":\"q\",\"solution\":\"s\","
                                          "\"attempts_allowed\":2,\"attempts\":[\"a\",3]}"),
                         0);
    assert_int_not_equal(pretrain_on_line("{\"problem\":\"q\",\"solution\":\"s\","
                                          "\"attempts_allowed\":2,\"attempts\":[]}"),
                         0);
}

/* Reads a whole file (test helper); NULL if it cannot. */
static char *slurp(const char *dir, const char *name, size_t *len) {
    char path[512], *data = NULL;
    mart_path_join(path, sizeof path, dir, name);
    mart_err err = {{0}};
    return mart_read_file(path, &data, len, &err) == MART_OK ? data : NULL;
}

/* Runs `mart pretrain` in-process with its stderr captured into msg; returns its status. */
static int pretrain_capturing_stderr(int argc, char **argv, char *msg, size_t cap) {
    char log[] = "/tmp/mart_pretrain_log_XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    int rc = cmd_pretrain(argc, argv);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, msg, cap - 1, 0);
    msg[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(log);
    return rc;
}

/* Writes folder dst/name with the bytes of src/name (test helper). */
static void copy_file(const char *src, const char *dst, const char *name) {
    size_t len;
    char *data = slurp(src, name, &len), path[512];
    assert_non_null(data);
    mart_err err = {{0}};
    assert_int_equal(mart_write_file_atomic(mart_path_join(path, sizeof path, dst, name), data,
                                            len, &err),
                     MART_OK);
    free(data);
}

static void pretrain_init_fine_tunes_the_given_model_and_keeps_its_tokenizer(void **state) {
    (void)state;
    char dir[] = "/tmp/mart_pretrain_init_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char data[128], a[128], b[128], c[128];
    snprintf(data, sizeof data, "%s/sft.jsonl", dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    fprintf(f, "{\"problem\":\"What is 2 + 3?\",\"solution\":\"2 + 3 = 5. \\\\boxed{5}\"}\n"
               "{\"problem\":\"What is 4 + 4?\",\"solution\":\"4 + 4 = 8. \\\\boxed{8}\"}\n");
    fclose(f);
    char *fresh[] = {"pretrain", "--data", data, "--out", a, "--steps", "2", "--batch", "2",
                     "--merges", "8", NULL};
    assert_int_equal(cmd_pretrain(11, fresh), 0);
    /* learning rate 0: the fine-tuned model is the given one, file for file */
    char *same[] = {"pretrain", "--init", a, "--data", data, "--out", b, "--steps", "1",
                    "--batch", "2", "--lr", "0", NULL};
    assert_int_equal(cmd_pretrain(13, same), 0);
    size_t la, lb, ta, tb;
    char *wa = slurp(a, "model.safetensors", &la), *wb = slurp(b, "model.safetensors", &lb);
    char *ka = slurp(a, "tokenizer.json", &ta), *kb = slurp(b, "tokenizer.json", &tb);
    assert_non_null(wa), assert_non_null(wb), assert_non_null(ka), assert_non_null(kb);
    assert_int_equal(la, lb);
    assert_memory_equal(wa, wb, la);
    assert_int_equal(ta, tb);
    assert_memory_equal(ka, kb, ta);
    free(wb), free(kb);
    /* a real learning rate moves the weights; the tokenizer is still passed on unchanged */
    char *moved[] = {"pretrain", "--init", a, "--data", data, "--out", c, "--steps", "2",
                     "--batch", "2", "--lr", "1e-2", NULL};
    assert_int_equal(cmd_pretrain(13, moved), 0);
    size_t lc, tc;
    char *wc = slurp(c, "model.safetensors", &lc), *kc = slurp(c, "tokenizer.json", &tc);
    assert_non_null(wc), assert_non_null(kc);
    assert_int_equal(la, lc);
    assert_true(memcmp(wa, wc, la) != 0);
    assert_int_equal(ta, tc);
    assert_memory_equal(ka, kc, ta);
    free(wa), free(ka), free(wc), free(kc);
    /* --init with --config, and a folder without a model, are errors */
    char *both[] = {"pretrain", "--init", a, "--config", "tiny", "--data", data, "--out", c,
                    NULL};
    assert_int_not_equal(cmd_pretrain(9, both), 0);
    char *none[] = {"pretrain", "--init", dir, "--data", data, "--out", c, NULL};
    assert_int_not_equal(cmd_pretrain(7, none), 0);
    mart_err err = {{0}};
    /* a sequence length past the model's positions, a tokenizer larger than the model's
     * vocabulary and a tokenizer without <|im_end|>: each refused, saying why */
    char msg[4096];
    char x[128];
    snprintf(x, sizeof x, "%s/x", dir); /* never written: every run into it is refused */
    char *long_seq[] = {"pretrain", "--init", a, "--data", data, "--out", x, "--seq-len",
                        "100000", NULL};
    assert_int_not_equal(pretrain_capturing_stderr(9, long_seq, msg, sizeof msg), 0);
    if (!strstr(msg, "--seq-len 100000 exceeds")) fail_msg("%s", msg);
    char d[128], e[128];
    snprintf(d, sizeof d, "%s/d", dir);
    snprintf(e, sizeof e, "%s/e", dir);
    char *bigger[] = {"pretrain", "--data", data, "--out", d, "--steps", "1", "--batch", "2",
                      "--merges", "32", NULL};
    assert_int_equal(cmd_pretrain(11, bigger), 0);
    assert_int_equal(mart_mkdirs(e, &err), MART_OK);
    copy_file(a, e, "config.json");
    copy_file(a, e, "model.safetensors");
    copy_file(d, e, "tokenizer.json");
    char *mismatch[] = {"pretrain", "--init", e, "--data", data, "--out", x, NULL};
    assert_int_not_equal(pretrain_capturing_stderr(7, mismatch, msg, sizeof msg), 0);
    if (!strstr(msg, "tokenizer.json has")) fail_msg("%s", msg);
    size_t tl;
    char *tj = slurp(a, "tokenizer.json", &tl), path[512];
    assert_non_null(tj);
    for (char *q = tj; (q = strstr(q, "<|im_end|>")) != NULL; q++) q[6] = 'x'; /* <|im_exd|> */
    assert_int_equal(mart_write_file_atomic(mart_path_join(path, sizeof path, e,
                                                           "tokenizer.json"),
                                            tj, tl, &err),
                     MART_OK);
    free(tj);
    assert_int_not_equal(pretrain_capturing_stderr(7, mismatch, msg, sizeof msg), 0);
    if (!strstr(msg, "has no <|im_end|>")) fail_msg("%s", msg);
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
}

static void transcript_targets_are_right_attempts_and_repeats_unless_slips_are_trained(
    void **state) {
    (void)state;
    const char *sol = "2 + 3 = 5. \\boxed{5}";
    const char *att[] = {"2 + 3 = 6. \\boxed{6}", "2 + 3 = 6. \\boxed{6}",
                         "2 + 3 = 4. \\boxed{4}", "2 + 3 = 5. \\boxed{5}"};
    /* a first slip and a fresh slip are context; a word-for-word repeat and the right
     * solution are targets */
    const bool want[] = {false, true, false, true};
    for (int32_t a = 0; a < 4; a++) {
        assert_int_equal(task_attempt_is_target(sol, att, a, false), want[a]);
        assert_true(task_attempt_is_target(sol, att, a, true));
    }
    /* a right first attempt is a target; a repeat is judged against the attempt before it */
    const char *att2[] = {"2 + 3 = 5. \\boxed{5}", "2 + 3 = 6. \\boxed{6}",
                          "2 + 3 = 4. \\boxed{4}"};
    assert_true(task_attempt_is_target(sol, att2, 0, false));
    assert_false(task_attempt_is_target(sol, att2, 2, false));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_and_level_has_an_independently_verified_answer),
        cmocka_unit_test(solutions_end_in_the_boxed_answer),
        cmocka_unit_test(splits_are_disjoint_and_free_of_duplicates),
        cmocka_unit_test(the_same_seed_gives_the_same_splits_and_another_seed_differs),
        cmocka_unit_test(the_jsonl_has_the_math_fields),
        cmocka_unit_test(sft_transcripts_retry_until_the_first_right_attempt),
        cmocka_unit_test(pretrain_reads_transcripts_and_refuses_malformed_attempts),
        cmocka_unit_test(
            transcript_targets_are_right_attempts_and_repeats_unless_slips_are_trained),
        cmocka_unit_test(pretrain_init_fine_tunes_the_given_model_and_keeps_its_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
