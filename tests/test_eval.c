/* eval: the accuracy-by-attempts harness driven by a scripted policy (known accuracies,
 * results.json shape, resume, transcripts, benchmark resolution), then once through the real
 * generation engine with a small random model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mart/eval.h"
#include "mart/plot.h"

static tok_tokenizer *tok;
static char tmpdir[256];
static char custom[512];  /* a .jsonl set of 6 problems, fields "q" and "a" */
static int64_t generated; /* episodes produced by the scripted runner */

static int setup(void **state) {
    (void)state;
    mart_err err = {0};
    if (tok_build_bytes(NULL, 0, 0, &tok, &err) != MART_OK) return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mart_test_eval_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(custom, sizeof custom, "%s/custom.jsonl", tmpdir);
    mart_buf b = {0};
    for (int i = 0; i < 6; i++)
        mart_buf_printf(&b, "{\"q\":\"Problem %d: what is %d?\",\"a\":\"%d\"}\n", i, i, i);
    int rc = mart_write_file_atomic(custom, b.data, b.len, &err);
    mart_buf_free(&b);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    mart_err err;
    mart_remove_tree(tmpdir, &err);
    tok_free(tok);
    return 0;
}

/* The scripted policy: a problem with gold g is solved at attempt g%3 + 1 (numeric gold)
 * and answers "\boxed{-1}" before that, so the accuracy within k attempts is known. */
static int scripted_runner(void *ctx, const tok_tokenizer *t, const env_config *cfg,
                           const env_problem *problems, const int32_t *attempts, int32_t n,
                           const gen_params *p, const uint64_t *streams, env_done_fn on_done,
                           void *done_ctx, env_episode *out, mart_err *err) {
    (void)ctx, (void)p, (void)streams;
    for (int32_t i = 0; i < n; i++) {
        env_session s;
        if (env_episode_begin(&s, t, cfg, &problems[i], attempts[i], &out[i], err) != MART_OK)
            return MART_ERR;
        int need = atoi(problems[i].gold) % 3 + 1;
        env_step st = ENV_STEP_CONTINUE;
        while (st != ENV_STEP_DONE) {
            char text[128];
            snprintf(text, sizeof text, "so \\boxed{%s}",
                     out[i].n_attempts + 1 >= need ? problems[i].gold : "-1");
            int32_t *ids = NULL;
            int64_t m = 0;
            assert_int_equal(tok_encode(t, text, strlen(text), &ids, &m, err), MART_OK);
            st = ENV_STEP_CONTINUE;
            for (int64_t k = 0; k < m && st == ENV_STEP_CONTINUE; k++)
                st = env_episode_on_token(&s, ids[k], -0.5f, false);
            free(ids);
            /* A gold the grader reads differently inside a box: end the turn instead. */
            if (st == ENV_STEP_CONTINUE)
                st = env_episode_on_token(&s, tok_special_id(t, "<|im_end|>"), -0.5f, false);
        }
        env_session_free(&s);
        generated++;
        if (on_done) on_done(done_ctx, i, &out[i]);
    }
    return MART_OK;
}

static eval_config custom_config(const int32_t *ks, int32_t n_ks, int32_t limit) {
    static const char *benches[1];
    benches[0] = custom;
    eval_config c;
    eval_config_default(&c);
    c.benches = benches;
    c.n_benches = 1;
    c.question_key = "q";
    c.answer_key = "a";
    c.ks = ks;
    c.n_ks = n_ks;
    c.limit = limit;
    c.batch = 4;
    c.progress = false;
    c.quiet = true;
    c.model_name = "scripted";
    return c;
}

static int64_t count_lines(const char *path) {
    char *d = NULL;
    size_t len = 0;
    mart_err err;
    if (mart_read_file(path, &d, &len, &err) != MART_OK) return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += d[i] == '\n';
    free(d);
    return n;
}

static void test_config_defaults_follow_the_spec(void **state) {
    (void)state;
    eval_config c;
    eval_config_default(&c);
    assert_int_equal(c.env.max_tokens, 8000);
    assert_true(c.sampling.temperature == 0.0f);
    assert_int_equal(c.sampling.seed, 0);
    assert_int_equal(c.env.chunk, 1);
}

