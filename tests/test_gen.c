/* gen: the generation engine against full forward passes without a cache (greedy, log-probs,
 * continuation), batch independence (alone vs a batch of 64, shared prompts, fewer slots),
 * sampling statistics (chi-square on a vocabulary of 8), truncation properties, budgets and
 * the KV-budget error. Models are random, built in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gen/gen_sample.h"
#include "mart/gen.h"
#include "mart/safetensors.h"
#include "mart/tok.h"
#include "model/kern.h"

#include <cjson/cJSON.h>

static bool bf16_products_supported(void) {
    const mart_backend *be = mart_backend_cpu();
    return be->bf16_products_supported(be);
}

/* Logits of a random model are nearly flat; scaling the final norm spreads them so that
 * argmax ties (where rounding could flip a greedy choice) do not occur. */
#define TEST_LOGIT_SCALE 4.0f

static bool quick(void) {
    const char *q = getenv("MART_TEST_QUICK");
    return q && *q && strcmp(q, "0");
}

static model *tiny_model(int32_t vocab, uint64_t seed) {
    model_config cfg;
    mart_err err = {0};
    assert_int_equal(model_config_builtin("tiny", &cfg, &err), MART_OK);
    if (vocab > 0) cfg.vocab_size = vocab;
    model *m = model_create(&cfg, false, false);
    model_init_random(m, seed);
    for (int32_t i = 0; i < cfg.hidden_size; i++)
        m->final_norm[i] = TEST_LOGIT_SCALE;
    return m;
}

static gen_engine *engine(model *m, int32_t max_batch, int32_t max_len) {
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = max_batch;
    gc.max_len = max_len;
    gen_engine *g = NULL;
    mart_err err = {0};
    int rc = gen_create(m, &gc, &g, &err);
    if (rc != MART_OK) fprintf(stderr, "gen_create: %s\n", err.msg);
    assert_int_equal(rc, MART_OK);
    return g;
}

/* Logits (V) of the next token after tokens[0..n), by a full forward pass without a cache. */
static void full_logits(model *m, const int32_t *tokens, int32_t n, float *logits) {
    int32_t off[2] = {0, n};
    model_batch b = {1, tokens, off, NULL};
    model_out o = {.last_only = true, .logits = logits};
    mart_err err = {0};
    assert_int_equal(model_forward(m, &b, NULL, &o, false, &err), MART_OK);
}

static double log_softmax_at(const float *z, int32_t V, int32_t t) {
    double mx = z[0], s = 0.0;
    for (int32_t j = 1; j < V; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int32_t j = 0; j < V; j++)
        s += exp(z[j] - mx);
    return z[t] - mx - log(s);
}

static int32_t argmax(const float *z, int32_t V) {
    int32_t a = 0;
    for (int32_t j = 1; j < V; j++)
        if (z[j] > z[a]) a = j;
    return a;
}

static void random_prompt(int32_t *p, int32_t n, int32_t V, uint64_t stream) {
    mart_rng r;
    mart_rng_seed(&r, 99, stream);
    for (int32_t i = 0; i < n; i++)
        p[i] = (int32_t)mart_rng_range(&r, 0, V - 1);
}

/* Checks that every sampled token of prompt ++ res is the argmax of a full forward pass over
 * what precedes it and that its log-prob is the model's log-softmax there. */
static void check_against_full_forward(model *m, const int32_t *prompt, int32_t n_prompt,
                                       const gen_result *res, bool greedy) {
    const int32_t V = m->cfg.vocab_size;
    int32_t n = n_prompt + res->n_tokens;
    int32_t *seq = malloc((size_t)n * sizeof(int32_t));
    memcpy(seq, prompt, (size_t)n_prompt * sizeof(int32_t));
    memcpy(seq + n_prompt, res->tokens, (size_t)res->n_tokens * sizeof(int32_t));
    float *z = malloc((size_t)V * sizeof(float));
    for (int32_t i = 0; i < res->n_tokens; i++) {
        if (!res->sampled[i]) {
            assert_true(res->logprobs[i] == 0.0f);
            continue;
        }
        full_logits(m, seq, n_prompt + i, z);
        if (greedy) assert_int_equal(res->tokens[i], argmax(z, V));
        assert_float_equal(res->logprobs[i], log_softmax_at(z, V, res->tokens[i]), 2e-4);
    }
    free(z);
    free(seq);
}

static void greedy_decoding_equals_argmax_of_full_forward_passes(void **state) {
    (void)state;
    model *m = tiny_model(0, 1);
    gen_engine *g = engine(m, 4, 128);
    int32_t prompt[7];
    random_prompt(prompt, 7, m->cfg.vocab_size, 0);
    gen_request req = {prompt, 7, 0, NULL};
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 24;
    gen_result res;
    mart_err err = {0};
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &res, &err), MART_OK);
    assert_int_equal(res.n_tokens, 24);
    assert_int_equal(res.n_sampled, 24);
    assert_int_equal(res.finish, GEN_FINISH_LENGTH);
    check_against_full_forward(m, prompt, 7, &res, true);
    gen_result_free(&res);
    gen_free(g);
    model_free(m);
}