static void test_attempt_lists_parse_and_bad_ones_are_refused(void **state) {
    (void)state;
    int32_t *ks = NULL, n = 0;
    mart_err err;
    assert_int_equal(eval_parse_ks("1-7", &ks, &n, &err), MART_OK);
    assert_int_equal(n, 7);
    assert_int_equal(ks[6], 7);
    free(ks);
    assert_int_equal(eval_parse_ks("1,2,5", &ks, &n, &err), MART_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ks[2], 5);
    free(ks);
    assert_int_equal(eval_parse_ks("1-2,4-5", &ks, &n, &err), MART_OK);
    assert_int_equal(n, 4);
    free(ks);
    const char *bad[] = {"", "0", "3-1", "a", "1,1", "2,1", "1-", "1;2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(eval_parse_ks(bad[i], &ks, &n, &err), MART_ERR);
}

static void test_accuracy_by_attempts_matches_the_scripted_policy(void **state) {
    (void)state;
    static const int32_t ks[3] = {1, 2, 3};
    eval_config c = custom_config(ks, 3, 0);
    eval_results r;
    mart_err err = {0};
    char out[512];
    snprintf(out, sizeof out, "%s/acc", tmpdir);
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    /* Golds 0..5 need 1,2,3,1,2,3 attempts. */
    assert_int_equal(r.n_benches, 1);
    assert_string_equal(r.benches[0].name, "custom");
    assert_int_equal(r.benches[0].n, 6);
    assert_float_equal(r.benches[0].accuracy[0], 2.0 / 6, 1e-12);
    assert_float_equal(r.benches[0].accuracy[1], 4.0 / 6, 1e-12);
    assert_float_equal(r.benches[0].accuracy[2], 1.0, 1e-12);
    assert_float_equal(r.average[1], 4.0 / 6, 1e-12);
    assert_int_equal(r.episodes_run, 18);
    eval_results_free(&r);
}

static void test_results_json_has_the_documented_shape(void **state) {
    (void)state;
    static const int32_t ks[2] = {1, 2};
    eval_config c = custom_config(ks, 2, 0);
    const char *benches[2] = {custom, NULL};
    char copy[512];
    snprintf(copy, sizeof copy, "%s/second.jsonl", tmpdir);
    char *d = NULL;
    size_t len = 0;
    mart_err err = {0};
    assert_int_equal(mart_read_file(custom, &d, &len, &err), MART_OK);
    assert_int_equal(mart_write_file_atomic(copy, d, 3 * len / 6, &err), MART_OK); /* 3 lines */
    free(d);
    benches[1] = copy;
    c.benches = benches;
    c.n_benches = 2;
    eval_results r;
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/shape", tmpdir);
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    eval_results_free(&r);
    assert_int_equal(
        mart_read_file(mart_path_join(path, sizeof path, out, "results.json"), &d, &len, &err),
        MART_OK);
    cJSON *o = cJSON_Parse(d);
    free(d);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "scripted");
    const cJSON *bs = cJSON_GetObjectItem(o, "benchmarks");
    assert_int_equal(cJSON_GetArraySize(bs), 2);
    const cJSON *sec = cJSON_GetObjectItem(bs, "second");
    assert_int_equal(cJSON_GetObjectItem(sec, "n")->valueint, 3);
    const cJSON *acc = cJSON_GetObjectItem(sec, "accuracy");
    assert_int_equal(cJSON_GetArraySize(acc), 2);
    assert_float_equal(cJSON_GetObjectItem(acc, "1")->valuedouble, 1.0 / 3, 1e-12);
    assert_float_equal(cJSON_GetObjectItem(acc, "2")->valuedouble, 2.0 / 3, 1e-12);
    const cJSON *avg = cJSON_GetObjectItem(o, "average");
    /* The average is over benchmarks, not problems: (2/6 + 1/3) / 2 and (4/6 + 2/3) / 2. */
    assert_float_equal(cJSON_GetObjectItem(avg, "1")->valuedouble, 1.0 / 3, 1e-12);
    assert_float_equal(cJSON_GetObjectItem(avg, "2")->valuedouble, 2.0 / 3, 1e-12);
    cJSON_Delete(o);
    /* It loads back as written; the figure is the plot module's, drawn from the results (the
     * evaluation itself draws nothing). */
    eval_results back;
    assert_int_equal(eval_results_load(path, &back, &err), MART_OK);
    assert_int_equal(back.n_ks, 2);
    assert_int_equal(back.n_benches, 2);
    assert_float_equal(back.average[1], 2.0 / 3, 1e-12);
    assert_false(mart_path_exists(mart_path_join(path, sizeof path, out, "attempts.svg")));
    assert_int_equal(plot_eval_attempts(&back, mart_path_join(path, sizeof path, out, "attempts"),
                                        &err),
                     MART_OK);
    eval_results_free(&back);
    assert_true(mart_path_exists(mart_path_join(path, sizeof path, out, "attempts.svg")));
    assert_true(mart_path_exists(mart_path_join(path, sizeof path, out, "attempts.png")));
}

static void test_transcripts_hold_every_episode_with_its_attempts(void **state) {
    (void)state;
    static const int32_t ks[1] = {3};
    eval_config c = custom_config(ks, 1, 3);
    eval_results r;
    mart_err err = {0};
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/transcripts", tmpdir);
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    eval_results_free(&r);
    cJSON **objs = NULL;
    int64_t n = 0;
    assert_int_equal(mart_jsonl_load(mart_path_join(path, sizeof path, out, "transcripts.jsonl"),
                                     &objs, &n, &err),
                     MART_OK);
    assert_int_equal(n, 3);
    const cJSON *third = objs[2]; /* gold 2: wrong, wrong, right */
    assert_string_equal(cJSON_GetObjectItem(third, "bench")->valuestring, "custom");
    assert_int_equal(cJSON_GetObjectItem(third, "index")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(third, "k")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(third, "question")->valuestring,
                        "Problem 2: what is 2?");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(third, "correct")));
    assert_int_equal(cJSON_GetObjectItem(third, "tokens")->valueint, 13 + 13 + 12);
    const cJSON *atts = cJSON_GetObjectItem(third, "attempts");
    assert_int_equal(cJSON_GetArraySize(atts), 3);
    const cJSON *a0 = cJSON_GetArrayItem(atts, 0);
    assert_string_equal(cJSON_GetObjectItem(a0, "text")->valuestring, "so \\boxed{-1}");
    assert_string_equal(cJSON_GetObjectItem(a0, "answer")->valuestring, "-1");
    assert_string_equal(cJSON_GetObjectItem(a0, "status")->valuestring, "wrong");
    assert_int_equal(cJSON_GetObjectItem(a0, "tokens")->valueint, 13);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(atts, 2), "status")->valuestring,
                        "right");
    mart_jsonl_free(objs, n);
}

/* A policy whose attempt starts in the middle of a UTF-8 character (as a sampled token can). */
static int partial_char_runner(void *ctx, const tok_tokenizer *t, const env_config *cfg,
                               const env_problem *problems, const int32_t *attempts, int32_t n,
                               const gen_params *p, const uint64_t *streams, env_done_fn on_done,
                               void *done_ctx, env_episode *out, mart_err *err) {
    (void)ctx, (void)p, (void)streams;
    static const char text[] = "\xe4\xbd so \\boxed{1}";
    for (int32_t i = 0; i < n; i++) {
        env_session s;
        if (env_episode_begin(&s, t, cfg, &problems[i], attempts[i], &out[i], err) != MART_OK)
            return MART_ERR;
        env_step st = ENV_STEP_CONTINUE;
        for (size_t k = 0; k < strlen(text) && st != ENV_STEP_DONE; k++) {
            int32_t *ids = NULL;
            int64_t m = 0;
            assert_int_equal(tok_encode(t, text + k, 1, &ids, &m, err), MART_OK);
            st = env_episode_on_token(&s, ids[0], 0, false);
            free(ids);
        }
        env_session_free(&s);
        if (on_done) on_done(done_ctx, i, &out[i]);
    }
    return MART_OK;
}