/* Rounds every parameter to the nearest bfloat16 (what loading a BF16 checkpoint gives). */
static void round_to_bf16(float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)st_f32_to_bf16(a[i]) << 16;
        memcpy(&a[i], &u, sizeof u);
    }
}

/* 64 requests: prompts of different lengths, 8 of them sharing one prompt. */
#define N_BATCH 64
static void batch_requests(gen_request *reqs, int32_t (*prompts)[40], int32_t V) {
    for (int32_t i = 0; i < N_BATCH; i++) {
        int32_t len = i < 8 ? 20 : 3 + (i * 7) % 37;
        random_prompt(prompts[i], len, V, i < 8 ? 1000 : (uint64_t)i);
        reqs[i] = (gen_request){prompts[i], len, (uint64_t)i, NULL};
    }
}

/* bf16: weights rounded to BF16 (decoding then uses BF16 products, the default). */
static void run_alone_vs_batched(const gen_params *p, int32_t max_batch, bool bf16) {
    model *m = tiny_model(0, 2);
    if (bf16) round_to_bf16(m->params, m->n_params);
    int32_t n = quick() ? 16 : N_BATCH;
    gen_request reqs[N_BATCH];
    int32_t prompts[N_BATCH][40];
    batch_requests(reqs, prompts, m->cfg.vocab_size);
    gen_result batched[N_BATCH], alone;
    mart_err err = {0};
    gen_engine *g = engine(m, max_batch, 96);
    assert_int_equal(gen_generate(g, reqs, n, p, NULL, NULL, batched, &err), MART_OK);
    gen_free(g);
    g = engine(m, 1, 96);
    for (int32_t i = 0; i < n; i++) {
        assert_int_equal(gen_generate(g, &reqs[i], 1, p, NULL, NULL, &alone, &err), MART_OK);
        assert_int_equal(alone.n_tokens, batched[i].n_tokens);
        assert_memory_equal(alone.tokens, batched[i].tokens,
                            (size_t)alone.n_tokens * sizeof(int32_t));
        for (int32_t t = 0; t < alone.n_tokens; t++)
            assert_float_equal(alone.logprobs[t], batched[i].logprobs[t], 1e-4);
        assert_int_equal(alone.finish, batched[i].finish);
        gen_result_free(&alone);
        gen_result_free(&batched[i]);
    }
    gen_free(g);
    model_free(m);
}

static void a_sequence_decodes_identically_alone_or_in_a_batch_of_64(void **state) {
    (void)state;
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 16;
    run_alone_vs_batched(&p, N_BATCH, false);
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.top_k = 50;
    p.seed = 7;
    run_alone_vs_batched(&p, N_BATCH, false);
}

/* With BF16 products a row's products do not depend on the other rows (bitwise), in decoding
 * steps and prefills alike. (Were the sums of a prefill in another order, a difference of
 * 1e-7 could flip the rounding of an activation to bfloat16, a jump of 2^-9 relative.) */
static void with_bf16_products_a_sequence_decodes_identically_alone_or_in_a_batch(void **state) {
    (void)state;
    if (!bf16_products_supported()) skip();
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 16;
    run_alone_vs_batched(&p, N_BATCH, true);
    p.temperature = 0.9f;
    p.seed = 7;
    run_alone_vs_batched(&p, N_BATCH, true);
}

static void continuous_batching_over_fewer_slots_gives_the_same_samples(void **state) {
    (void)state;
    gen_params p;
    gen_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 11;
    p.max_new_tokens = 12;
    int32_t stop = 5;
    p.stop_ids = &stop;
    p.n_stop_ids = 1;
    run_alone_vs_batched(&p, 5, false);
}

/* Prompts longer than one step's token budget are prefilled in chunks; a request with the
 * same prompt waits for that prefill and copies it. Both must decode as they do alone. */
static void long_shared_prompts_are_prefilled_in_chunks_and_copied(void **state) {
    (void)state;
    if (quick()) skip(); /* a 4,200-token prefill is slow under sanitizers */
    model *m = tiny_model(0, 13);
    enum { LONG = 4200 };
    int32_t *a = malloc(LONG * sizeof(int32_t)), b[9];
    random_prompt(a, LONG, m->cfg.vocab_size, 21);
    random_prompt(b, 9, m->cfg.vocab_size, 22);
    gen_request reqs[3] = {{a, LONG, 0, NULL}, {b, 9, 1, NULL}, {a, LONG, 2, NULL}};
    gen_params p;
    gen_params_default(&p);
    p.seed = 3;
    p.max_new_tokens = 6;
    gen_result batched[3], alone;
    mart_err err = {0};
    gen_engine *g = engine(m, 3, LONG + 8);
    assert_int_equal(gen_generate(g, reqs, 3, &p, NULL, NULL, batched, &err), MART_OK);
    gen_free(g);
    g = engine(m, 1, LONG + 8);
    for (int32_t i = 0; i < 3; i++) {
        assert_int_equal(gen_generate(g, &reqs[i], 1, &p, NULL, NULL, &alone, &err), MART_OK);
        assert_int_equal(alone.n_tokens, batched[i].n_tokens);
        assert_memory_equal(alone.tokens, batched[i].tokens,
                            (size_t)alone.n_tokens * sizeof(int32_t));
        for (int32_t t = 0; t < alone.n_tokens; t++)
            assert_float_equal(alone.logprobs[t], batched[i].logprobs[t], 1e-3);
        gen_result_free(&alone);
        gen_result_free(&batched[i]);
    }
    gen_free(g);
    free(a);
    model_free(m);
}