static void test_transcripts_are_valid_utf8_when_the_model_splits_a_character(void **state) {
    (void)state;
    static const int32_t ks[1] = {1};
    eval_config c = custom_config(ks, 1, 2);
    eval_results r;
    mart_err err = {0};
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/utf8", tmpdir);
    assert_int_equal(eval_run_with(partial_char_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_float_equal(r.benches[0].accuracy[0], 0.5, 1e-12); /* gold "1" is problem 1 */
    eval_results_free(&r);
    cJSON **objs = NULL;
    int64_t n = 0;
    assert_int_equal(mart_jsonl_load(mart_path_join(path, sizeof path, out, "transcripts.jsonl"),
                                     &objs, &n, &err),
                     MART_OK);
    assert_int_equal(n, 2);
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(objs[0], "attempts"), 0);
    /* E4 BD is the start of a 3-byte character cut short: one U+FFFD (maximal subpart). */
    assert_string_equal(cJSON_GetObjectItem(a0, "text")->valuestring, "\xef\xbf\xbd so \\boxed{1}");
    mart_jsonl_free(objs, n);
}

static void test_rerun_skips_finished_problems_and_gives_the_same_accuracy(void **state) {
    (void)state;
    static const int32_t ks[2] = {1, 2};
    mart_err err = {0};
    eval_results r;
    char out[512], tpath[600];
    snprintf(out, sizeof out, "%s/resume", tmpdir);
    mart_path_join(tpath, sizeof tpath, out, "transcripts.jsonl");
    eval_config c = custom_config(ks, 2, 4);
    generated = 0;
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_int_equal(generated, 8);
    eval_results_free(&r);
    /* The same command again: nothing to do. */
    generated = 0;
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_int_equal(generated, 0);
    assert_int_equal(r.episodes_resumed, 8);
    eval_results_free(&r);
    /* More problems: only the new (problem, k) pairs run. A torn last line (a crash while
     * writing) is cut off and its episode redone. */
    FILE *f = fopen(tpath, "ab");
    fputs("{\"bench\":\"custom\",\"ind", f);
    fclose(f);
    c.limit = 6;
    generated = 0;
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_int_equal(generated, 4);
    assert_int_equal(r.episodes_run, 4);
    assert_int_equal(r.episodes_resumed, 8);
    assert_float_equal(r.benches[0].accuracy[0], 2.0 / 6, 1e-12);
    assert_float_equal(r.benches[0].accuracy[1], 4.0 / 6, 1e-12);
    assert_int_equal(count_lines(tpath), 12);
    eval_results_free(&r);
    /* A different token budget is a different evaluation: nothing is reused. */
    c.env.max_tokens = 100;
    generated = 0;
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_int_equal(generated, 12);
    eval_results_free(&r);
    /* Nor is another prompt variant. */
    c.env.max_tokens = EVAL_MAX_TOKENS;
    c.env.baseline_prompt = true;
    generated = 0;
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, out, &r, &err), MART_OK);
    assert_int_equal(generated, 12);
    eval_results_free(&r);
}

static void test_named_benchmarks_resolve_in_the_data_folder(void **state) {
    (void)state;
    const char *dir = getenv("MART_DATA");
    if (!dir) skip();
    static const int32_t ks[1] = {2};
    const char *benches[3] = {"aime24", "gsm8k", "math"};
    eval_config c;
    eval_config_default(&c);
    c.benches = benches;
    c.n_benches = 3;
    c.data_dir = dir;
    c.ks = ks;
    c.n_ks = 1;
    c.limit = 2;
    c.progress = false;
    c.quiet = true;
    eval_results r;
    mart_err err = {0};
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, NULL, &r, &err), MART_OK);
    assert_int_equal(r.n_benches, 3);
    assert_string_equal(r.benches[1].name, "gsm8k");
    assert_string_equal(r.benches[2].name, "math"); /* MATH's test split */
    for (int b = 0; b < 3; b++)
        assert_int_equal(r.benches[b].n, 2);
    eval_results_free(&r);
    /* An unknown name is an error listing the known ones. */
    benches[1] = "nosuchbench";
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, NULL, &r, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "'nosuchbench' is not known"));
    /* A known name missing from the data directory says how to fetch it. */
    benches[1] = "gsm8k";
    c.data_dir = "/nonexistent";
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, NULL, &r, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "mart data get aime24"));
}

static void test_a_record_without_the_question_field_is_an_error_naming_the_line(void **state) {
    (void)state;
    static const int32_t ks[1] = {1};
    eval_config c = custom_config(ks, 1, 0);
    c.question_key = "question";
    eval_results r;
    mart_err err = {0};
    assert_int_equal(eval_run_with(scripted_runner, NULL, tok, &c, NULL, &r, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "custom.jsonl:1"));
    assert_non_null(strstr(err.msg, "question"));
}

/* The real path: eval_run builds a generation engine over a small random model. Greedy
 * decoding is deterministic, so a second run in a fresh folder writes the same transcripts. */
static void test_eval_runs_through_the_generation_engine(void **state) {
    (void)state;
    model_config mc;
    mart_err err = {0};
    assert_int_equal(model_config_builtin("tiny", &mc, &err), MART_OK);
    mc.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&mc, false, false);
    model_init_random(m, 7);
    static const int32_t ks[2] = {1, 2};
    eval_config c = custom_config(ks, 2, 3);
    c.env.max_tokens = 12;
    char out1[512], out2[512], p1[600], p2[600];
    snprintf(out1, sizeof out1, "%s/engine1", tmpdir);
    snprintf(out2, sizeof out2, "%s/engine2", tmpdir);
    eval_results r;
    assert_int_equal(eval_run(m, tok, &c, out1, &r, &err), MART_OK);
    assert_int_equal(r.episodes_run, 6);
    assert_true(r.tokens_sampled > 0 && r.tokens_sampled <= 6 * 12);
    eval_results_free(&r);
    assert_int_equal(eval_run(m, tok, &c, out2, &r, &err), MART_OK);
    eval_results_free(&r);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    mart_read_file(mart_path_join(p1, sizeof p1, out1, "transcripts.jsonl"), &a, &la, &err);
    mart_read_file(mart_path_join(p2, sizeof p2, out2, "transcripts.jsonl"), &b, &lb, &err);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    model_free(m);
}

/* Sampled evaluation (temperature 1) interrupted and resumed samples what an uninterrupted
 * run does: an episode's stream is its problem and attempts, not its place in the work left.
 * The interruption: a run over the first 3 problems, then the same run over all 6. */
static void test_a_resumed_sampled_evaluation_samples_what_an_uninterrupted_one_does(void **state) {
    (void)state;
    model_config mc;
    mart_err err = {0};
    assert_int_equal(model_config_builtin("tiny", &mc, &err), MART_OK);
    mc.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&mc, false, false);
    model_init_random(m, 9);
    static const int32_t ks[2] = {1, 2};
    eval_config c = custom_config(ks, 2, 6);
    c.env.max_tokens = 10;
    c.sampling.temperature = 1.0f;
    c.sampling.seed = 5;
    char whole[512], pieces[512], p1[600], p2[600];
    snprintf(whole, sizeof whole, "%s/sampled_whole", tmpdir);
    snprintf(pieces, sizeof pieces, "%s/sampled_pieces", tmpdir);
    eval_results r;
    assert_int_equal(eval_run(m, tok, &c, whole, &r, &err), MART_OK);
    eval_results_free(&r);
    c.limit = 3;
    assert_int_equal(eval_run(m, tok, &c, pieces, &r, &err), MART_OK);
    eval_results_free(&r);
    c.limit = 6;
    assert_int_equal(eval_run(m, tok, &c, pieces, &r, &err), MART_OK);
    assert_int_equal(r.episodes_resumed, 6);
    eval_results_free(&r);
    /* the same lines, whatever order they were written in */
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(mart_read_file(mart_path_join(p1, sizeof p1, whole, "transcripts.jsonl"), &a,
                                    &la, &err),
                     MART_OK);
    assert_int_equal(mart_read_file(mart_path_join(p2, sizeof p2, pieces, "transcripts.jsonl"), &b,
                                    &lb, &err),
                     MART_OK);
    assert_int_equal(la, lb);
    int64_t lines = 0;
    for (char *line = a, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strstr(b, line)) fail_msg("not in the resumed transcripts: %s", line);
        lines++;
    }
    assert_int_equal(lines, 12);
    free(a);
    free(b);
    model_free(m);
}

/* env_run directly: episodes keep the prompt, mark exactly the sampled tokens trainable,
 * respect the budget, and do not depend on what else is in the batch. */