/* Continuation: after the 6th sampled token a "feedback turn" is appended; the whole
 * sequence must be what full forward passes over the concatenation give. */
typedef struct {
    int32_t feedback[4];
    int32_t at;
    int32_t calls;
} cont_ctx;

static gen_action append_feedback(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                                  gen_finish finish) {
    cont_ctx *c = ctx;
    (void)user;
    (void)token;
    (void)logprob;
    (void)finish;
    if (++c->calls == c->at) assert_int_equal(gen_seq_append(seq, c->feedback, 4), MART_OK);
    return GEN_CONTINUE;
}

static void continuation_equals_decoding_the_concatenation_from_scratch(void **state) {
    (void)state;
    model *m = tiny_model(0, 3);
    gen_engine *g = engine(m, 4, 128);
    int32_t prompt[9];
    random_prompt(prompt, 9, m->cfg.vocab_size, 5);
    gen_request req = {prompt, 9, 3, NULL};
    for (int greedy = 1; greedy >= 0; greedy--) {
        gen_params p;
        gen_params_default(&p);
        p.temperature = greedy ? 0.0f : 1.0f;
        p.max_new_tokens = 14;
        cont_ctx c = {{11, 22, 33, 44}, 6, 0};
        gen_result res;
        mart_err err = {0};
        assert_int_equal(gen_generate(g, &req, 1, &p, append_feedback, &c, &res, &err), MART_OK);
        assert_int_equal(res.n_sampled, 14); /* appended tokens are not in the budget */
        assert_int_equal(res.n_tokens, 18);
        assert_memory_equal(res.tokens + 6, c.feedback, sizeof c.feedback);
        for (int32_t i = 6; i < 10; i++)
            assert_int_equal(res.sampled[i], 0);
        check_against_full_forward(m, prompt, 9, &res, greedy);
        gen_result_free(&res);
    }
    gen_free(g);
    model_free(m);
}

/* The environment's pattern: at the end of a turn (a stop id) the callback appends a feedback
 * turn and decoding resumes; the second stop ends the request. */
typedef struct {
    int32_t turns;
} turn_ctx;

static gen_action feedback_after_stop(void *ctx, gen_seq *seq, void *user, int32_t token,
                                      float logprob, gen_finish finish) {
    turn_ctx *c = ctx;
    (void)user, (void)token, (void)logprob;
    if (finish != GEN_FINISH_STOP || ++c->turns > 1) return GEN_CONTINUE;
    int32_t fb[3] = {7, 8, 9};
    assert_int_equal(gen_seq_append(seq, fb, 3), MART_OK);
    return GEN_CONTINUE;
}

static void a_turn_appended_after_a_stop_id_resumes_decoding(void **state) {
    (void)state;
    model *m = tiny_model(0, 14);
    gen_engine *g = engine(m, 2, 256);
    int32_t prompt[6];
    random_prompt(prompt, 6, m->cfg.vocab_size, 30);
    gen_request req = {prompt, 6, 0, NULL};
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 40;
    gen_result a, b;
    mart_err err = {0};
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &a, &err), MART_OK);
    p.stop_ids = &a.tokens[1]; /* the greedy path's second token ends the first turn */
    p.n_stop_ids = 1;
    turn_ctx c = {0};
    assert_int_equal(gen_generate(g, &req, 1, &p, feedback_after_stop, &c, &b, &err), MART_OK);
    int32_t first = 0;
    while (a.tokens[first] != a.tokens[1])
        first++;
    assert_true(b.n_tokens > first + 4);
    assert_int_equal(b.tokens[first], a.tokens[1]);
    assert_int_equal(b.sampled[first + 1], 0);
    assert_int_equal(b.tokens[first + 3], 9);
    assert_int_equal(b.sampled[first + 4], 1);
    assert_true(b.finish == GEN_FINISH_STOP || b.n_sampled == 40);
    if (b.finish == GEN_FINISH_STOP) assert_int_equal(b.tokens[b.n_tokens - 1], a.tokens[1]);
    check_against_full_forward(m, prompt, 6, &b, true);
    gen_result_free(&a);
    gen_result_free(&b);
    gen_free(g);
    model_free(m);
}

/* Sampling statistics: N draws of one token after one prompt (N requests with the same prompt,
 * so the prompt is prefilled once and copied) against the target distribution. */
static int32_t check_chi_square(model *m, const gen_params *p0, int32_t n_draws) {
    const int32_t V = m->cfg.vocab_size;
    int32_t prompt[5] = {1, 2, 3, 4, 5};
    float z[8];
    double target[8];
    gen_cand scr[8];
    full_logits(m, prompt, 5, z);
    gen_sample_dist(z, V, p0, scr, target);
    gen_request *reqs = calloc((size_t)n_draws, sizeof *reqs);
    gen_result *res = calloc((size_t)n_draws, sizeof *res);
    for (int32_t i = 0; i < n_draws; i++)
        reqs[i] = (gen_request){prompt, 5, (uint64_t)i, NULL};
    gen_params p = *p0;
    p.max_new_tokens = 1;
    gen_engine *g = engine(m, 256, 8);
    mart_err err = {0};
    assert_int_equal(gen_generate(g, reqs, n_draws, &p, NULL, NULL, res, &err), MART_OK);
    int64_t count[8] = {0};
    for (int32_t i = 0; i < n_draws; i++) {
        assert_int_equal(res[i].n_tokens, 1);
        int32_t t = res[i].tokens[0];
        count[t]++;
        assert_true(target[t] > 0.0);
        assert_float_equal(res[i].logprobs[0], log(target[t]), 1e-4);
        gen_result_free(&res[i]);
    }
    /* Pearson's statistic over the kept tokens; bins expected below 5 are pooled. */
    double chi = 0.0, pool_e = 0.0, pool_o = 0.0;
    int32_t bins = 0;
    for (int32_t t = 0; t < V; t++) {
        double e = target[t] * n_draws;
        if (target[t] == 0.0) {
            assert_int_equal(count[t], 0);
            continue;
        }
        if (e < 5.0) {
            pool_e += e;
            pool_o += (double)count[t];
            continue;
        }
        chi += ((double)count[t] - e) * ((double)count[t] - e) / e;
        bins++;
    }
    if (pool_e > 0.0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        bins++;
    }
    /* 0.1% critical values of chi-square for 1..7 degrees of freedom. */
    static const double crit[8] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
    if (bins >= 2 && chi >= crit[bins - 1])
        fprintf(stderr, "chi-square %.2f with %d bins\n", chi, bins);
    assert_true(bins < 2 || chi < crit[bins - 1]); /* one bin: nothing to test beyond the above */
    gen_free(g);
    free(reqs);
    free(res);
    return bins;
}

static void sampling_frequencies_match_the_target_distribution(void **state) {
    (void)state;
    model *m = tiny_model(8, 4);
    for (int32_t i = 0; i < m->cfg.hidden_size; i++)
        m->final_norm[i] = 8.0f;
    int32_t n = quick() ? 2000 : 8000;
    /* two threads here: the per-thread sampler scratch is exercised (see main) */
    omp_set_num_threads(2);
    gen_params p;
    gen_params_default(&p);
    p.seed = 5;
    assert_true(check_chi_square(m, &p, n) >= 4); /* the test has power */
    omp_set_num_threads(1);
    p.temperature = 0.7f;
    p.top_k = 6;
    check_chi_square(m, &p, n);
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 0.9f;
    check_chi_square(m, &p, n);
    model_free(m);
}

static void top_k_and_top_p_keep_exactly_the_heaviest_tokens(void **state) {
    (void)state;
    enum { V = 50 };
    float z[V];
    double pr[V], full[V];
    gen_cand scr[V];
    mart_rng r;
    mart_rng_seed(&r, 1, 0);
    for (int32_t j = 0; j < V; j++)
        z[j] = 2.0f * mart_rng_normal(&r);
    z[7] = z[8]; /* a tie */
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.8f;
    gen_sample_dist(z, V, &p, scr, full);
    for (int32_t k = 1; k <= V; k += 7) {
        p.top_k = k;
        gen_sample_dist(z, V, &p, scr, pr);
        int32_t kept = 0;
        double sum = 0.0;
        for (int32_t j = 0; j < V; j++) {
            if (pr[j] > 0.0) kept++;
            sum += pr[j];
            for (int32_t i = 0; i < V; i++) /* nothing dropped outranks something kept */
                if (pr[j] > 0.0 && pr[i] == 0.0)
                    assert_true(z[i] < z[j] || (z[i] == z[j] && i > j));
        }
        assert_int_equal(kept, k);
        assert_float_equal(sum, 1.0, 1e-9);
    }
    p.top_k = 0;
    for (float tp = 0.05f; tp < 1.0f; tp += 0.1f) {
        p.top_p = tp;
        gen_sample_dist(z, V, &p, scr, pr);
        double kept_mass = 0.0, smallest = 1.0;
        for (int32_t j = 0; j < V; j++)
            if (pr[j] > 0.0) {
                kept_mass += full[j];
                smallest = full[j] < smallest ? full[j] : smallest;
                assert_float_equal(pr[j] / full[j], pr[argmax(z, V)] / full[argmax(z, V)], 1e-5);
            }
        assert_true(kept_mass >= tp - 1e-6);           /* reaches top_p */
        assert_true(kept_mass - smallest < tp + 1e-6); /* and is the shortest such prefix */
    }
    /* Without truncation the log-prob is the plain log-softmax; greedy takes the argmax. */
    p.top_p = 1.0f;
    p.temperature = 1.0f;
    for (int32_t i = 0; i < 20; i++) {
        float lp;
        int32_t t = gen_sample_row(z, V, &p, mart_rng_uniform(&r), scr, &lp);
        assert_float_equal(lp, log_softmax_at(z, V, t), 1e-5);
    }
    p.temperature = 0.0f;
    float lp;
    assert_int_equal(gen_sample_row(z, V, &p, 0.5, scr, &lp), argmax(z, V));
}