static void test_env_run_episodes_are_the_same_alone_or_in_a_batch(void **state) {
    (void)state;
    model_config mc;
    mart_err err = {0};
    assert_int_equal(model_config_builtin("tiny", &mc, &err), MART_OK);
    mc.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&mc, false, false);
    model_init_random(m, 11);
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = 4;
    gc.max_len = 512;
    gen_engine *g = NULL;
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_OK);
    env_config ec;
    env_config_default(&ec);
    ec.max_tokens = 16;
    gen_params gp;
    gen_params_default(&gp);
    gp.temperature = 1.0f;
    gp.seed = 3;
    env_problem probs[3] = {{"What is 1+1?", "2"}, {"What is 2+2?", "4"}, {"Name 3.", "3"}};
    int32_t atts[3] = {1, 3, 2};
    env_episode all[3], one;
    assert_int_equal(env_run(g, tok, &ec, probs, atts, 3, &gp, 100, NULL, all, &err), MART_OK);
    for (int i = 0; i < 3; i++) {
        int32_t *prompt = NULL, np = 0, n_train = 0;
        assert_int_equal(env_build_prompt(tok, &ec, probs[i].question, atts[i], &prompt, &np, &err),
                         MART_OK);
        assert_int_equal(all[i].n_prompt, np);
        assert_memory_equal(all[i].tokens, prompt, (size_t)np * sizeof *prompt);
        free(prompt);
        for (int32_t t = 0; t < all[i].n_tokens; t++)
            n_train += all[i].trainable[t];
        assert_int_equal(n_train, all[i].n_sampled);
        assert_true(all[i].n_sampled >= 1 && all[i].n_sampled <= 16);
        assert_true(all[i].n_attempts >= 1 && all[i].n_attempts <= atts[i]);
        /* The same request alone (same stream) samples the same tokens. */
        assert_int_equal(
            env_run(g, tok, &ec, &probs[i], &atts[i], 1, &gp, 100 + (uint64_t)i, NULL, &one, &err),
            MART_OK);
        assert_int_equal(one.n_tokens, all[i].n_tokens);
        assert_memory_equal(one.tokens, all[i].tokens, (size_t)one.n_tokens * sizeof(int32_t));
        env_episode_free(&one);
        env_episode_free(&all[i]);
    }
    gen_free(g);
    model_free(m);
}

/* A model that always says <|im_end|>: every layer's weights are zero (the residual stream
 * is the token's embedding), the embeddings all point one way and <|im_end|>'s is the
 * longest, so greedy decoding picks it after any token. Through the real engine, each
 * attempt is then a bare <|im_end|> and the feedback turn follows it with "\n". */
static void test_env_run_appends_feedback_after_the_models_own_im_end(void **state) {
    (void)state;
    model_config mc;
    mart_err err = {0};
    assert_int_equal(model_config_builtin("tiny", &mc, &err), MART_OK);
    mc.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&mc, false, false);
    int32_t d = mc.hidden_size, im_end = tok_special_id(tok, "<|im_end|>");
    for (int32_t i = 0; i < d; i++) {
        m->final_norm[i] = 1;
        for (int32_t l = 0; l < mc.n_layers; l++)
            m->layers[l].attn_norm[i] = 1, m->layers[l].mlp_norm[i] = 1;
    }
    for (int32_t t = 0; t < mc.vocab_size; t++)
        for (int32_t i = 0; i < d; i++)
            m->embed[(int64_t)t * d + i] = t == im_end ? 0.2f : 0.1f;
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = 2;
    gc.max_len = 512;
    gen_engine *g = NULL;
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_OK);
    env_config ec;
    env_config_default(&ec);
    ec.max_tokens = 16;
    gen_params gp;
    gen_params_default(&gp);
    gp.temperature = 0;
    env_problem probs[2] = {{"What is 1+1?", "2"}, {"What is 2+2?", "4"}};
    int32_t atts[2] = {3, 1};
    env_episode eps[2];
    assert_int_equal(env_run(g, tok, &ec, probs, atts, 2, &gp, 0, NULL, eps, &err), MART_OK);
    /* prompt, then (<|im_end|>, feedback with 2 left), (<|im_end|>, feedback with 1 left),
     * <|im_end|>. */
    int32_t *want = NULL, n_want = 0, *fb = NULL, nfb = 0;
    assert_int_equal(env_build_prompt(tok, &ec, probs[0].question, 3, &want, &n_want, &err),
                     MART_OK);
    for (int32_t left = 2; left >= 0; left--) {
        want = realloc(want, (size_t)(n_want + 1) * sizeof *want);
        want[n_want++] = im_end;
        if (left == 0) break;
        assert_int_equal(
            env_build_feedback(tok, &ec, probs[0].question, left, true, &fb, &nfb, &err), MART_OK);
        want = realloc(want, (size_t)(n_want + nfb) * sizeof *want);
        memcpy(want + n_want, fb, (size_t)nfb * sizeof *fb);
        n_want += nfb;
        free(fb);
    }
    assert_int_equal(eps[0].n_tokens, n_want);
    assert_memory_equal(eps[0].tokens, want, (size_t)n_want * sizeof *want);
    assert_int_equal(eps[0].n_attempts, 3);
    assert_int_equal(eps[0].n_sampled, 3);
    for (int a = 0; a < 3; a++)
        assert_int_equal(eps[0].attempts[a].status, ENV_ATTEMPT_NO_BOX);
    assert_true(eps[0].reward == -1.0f);
    int32_t n_train = 0;
    for (int32_t t = 0; t < eps[0].n_tokens; t++) {
        n_train += eps[0].trainable[t];
        if (eps[0].trainable[t]) assert_int_equal(eps[0].tokens[t], im_end);
    }
    assert_int_equal(n_train, 3);
    /* One attempt: the episode ends at the model's <|im_end|>, no feedback. */
    assert_int_equal(eps[1].n_tokens, eps[1].n_prompt + 1);
    assert_int_equal(eps[1].n_attempts, 1);
    free(want);
    env_episode_free(&eps[0]);
    env_episode_free(&eps[1]);
    gen_free(g);
    model_free(m);
}