typedef struct {
    int32_t stop_after;
    int32_t calls;
    gen_finish last_finish;
} stop_ctx;

static gen_action stop_early(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                             gen_finish finish) {
    stop_ctx *c = ctx;
    (void)user;
    (void)token;
    (void)logprob;
    c->last_finish = finish;
    int32_t big[200] = {0};
    assert_int_equal(gen_seq_append(seq, big, 200), MART_ERR); /* beyond max_len */
    return ++c->calls == c->stop_after ? GEN_STOP : GEN_CONTINUE;
}

static void budgets_stop_ids_and_callbacks_end_sequences(void **state) {
    (void)state;
    model *m = tiny_model(0, 5);
    gen_engine *g = engine(m, 2, 16);
    int32_t prompt[10];
    random_prompt(prompt, 10, m->cfg.vocab_size, 9);
    gen_request req = {prompt, 10, 0, NULL};
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 5;
    gen_result a, b;
    mart_err err = {0};
    /* The budget ends it. */
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &a, &err), MART_OK);
    assert_int_equal(a.n_sampled, 5);
    assert_int_equal(a.finish, GEN_FINISH_LENGTH);
    /* A stop id ends it, and is kept. */
    p.stop_ids = &a.tokens[2];
    p.n_stop_ids = 1;
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &b, &err), MART_OK);
    int32_t first = 0;
    while (a.tokens[first] != a.tokens[2])
        first++;
    assert_int_equal(b.n_tokens, first + 1);
    assert_int_equal(b.finish, GEN_FINISH_STOP);
    gen_result_free(&b);
    /* max_len ends it: 10 + 6 = 16. */
    p.n_stop_ids = 0;
    p.max_new_tokens = 100;
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &b, &err), MART_OK);
    assert_int_equal(b.n_tokens, 6);
    assert_int_equal(b.finish, GEN_FINISH_LENGTH);
    gen_result_free(&b);
    /* The callback ends it; it sees LENGTH on the last token of the budget. */
    stop_ctx c = {3, 0, GEN_FINISH_NONE};
    assert_int_equal(gen_generate(g, &req, 1, &p, stop_early, &c, &b, &err), MART_OK);
    assert_int_equal(b.n_tokens, 3);
    assert_int_equal(b.finish, GEN_FINISH_STOP);
    gen_result_free(&b);
    c = (stop_ctx){100, 0, GEN_FINISH_NONE};
    p.max_new_tokens = 4;
    assert_int_equal(gen_generate(g, &req, 1, &p, stop_early, &c, &b, &err), MART_OK);
    assert_int_equal(c.calls, 4);
    assert_int_equal(c.last_finish, GEN_FINISH_LENGTH);
    assert_int_equal(b.finish, GEN_FINISH_LENGTH);
    gen_result_free(&b);
    gen_result_free(&a);
    gen_free(g);
    model_free(m);
}

static void the_kv_budget_limits_slots_and_rejects_what_cannot_fit(void **state) {
    (void)state;
    model *m = tiny_model(0, 6);
    /* tiny: 4 layers x 64 kv dims x 2 x 4 bytes = 2 KB per position; 512 positions = 1 MB. */
    gen_config gc = {64, 0, 512, false, false};
    gen_engine *g = NULL;
    mart_err err = {0};
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "budget"));
    assert_null(g);
    gc.kv_budget_mb = 3;
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_OK);
    assert_int_equal(gen_slots(g), 3);
    int32_t prompt[600] = {0};
    gen_request req = {prompt, 600, 0, NULL};
    gen_params p;
    gen_params_default(&p);
    gen_result res;
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &res, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "max_len"));
    prompt[3] = 100000;
    req.n_prompt = 10;
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &res, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "position 3"));
    gen_free(g);
    model_free(m);
}

/* The decoding matrix product (AVX-512; M <= 4 from float32 weights, M <= 64 from BF16
 * copies) against sgemm, with and without bias, overwriting and accumulating. */
static void the_small_m_matrix_product_matches_sgemm(void **state) {
    (void)state;
    enum { N = 37, K = 203, MMAX = 64 }; /* N, K: neither a multiple of the vector width */
    const mart_backend *fast = mart_backend_cpu(), *plain = mart_backend_cpu_sgemm_only();
    float *w = malloc((size_t)(N * K) * sizeof(float)),
          *x = malloc((size_t)(MMAX * K) * sizeof(float));
    float *y0 = malloc((size_t)(MMAX * N) * sizeof(float)),
          *y1 = malloc((size_t)(MMAX * N) * sizeof(float));
    float b[N];
    mart_rng r;
    mart_rng_seed(&r, 3, 0);
    for (int64_t i = 0; i < N * K; i++)
        w[i] = mart_rng_normal(&r);
    for (int64_t i = 0; i < MMAX * K; i++)
        x[i] = mart_rng_normal(&r);
    for (int64_t i = 0; i < N; i++)
        b[i] = mart_rng_normal(&r);
    static const int64_t ms[] = {1, 2, 3, 4, 5, 7, 17, 64};
    for (int bf = 0; bf < 2; bf++) {
        uint16_t *w16 = NULL;
        if (bf) {
            round_to_bf16(w, N * K);
            w16 = fast->bf16_copy(fast, w, N * K); /* NULL where no kernel reads copies */
        } else {
            assert_null(fast->bf16_copy(fast, w, N * K)); /* not exact: no copy */
        }
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (int acc = 0; acc < 2; acc++) {
                int64_t M = ms[mi];
                for (int64_t i = 0; i < M * N; i++)
                    y0[i] = y1[i] = (float)i;
                plain->linear(plain, y0, x, w, NULL, acc ? NULL : b, M, N, K, acc,
                              MART_PRODUCTS_EXACT);
                fast->linear(fast, y1, x, w, w16, acc ? NULL : b, M, N, K, acc,
                             MART_PRODUCTS_EXACT);
                for (int64_t i = 0; i < M * N; i++)
                    assert_float_equal(y0[i], y1[i], 1e-3);
            }
        fast->free(fast, w16);
    }
    free(w);
    free(x);
    free(y0);
    free(y1);
}

/* Relative tolerance of BF16 products against a double-precision reference over the same
 * (BF16-rounded) inputs, as a fraction of sum |x w|: what float32 accumulation of the products
 * in 32-element steps allows (K / 32 roundings of 2^-24 each, K up to ~2000), with margin. */
#define BF16_PRODUCT_TOL 1e-5

/* Random x (M, K), BF16 weights w (N, K) with their BF16 copy w16, bias b (N). */
typedef struct {
    int64_t M, N, K;
    float *x, *w, *b, *y;
    uint16_t *w16;
} product_case;

static product_case product_case_make(int64_t M, int64_t N, int64_t K, uint64_t seed) {
    product_case c = {M, N, K, NULL, NULL, NULL, NULL, NULL};
    c.x = malloc((size_t)(M * K) * sizeof(float));
    c.w = malloc((size_t)(N * K) * sizeof(float));
    c.b = malloc((size_t)N * sizeof(float));
    c.y = malloc((size_t)(M * N) * sizeof(float));
    mart_rng r;
    mart_rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < M * K; i++)
        c.x[i] = mart_rng_normal(&r);
    for (int64_t i = 0; i < N * K; i++)
        c.w[i] = mart_rng_normal(&r);
    for (int64_t i = 0; i < N; i++)
        c.b[i] = mart_rng_normal(&r);
    round_to_bf16(c.w, N * K);
    const mart_backend *be = mart_backend_cpu();
    c.w16 = be->bf16_copy(be, c.w, N * K);
    assert_non_null(c.w16);
    return c;
}

/* y (M, N) = x · w^T (+ b) (or += with acc), products as asked. */
static void product_case_run(const product_case *c, float *y, const float *x, int64_t M,
                             const float *b, bool acc, mart_products products) {
    const mart_backend *be = mart_backend_cpu();
    be->linear(be, y, x, c->w, c->w16, b, M, c->N, c->K, acc, products);
}

static void product_case_free(product_case *c) {
    mart_backend_cpu()->free(mart_backend_cpu(), c->w16);
    free(c->x);
    free(c->w);
    free(c->b);
    free(c->y);
}

/* y[m, n] against sum_k bf16(x[m, k]) w[n, k] (+ b[n]) (+ y0) in double. */
static void check_bf16_products(const product_case *c, int64_t M, const float *y, const float *b,
                                const float *y0) {
    float *xr = malloc((size_t)c->K * sizeof(float));
    for (int64_t m = 0; m < M; m++) {
        memcpy(xr, c->x + m * c->K, (size_t)c->K * sizeof(float));
        round_to_bf16(xr, c->K);
        for (int64_t n = 0; n < c->N; n++) {
            double ref = 0.0, mag = 0.0;
            for (int64_t k = 0; k < c->K; k++) {
                double t = (double)xr[k] * c->w[n * c->K + k];
                ref += t;
                mag += fabs(t);
            }
            ref += (b ? b[n] : 0.0) + (y0 ? y0[m * c->N + n] : 0.0);
            double got = y[m * c->N + n];
            if (fabs(got - ref) > BF16_PRODUCT_TOL * mag)
                fail_msg("M %lld K %lld: y[%lld, %lld] = %.9g, reference %.9g (sum |xw| %.4g)",
                         (long long)M, (long long)c->K, (long long)m, (long long)n, got, ref, mag);
        }
    }
    free(xr);
}

/* BF16 products against the double reference, with bias and accumulating; M from 1 to two
 * chunks of rows, K not a multiple of the 32-element step and above the kernel's K part
 * (1024), N not a multiple of the 4-row tile. */
static void bf16_products_match_a_double_reference_over_the_rounded_inputs(void **state) {
    (void)state;
    if (!bf16_products_supported()) skip();
    static const int64_t ks[] = {83, 896, 2100};
    static const int64_t ms[] = {1, 2, 3, 4, 5, 17, 64, 100};
    enum { N = 37, MMAX = 100 };
    float *y0 = malloc((size_t)(MMAX * N) * sizeof(float));
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        product_case c = product_case_make(MMAX, N, ks[ki], 5 + ki);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (int acc = 0; acc < 2; acc++) {
                int64_t M = ms[mi];
                for (int64_t i = 0; i < M * N; i++)
                    y0[i] = c.y[i] = 0.25f * (float)(i % 7);
                product_case_run(&c, c.y, c.x, M, acc ? NULL : c.b, acc, MART_PRODUCTS_BF16);
                check_bf16_products(&c, M, c.y, acc ? NULL : c.b, acc ? y0 : NULL);
            }
        product_case_free(&c);
    }
    free(y0);
}