/* The command line: a saved model folder, a custom set, the table on stdout, and a rerun
 * that generates nothing. */
static void test_mart_eval_writes_its_outputs_and_resumes(void **state) {
    (void)state;
    const char *bin = getenv("MART_BIN");
    if (!bin) skip();
    model_config mc;
    mart_err err = {0};
    char dir[512], out[512], cmd[4096], path[600];
    snprintf(dir, sizeof dir, "%s/cli_model", tmpdir);
    snprintf(out, sizeof out, "%s/cli_out", tmpdir);
    assert_int_equal(model_config_builtin("tiny", &mc, &err), MART_OK);
    mc.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&mc, false, false);
    model_init_random(m, 5);
    assert_int_equal(model_save(m, dir, &err), MART_OK);
    model_free(m);
    assert_int_equal(tok_save(tok, mart_path_join(path, sizeof path, dir, "tokenizer.json"), &err),
                     MART_OK);
    snprintf(cmd, sizeof cmd,
             "'%s' eval --model '%s' --bench '%s' --question-key q --answer-key a "
             "--attempts 1-2 --limit 2 --max-tokens 6 --out '%s' --name tiny "
             ">'%s/stdout' 2>'%s/stderr'",
             bin, dir, custom, out, tmpdir, tmpdir);
    assert_int_equal(system(cmd), 0);
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/stdout", tmpdir);
    assert_int_equal(mart_read_file(path, &text, &len, &err), MART_OK);
    assert_non_null(strstr(text, "custom"));
    assert_non_null(strstr(text, "average"));
    assert_non_null(strstr(text, "k=2"));
    free(text);
    assert_int_equal(count_lines(mart_path_join(path, sizeof path, out, "transcripts.jsonl")), 4);
    eval_results r;
    assert_int_equal(
        eval_results_load(mart_path_join(path, sizeof path, out, "results.json"), &r, &err),
        MART_OK);
    assert_string_equal(r.model, "tiny");
    assert_int_equal(r.benches[0].n, 2);
    eval_results_free(&r);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/stderr", tmpdir);
    assert_int_equal(mart_read_file(path, &text, &len, &err), MART_OK);
    assert_non_null(strstr(text, "0 episodes generated (4 resumed)"));
    free(text);
    /* Bad input: a clear message and a non-zero status. */
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s' --attempts 0 2>/dev/null", bin, dir);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s/none' 2>/dev/null", bin, tmpdir);
    assert_int_not_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_follow_the_spec),
        cmocka_unit_test(test_attempt_lists_parse_and_bad_ones_are_refused),
        cmocka_unit_test(test_accuracy_by_attempts_matches_the_scripted_policy),
        cmocka_unit_test(test_results_json_has_the_documented_shape),
        cmocka_unit_test(test_transcripts_hold_every_episode_with_its_attempts),
        cmocka_unit_test(test_transcripts_are_valid_utf8_when_the_model_splits_a_character),
        cmocka_unit_test(test_rerun_skips_finished_problems_and_gives_the_same_accuracy),
        cmocka_unit_test(test_named_benchmarks_resolve_in_the_data_folder),
        cmocka_unit_test(test_a_record_without_the_question_field_is_an_error_naming_the_line),
        cmocka_unit_test(test_eval_runs_through_the_generation_engine),
        cmocka_unit_test(test_a_resumed_sampled_evaluation_samples_what_an_uninterrupted_one_does),
        cmocka_unit_test(test_env_run_episodes_are_the_same_alone_or_in_a_batch),
        cmocka_unit_test(test_env_run_appends_feedback_after_the_models_own_im_end),
        cmocka_unit_test(test_mart_eval_writes_its_outputs_and_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