/* The per-call choice: exact products give the float32 results (up to the order of the sums)
 * even from the BF16 copy, BF16 products differ from them by the rounding of x, about 2^-9
 * relative. */
static void exact_products_give_the_float32_results(void **state) {
    (void)state;
    if (!bf16_products_supported()) skip();
    enum { M = 5, N = 37, K = 203 };
    product_case c = product_case_make(M, N, K, 9);
    float bf[M * N];
    product_case_run(&c, bf, c.x, M, c.b, false, MART_PRODUCTS_BF16);
    product_case_run(&c, c.y, c.x, M, c.b, false, MART_PRODUCTS_EXACT);
    double max_rel = 0.0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double ref = c.b[n], mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                ref += (double)c.x[m * K + k] * c.w[n * K + k];
                mag += fabs((double)c.x[m * K + k] * c.w[n * K + k]);
            }
            assert_true(fabs(c.y[m * N + n] - ref) <= BF16_PRODUCT_TOL * mag);
            double rel = fabs(bf[m * N + n] - ref) / mag;
            max_rel = rel > max_rel ? rel : max_rel;
        }
    assert_true(max_rel > 1e-5 && max_rel < 4e-3); /* rounded, by at most 2^-8 */
    product_case_free(&c);
}

/* Row m of y is bitwise the same computed alone (M = 1) or among other rows (M = 2, 3: the
 * memory-bound loop; M = 5, 17, 64: the tiles; M = 100: two chunks of rows), with K in one
 * part or several. */
static void with_bf16_products_a_row_does_not_depend_on_the_other_rows(void **state) {
    (void)state;
    if (!bf16_products_supported()) skip();
    static const int64_t ks[] = {83, 2100};
    static const int64_t ms[] = {2, 3, 5, 17, 64, 100};
    enum { N = 37, MMAX = 100 };
    float alone[N];
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        product_case c = product_case_make(MMAX, N, ks[ki], 11 + ki);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            int64_t M = ms[mi];
            product_case_run(&c, c.y, c.x, M, c.b, false, MART_PRODUCTS_BF16);
            for (int64_t m = 0; m < M; m++) {
                product_case_run(&c, alone, c.x + m * c.K, 1, c.b, false, MART_PRODUCTS_BF16);
                assert_memory_equal(alone, c.y + m * N, sizeof alone);
            }
        }
        product_case_free(&c);
    }
}

/* Checks every sampled token of prompt ++ res against forward passes with BF16 products
 * through a KV cache, in the engine's shapes for one request (the prompt in one pass, then
 * one token a pass): the same products, so the same logits to the bit. */
static void check_against_cached_bf16_forward(model *m, const int32_t *prompt, int32_t n_prompt,
                                              const gen_result *res) {
    const int32_t V = m->cfg.vocab_size;
    model_kv_cache kv;
    mart_err err = {0};
    assert_int_equal(model_kv_create(&kv, m, 1, n_prompt + res->n_tokens + 1, &err),
                     MART_OK);
    float *z = malloc((size_t)V * sizeof(float));
    int32_t slot = 0;
    for (int32_t i = 0; i < res->n_tokens; i++) {
        const int32_t *tok = i == 0 ? prompt : &res->tokens[i - 1];
        int32_t off[2] = {0, i == 0 ? n_prompt : 1};
        model_batch b = {1, tok, off, &slot};
        model_out o = {.last_only = true, .logits = z, .products = MART_PRODUCTS_BF16};
        assert_int_equal(model_forward(m, &b, &kv, &o, false, &err), MART_OK);
        assert_int_equal(res->tokens[i], argmax(z, V));
        assert_float_equal(res->logprobs[i], log_softmax_at(z, V, res->tokens[i]), 1e-5);
    }
    free(z);
    model_kv_free(&kv);
}

/* Decodes from BF16 weights: with exact products against full forward passes; with BF16
 * products (which round the activations, so that a pass over other shapes may round
 * differently) against cached forward passes with BF16 products. */
static void check_bf16_greedy_decoding(bool products) {
    model *m = tiny_model(0, 12);
    round_to_bf16(m->params, m->n_params);
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = 2;
    gc.max_len = 64;
    gc.bf16_products = products;
    gen_engine *g = NULL;
    mart_err err = {0};
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_OK);
    int32_t prompt[5];
    random_prompt(prompt, 5, m->cfg.vocab_size, 4);
    gen_request req = {prompt, 5, 0, NULL};
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 16;
    gen_result res;
    assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &res, &err), MART_OK);
    if (products)
        check_against_cached_bf16_forward(m, prompt, 5, &res);
    else
        check_against_full_forward(m, prompt, 5, &res, true);
    gen_result_free(&res);
    gen_free(g);
    model_free(m);
}

static void greedy_decoding_from_bf16_weights_equals_full_forward_passes(void **state) {
    (void)state;
    check_bf16_greedy_decoding(true);
    check_bf16_greedy_decoding(false);
}

/* The CLI contract: `mart generate` on a saved random model prints one line per sample in
 * input order with tokens, text, logprobs and finish; greedy lines equal gen_generate's. */
static void mart_generate_prints_one_line_per_sample_in_input_order(void **state) {
    (void)state;
    const char *bin = getenv("MART_BIN");
    if (!bin) fail_msg("MART_BIN is not set (run through ctest)");
    char dir[] = "/tmp/mart_gen_XXXXXX";
    assert_non_null(mkdtemp(dir));
    mart_err err = {0};
    tok_tokenizer *tok = NULL;
    assert_int_equal(tok_build_bytes(NULL, 0, 0, &tok, &err), MART_OK);
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(tok_save(tok, path, &err), MART_OK);
    model *m = tiny_model(tok_vocab_size(tok), 8);
    assert_int_equal(model_save(m, dir, &err), MART_OK);
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"prompt\":\"hello\"}\n{\"tokens\":[1,2,3,4]}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 %s generate --model %s --input %s --max-tokens 6 --temperature 0 "
             "--n 2 --exact-products 2>/dev/null",
             bin, dir, path);
    FILE *pp = popen(cmd, "r");
    assert_non_null(pp);
    char line[8192];
    int32_t n_lines = 0;
    int32_t p_hello[16], n_hello = 0;
    for (const char *c = "hello"; *c; c++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        assert_int_equal(tok_encode(tok, c, 1, &ids, &n, &err), MART_OK);
        p_hello[n_hello++] = ids[0];
        free(ids);
    }
    int32_t p_ids[4] = {1, 2, 3, 4};
    gen_engine *g = engine(m, 4, 64);
    while (fgets(line, sizeof line, pp)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const cJSON *toks = cJSON_GetObjectItem(o, "tokens"),
                    *lps = cJSON_GetObjectItem(o, "logprobs");
        assert_true(cJSON_IsArray(toks) && cJSON_IsArray(lps));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "text")));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "finish")));
        gen_request req = {n_lines < 2 ? p_hello : p_ids, n_lines < 2 ? n_hello : 4, 0, NULL};
        gen_params p;
        gen_params_default(&p);
        p.temperature = 0.0f;
        p.max_new_tokens = 6;
        int32_t stops[2] = {tok_special_id(tok, "<|im_end|>"),
                            tok_special_id(tok, "<|endoftext|>")};
        p.stop_ids = stops;
        p.n_stop_ids = 2;
        gen_result r;
        assert_int_equal(gen_generate(g, &req, 1, &p, NULL, NULL, &r, &err), MART_OK);
        assert_int_equal(cJSON_GetArraySize(toks), r.n_tokens);
        assert_int_equal(cJSON_GetArraySize(lps), r.n_tokens);
        for (int32_t i = 0; i < r.n_tokens; i++) {
            assert_int_equal(cJSON_GetArrayItem(toks, i)->valueint, r.tokens[i]);
            assert_float_equal(cJSON_GetArrayItem(lps, i)->valuedouble, r.logprobs[i], 1e-4);
        }
        assert_string_equal(cJSON_GetObjectItem(o, "finish")->valuestring,
                            r.finish == GEN_FINISH_STOP ? "stop" : "length");
        gen_result_free(&r);
        cJSON_Delete(o);
        n_lines++;
    }
    assert_int_equal(pclose(pp), 0);
    assert_int_equal(n_lines, 4);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    gen_free(g);
    model_free(m);
    tok_free(tok);
}

int main(void) {
    /* One thread: on the shared 2-core machine, OpenMP barriers of two threads make these
     * many small forward passes ten times slower under load; results do not depend on it. */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_decoding_equals_argmax_of_full_forward_passes),
        cmocka_unit_test(a_sequence_decodes_identically_alone_or_in_a_batch_of_64),
        cmocka_unit_test(continuous_batching_over_fewer_slots_gives_the_same_samples),
        cmocka_unit_test(long_shared_prompts_are_prefilled_in_chunks_and_copied),
        cmocka_unit_test(continuation_equals_decoding_the_concatenation_from_scratch),
        cmocka_unit_test(a_turn_appended_after_a_stop_id_resumes_decoding),
        cmocka_unit_test(sampling_frequencies_match_the_target_distribution),
        cmocka_unit_test(top_k_and_top_p_keep_exactly_the_heaviest_tokens),
        cmocka_unit_test(budgets_stop_ids_and_callbacks_end_sequences),
        cmocka_unit_test(the_kv_budget_limits_slots_and_rejects_what_cannot_fit),
        cmocka_unit_test(mart_generate_prints_one_line_per_sample_in_input_order),
        cmocka_unit_test(the_small_m_matrix_product_matches_sgemm),
        cmocka_unit_test(greedy_decoding_from_bf16_weights_equals_full_forward_passes),
        cmocka_unit_test(bf16_products_match_a_double_reference_over_the_rounded_inputs),
        cmocka_unit_test(exact_products_give_the_float32_results),
        cmocka_unit_test(with_bf16_products_a_row_does_not_depend_on_the_other_rows),
        cmocka_unit_test(with_bf16_products_a_sequence_decodes_identically_alone_or_in_a_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
