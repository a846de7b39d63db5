/* rl: PPO/GRPO math against hand-computed values, GAE pass-through across feedback spans,
 * gradients through the model, micro-batch invariance, and short training runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mart/rl.h"
#include "mart/tok.h"

#define TOL 1e-5

/* ---- GAE ---- */

/* Hand-computed: tokens P P a b F F c, reward 1 on c, V = (.5, .2, .4) on a, b, c.
 *   A_c = 1 - .4 = .6
 *   A_b = 0 + V_c - V_b + .99*A_c = .2 + .594 = .794   (the feedback span is transparent)
 *   A_a = 0 + V_b - V_a + .99*A_b = -.3 + .78606 = .48606 */
static void gae_passes_credit_straight_through_a_feedback_span(void **state) {
    (void)state;
    uint8_t tr[7] = {0, 0, 1, 1, 0, 0, 1};
    float r[7] = {0, 0, 0, 0, 0, 0, 1};
    float v[7] = {9, 9, .5f, .2f, 7, -3, .4f}; /* prompt/feedback values must not matter */
    float a[7], ret[7];
    rl_gae(7, tr, r, v, 1.0f, 0.99f, a, ret);
    assert_float_equal(a[6], 0.6, TOL);
    assert_float_equal(a[3], 0.794, TOL);
    assert_float_equal(a[2], 0.48606, TOL);
    assert_float_equal(ret[6], 1.0, TOL);
    assert_float_equal(ret[3], 0.994, TOL);
    assert_float_equal(ret[2], 0.98606, TOL);
    for (int i = 0; i < 7; i++)
        if (!tr[i]) {
            assert_true(a[i] == 0.0f);
            assert_true(ret[i] == 0.0f);
        }
}

/* The literal rule of SPEC §3, written independently: backwards over the generated part,
 * every token (feedback included) has a delta; gamma = lambda = 1 for steps whose next token
 * is feedback. */
static void gae_literal(int n, int n_prompt, const uint8_t *tr, const float *r, const float *v,
                        float gamma, float lambda, float *a) {
    float next_v = 0, next_a = 0;
    int last = n - 1;
    while (last >= n_prompt && !tr[last]) last--; /* trailing non-model tokens: no step */
    for (int i = last; i >= n_prompt; i--) {
        bool next_fb = i + 1 <= last && !tr[i + 1];
        float g = next_fb ? 1.0f : gamma, l = next_fb ? 1.0f : lambda;
        float delta = (tr[i] ? r[i] : 0.0f) + g * next_v - v[i];
        a[i] = delta + g * l * next_a;
        next_v = v[i];
        next_a = a[i];
    }
}

static void gae_equals_the_literal_feedback_rule_on_random_episodes(void **state) {
    (void)state;
    mart_rng rng;
    mart_rng_seed(&rng, 3, 0);
    for (int trial = 0; trial < 200; trial++) {
        int n = 4 + (int)mart_rng_range(&rng, 0, 30), np = 1 + (int)mart_rng_range(&rng, 0, 2);
        uint8_t tr[40];
        float r[40] = {0}, v[40], a[40], ret[40], lit[40];
        for (int i = 0; i < n; i++) {
            tr[i] = i >= np && mart_rng_uniform(&rng) < 0.7;
            v[i] = mart_rng_normal(&rng);
        }
        tr[np] = 1;
        int last = n - 1;
        while (!tr[last]) last--;
        r[last] = (float)mart_rng_normal(&rng);
        float gamma = trial % 2 ? 1.0f : 0.9f;
        rl_gae(n, tr, r, v, gamma, 0.99f, a, ret);
        gae_literal(n, np, tr, r, v, gamma, 0.99f, lit);
        for (int i = np; i <= last; i++)
            if (tr[i]) {
                assert_float_equal(a[i], lit[i], 1e-4);
                assert_float_equal(ret[i], lit[i] + v[i], 1e-4);
            }
    }
}

/* ---- losses ---- */

static void policy_loss_matches_hand_computed_clipped_surrogate(void **state) {
    (void)state;
    float d;
    bool c;
    /* ratio e^.2 = 1.221403 > 1.2, A = 2: the clipped term 2.4 is smaller, gradient 0 */
    assert_float_equal(rl_policy_loss(-1.0f, -1.2f, 2.0f, 0.2f, &d, &c), -2.4, TOL);
    assert_true(c);
    assert_true(d == 0.0f);
    /* A = -2: unclipped -2.442806 is smaller; dloss/dlogp = -ratio*A */
    assert_float_equal(rl_policy_loss(-1.0f, -1.2f, -2.0f, 0.2f, &d, &c), 2.442806, TOL);
    assert_false(c);
    assert_float_equal(d, 2.442806, TOL);
    /* inside the clip range: ratio e^.1 = 1.105171, A = .5 */
    assert_float_equal(rl_policy_loss(-1.0f, -1.1f, 0.5f, 0.2f, &d, &c), -0.5525855, TOL);
    assert_false(c);
    assert_float_equal(d, -0.5525855, TOL);
    /* ratio exactly 1: gradient -A */
    assert_float_equal(rl_policy_loss(-2.0f, -2.0f, 0.7f, 0.2f, &d, &c), -0.7, TOL);
    assert_float_equal(d, -0.7, TOL);
}

static void policy_loss_gradient_matches_finite_differences(void **state) {
    (void)state;
    const float lp[] = {-1.0f, -0.7f, -1.3f, -2.0f}, adv[] = {1.5f, -0.8f, 0.3f, -2.0f};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double h = 1e-3, old = -1.05;
            float d;
            double lo = rl_policy_loss((float)(lp[i] - h), (float)old, adv[j], 0.2f, NULL, NULL);
            double hi = rl_policy_loss((float)(lp[i] + h), (float)old, adv[j], 0.2f, NULL, NULL);
            rl_policy_loss(lp[i], (float)old, adv[j], 0.2f, &d, NULL);
            assert_float_equal(d, (hi - lo) / (2 * h), 2e-3);
        }
}

static void kl_k3_matches_hand_computed_value_and_gradient(void **state) {
    (void)state;
    float d;
    /* r = -1.5 - (-1) = -.5: e^-.5 - 1 + .5 = .1065307; d = 1 - e^-.5 = .3934693 */
    assert_float_equal(rl_kl_k3(-1.0f, -1.5f, 0.0f, &d), 0.1065307, TOL);
    assert_float_equal(d, 0.3934693, TOL);
    /* same policies: 0 and gradient 0 */
    assert_float_equal(rl_kl_k3(-0.3f, -0.3f, 0.0f, &d), 0.0, TOL);
    assert_float_equal(d, 0.0, TOL);
    double h = 1e-3;
    double fd = (rl_kl_k3((float)(-0.8 + h), -1.9f, 0.0f, NULL) -
                 rl_kl_k3((float)(-0.8 - h), -1.9f, 0.0f, NULL)) /
                (2 * h);
    rl_kl_k3(-0.8f, -1.9f, 0.0f, &d);
    assert_float_equal(d, fd, 1e-3);
    /* k3 is never negative */
    for (float x = -5; x < 5; x += 0.25f) assert_true(rl_kl_k3(0.0f, x, 0.0f, NULL) >= 0.0f);
}

/* The reference does not clamp r: at r = 12, k3 = e^12 - 13 with gradient 1 - e^12. mart's
 * --kl-clamp 10 holds r at 10 and stops the gradient there. */
static void kl_k3_is_unclamped_by_default_and_clamped_on_request(void **state) {
    (void)state;
    float d;
    assert_float_equal(rl_kl_k3(-12.0f, 0.0f, 0.0f, &d), exp(12.0) - 13.0, 1e-2);
    assert_float_equal(d, 1.0 - exp(12.0), 1e-2);
    assert_float_equal(rl_kl_k3(-12.0f, 0.0f, 10.0f, &d), exp(10.0) - 11.0, 1e-2);
    assert_true(d == 0.0f);
    assert_float_equal(rl_kl_k3(12.0f, 0.0f, 10.0f, &d), exp(-10.0) - 1.0 + 10.0, 1e-5);
    assert_true(d == 0.0f);
    /* inside the clamp both agree */
    float d2;
    assert_true(rl_kl_k3(-3.0f, -1.0f, 10.0f, &d) == rl_kl_k3(-3.0f, -1.0f, 0.0f, &d2));
    assert_true(d == d2);
}

/* Whitening with known numbers: trainable advantages 1, 2, 3, 6 (masked entries 100 and -50
 * ignored): mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5. The same batch split into parts
 * (as ranks would hold it), moments added part by part, gives the same result; a batch of
 * equal advantages stays finite (variance clamped at 1e-8). */
static void whitening_uses_the_trainable_tokens_of_the_whole_batch(void **state) {
    (void)state;
    float a[6] = {1, 100, 2, 3, -50, 6};
    const uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    rl_moments m = {0};
    rl_moments_add_sum(&m, a, mask, 6);
    assert_true(m.count == 4 && m.sum == 12);
    rl_moments_add_dev(&m, a, mask, 6, 3.0);
    assert_true(m.dev == 14);
    double sc = rl_whiten_scale(m.dev / m.count);
    assert_float_equal(sc, 1.0 / sqrt(3.5), 1e-15);
    rl_whiten(a, mask, 6, 3.0, sc);
    const double want[6] = {-2 / sqrt(3.5), 100, -1 / sqrt(3.5), 0, -50, 3 / sqrt(3.5)};
    for (int i = 0; i < 6; i++)
        assert_float_equal(a[i], want[i], 1e-6);

    /* parts: episodes of one rollout batch spread over three "ranks" */
    float b[6] = {1, 100, 2, 3, -50, 6};
    const int32_t cut[4] = {0, 1, 4, 6};
    rl_moments mp = {0};
    for (int p = 0; p < 3; p++)
        rl_moments_add_sum(&mp, b + cut[p], mask + cut[p], cut[p + 1] - cut[p]);
    double mean = mp.sum / mp.count;
    for (int p = 0; p < 3; p++)
        rl_moments_add_dev(&mp, b + cut[p], mask + cut[p], cut[p + 1] - cut[p], mean);
    double scp = rl_whiten_scale(mp.dev / mp.count);
    for (int p = 0; p < 3; p++)
        rl_whiten(b + cut[p], mask + cut[p], cut[p + 1] - cut[p], mean, scp);
    assert_memory_equal(a, b, sizeof a);

    float c[3] = {0.5f, 0.5f, 0.5f};
    const uint8_t all[3] = {1, 1, 1};
    rl_moments mc = {0};
    rl_moments_add_sum(&mc, c, all, 3);
    rl_moments_add_dev(&mc, c, all, 3, mc.sum / mc.count);
    rl_whiten(c, all, 3, mc.sum / mc.count, rl_whiten_scale(mc.dev / mc.count));
    for (int i = 0; i < 3; i++)
        assert_true(c[i] == 0.0f);
}

/* The reference's schedule is sized for 160 passes over the data: runs of 10 and of 200 steps
 * follow the same curve (warm-up over 3% of 160 passes, then near the peak), while a horizon
 * of 0 fits the schedule to the run (decay to 10% by its last step). */
static void the_schedule_follows_one_curve_whatever_the_run_length(void **state) {
    (void)state;
    /* 8000 problems, 1 sample, mini-batch 128: 62 steps a pass, 9920 in 160 passes */
    int64_t a = rl_schedule_steps(160, 8000, 10, 1024, 1, 128, 1),
            b = rl_schedule_steps(160, 8000, 200, 1024, 1, 128, 1);
    assert_int_equal(a, 9920);
    assert_int_equal(b, 9920);
    int64_t warm = (int64_t)ceil(0.03 * 9920); /* 298 optimiser steps: ~37 rollout steps */
    assert_int_equal(warm, 298);
    for (int64_t k = 0; k < 80; k++)
        assert_true(adamw_lr_at(k, a, 5e-7, 0.03, 0.1) == adamw_lr_at(k, b, 5e-7, 0.03, 0.1));
    assert_float_equal(adamw_lr_at(149, a, 5e-7, 0.03, 0.1), 5e-7 * 149 / 298, 1e-18);
    /* 1600 optimiser steps (200 rollout steps of 8): past warm-up, 13.5% into the cosine, at 96%
     * of the peak */
    double cosine = 0.1 + 0.9 * 0.5 * (1.0 + cos(M_PI * (1600.0 - 298.0) / (9920.0 - 298.0)));
    assert_float_equal(adamw_lr_at(1600, a, 5e-7, 0.03, 0.1), 5e-7 * cosine, 1e-18);
    assert_true(cosine > 0.95);
    /* horizon 0: the run's own steps (10 rollout steps x 8 optimiser steps) */
    int64_t own = rl_schedule_steps(0, 8000, 10, 1024, 1, 128, 1);
    assert_int_equal(own, 80);
    assert_float_equal(adamw_lr_at(80, own, 5e-7, 0.03, 0.1), 5e-8, 1e-18);
    /* at least one step a pass on tiny data */
    assert_int_equal(rl_schedule_steps(160, 3, 1, 3, 1, 128, 1), 160);
}

static void value_loss_takes_the_larger_of_clipped_and_unclipped_errors(void **state) {
    (void)state;
    float d;
    bool c;
    /* v .5, old .1, R 1: clipped v .3, errors .49 vs .25: clipped branch, outside range: d 0 */
    assert_float_equal(rl_value_loss(.5f, .1f, 1.0f, .2f, &d, &c), 0.245, TOL);
    assert_true(c);
    assert_true(d == 0.0f);
    /* R 0: errors .09 vs .25: unclipped, d = v - R */
    assert_float_equal(rl_value_loss(.5f, .1f, 0.0f, .2f, &d, &c), 0.125, TOL);
    assert_false(c);
    assert_float_equal(d, 0.5, TOL);
    /* inside the clip range both branches agree: .5*(.2-1)^2 = .32, d = -.8 */
    assert_float_equal(rl_value_loss(.2f, .1f, 1.0f, .2f, &d, &c), 0.32, TOL);
    assert_float_equal(d, -0.8, TOL);
}

static void group_advantages_match_hand_computed_grpo_and_rloo(void **state) {
    (void)state;
    float r[8] = {1, -0.5f, -1, 1, 1, 1, 1, 1}, a[8];
    rl_group_advantages(r, 2, 4, RL_GROUP_GRPO, a);
    /* mean .125, unbiased sd sqrt(3.1875/3) = 1.0307764 */
    assert_float_equal(a[0], 0.8488747, TOL);
    assert_float_equal(a[1], -0.6063391, TOL);
    assert_float_equal(a[2], -1.0914103, TOL);
    assert_float_equal(a[3], 0.8488747, TOL);
    for (int i = 4; i < 8; i++) assert_true(a[i] == 0.0f); /* all equal: no signal */
    rl_group_advantages(r, 2, 4, RL_GROUP_RLOO, a);
    assert_float_equal(a[0], 1.1666667, TOL);
    assert_float_equal(a[1], -0.8333333, TOL);
    assert_float_equal(a[2], -1.5, TOL);
    assert_float_equal(a[3], 1.1666667, TOL);
}

static void lr_warms_up_linearly_then_decays_by_cosine_to_a_tenth(void **state) {
    (void)state;
    /* total 200: warm-up ceil(6) = 6 steps, then cosine over 194 */
    assert_float_equal(adamw_lr_at(0, 200, 1.0, 0.03, 0.1), 0.0, 1e-12);
    assert_float_equal(adamw_lr_at(3, 200, 1.0, 0.03, 0.1), 0.5, 1e-12);
    assert_float_equal(adamw_lr_at(6, 200, 1.0, 0.03, 0.1), 1.0, 1e-12);
    assert_float_equal(adamw_lr_at(103, 200, 1.0, 0.03, 0.1), 0.55, 1e-12);
    assert_float_equal(adamw_lr_at(200, 200, 1.0, 0.03, 0.1), 0.1, 1e-12);
    double prev = 2;
    for (int s = 6; s <= 200; s++) {
        double lr = adamw_lr_at(s, 200, 1.0, 0.03, 0.1);
        assert_true(lr <= prev);
        prev = lr;
    }
}


/* ---- through the model ---- */

/* A model small enough for finite differences: byte vocabulary plus the ChatML specials. */
static model *small_model(uint64_t seed, bool value_head) {
    model_config cfg = {.arch = MART_ARCH_QWEN2, .vocab_size = 259, .hidden_size = 32,
                        .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 16,
                        .intermediate_size = 64, .max_position_embeddings = 256,
                        .rms_norm_eps = 1e-6f, .rope_theta = 10000.0, .tie_word_embeddings = true,
                        .attention_bias = true, .bos_token_id = -1, .eos_token_id = -1,
                        .dtype = MART_DTYPE_F32};
    model *m = model_create(&cfg, value_head, true);
    model_init_random(m, seed);
    if (value_head)
        for (int i = 0; i < cfg.hidden_size; i++) m->value_head[i] = 0.3f * (i % 3 - 1);
    return m;
}

/* Tokens: prompt (not trainable), model span, feedback span (not trainable), model span. */
static void make_sample(rl_sample *s, mart_rng *r, int32_t n_prompt, int32_t a, int32_t fb,
                        int32_t b) {
    env_episode e = {0};
    int32_t n = n_prompt + a + fb + b;
    e.n_tokens = n;
    e.n_prompt = n_prompt;
    e.tokens = calloc((size_t)n, sizeof(int32_t));
    e.trainable = calloc((size_t)n, 1);
    e.logprobs = calloc((size_t)n, sizeof(float));
    for (int32_t i = 0; i < n; i++) {
        e.tokens[i] = (int32_t)mart_rng_range(r, 0, 258);
        e.trainable[i] = (i >= n_prompt && i < n_prompt + a) || i >= n_prompt + a + fb;
    }
    e.reward = 1.0f;
    rl_sample_from_episode(s, &e);
    free(e.tokens);
    free(e.trainable);
    free(e.logprobs);
}

/* Fills old/ref logprobs and old values from the current models, plus a perturbation, and
 * advantages/returns; garbage (that must not matter) at positions that are not trainable. */
static void fill_sample(rl_sample *s, model *actor, model *critic, mart_rng *r, float lp_noise,
                        float adv_scale, bool garbage) {
    rl_sample *ps[1] = {s};
    float *lp[1] = {s->old_logprobs}, *v[1] = {s->old_values};
    mart_err err;
    assert_int_equal(rl_score(actor, ps, 1, 1, 1.0f, lp, NULL, &err), MART_OK);
    if (critic) assert_int_equal(rl_score(critic, ps, 1, 1, 1.0f, NULL, v, &err), MART_OK);
    for (int32_t i = 0; i < s->n_tokens; i++) {
        if (s->trainable[i]) {
            s->ref_logprobs[i] = s->old_logprobs[i] + lp_noise * mart_rng_normal(r);
            s->old_logprobs[i] += lp_noise * mart_rng_normal(r);
            s->advantages[i] = adv_scale * mart_rng_normal(r);
            s->returns[i] = s->old_values[i] + adv_scale * mart_rng_normal(r);
            s->old_values[i] += 0.05f * mart_rng_normal(r);
        } else if (garbage) {
            s->old_logprobs[i] = -50.0f;
            s->ref_logprobs[i] = 30.0f;
            s->advantages[i] = 1000.0f;
            s->returns[i] = -1000.0f;
            s->old_values[i] = 77.0f;
        }
    }
}

static void feedback_and_prompt_tokens_receive_exactly_zero_gradient(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 11, 0);
    model *actor = small_model(1, false), *critic = small_model(2, true);
    rl_sample s;
    make_sample(&s, &r, 6, 5, 7, 4);
    rl_loss_config lc;
    rl_loss_config_default(&lc);
    rl_sample *ps[1] = {&s};
    mart_err err;
    /* 1. Trainable tokens at ratio 1, KL 0, advantage 0: their loss gradient is 0. Prompt and
     * feedback entries carry huge garbage: any leak shows up as a nonzero actor gradient. */
    fill_sample(&s, actor, critic, &r, 0.0f, 0.0f, true);
    rl_stats st = {0};
    model_zero_grads(actor);
    assert_int_equal(rl_actor_backward(actor, ps, 1, &lc, 1.0 / s.n_trainable, &st, &err), MART_OK);
    for (int64_t i = 0; i < actor->n_params; i++) assert_true(actor->grads[i] == 0.0f);
    assert_true(st.n_tokens == s.n_trainable);
    assert_true(st.max_ratio_dev < 1e-6);
    /* 2. Realistic values on the model tokens: the gradients with garbage on the other tokens
     * are bit-identical to those with zeros there, for the actor and for the critic. */
    mart_rng_seed(&r, 12, 0);
    fill_sample(&s, actor, critic, &r, 0.1f, 1.0f, true);
    model *ms[2] = {actor, critic};
    float *with_garbage[2];
    for (int k = 0; k < 2; k++) {
        model_zero_grads(ms[k]);
        int rc = k == 0 ? rl_actor_backward(actor, ps, 1, &lc, 1.0 / s.n_trainable, &st, &err)
                        : rl_critic_backward(critic, ps, 1, &lc, 1.0 / s.n_trainable, &st, &err);
        assert_int_equal(rc, MART_OK);
        with_garbage[k] = malloc((size_t)ms[k]->n_params * sizeof(float));
        memcpy(with_garbage[k], ms[k]->grads, (size_t)ms[k]->n_params * sizeof(float));
    }
    for (int32_t i = 0; i < s.n_tokens; i++)
        if (!s.trainable[i])
            s.old_logprobs[i] = s.ref_logprobs[i] = s.advantages[i] = s.returns[i] =
                s.old_values[i] = 0.0f;
    for (int k = 0; k < 2; k++) {
        model_zero_grads(ms[k]);
        int rc = k == 0 ? rl_actor_backward(actor, ps, 1, &lc, 1.0 / s.n_trainable, &st, &err)
                        : rl_critic_backward(critic, ps, 1, &lc, 1.0 / s.n_trainable, &st, &err);
        assert_int_equal(rc, MART_OK);
        double g = 0;
        for (int64_t i = 0; i < ms[k]->n_params; i++) {
            assert_true(ms[k]->grads[i] == with_garbage[k][i]);
            g += fabs(ms[k]->grads[i]);
        }
        assert_true(g > 1e-4); /* the model tokens do move the weights */
        free(with_garbage[k]);
    }
    rl_sample_free(&s);
    model_free(actor);
    model_free(critic);
}

/* The mean PPO loss of a batch recomputed from scratch (for finite differences). */
static double actor_loss(model *m, rl_sample *s, int32_t n, const rl_loss_config *c) {
    double sum = 0, cnt = 0;
    for (int32_t k = 0; k < n; k++) {
        float *lp = calloc((size_t)s[k].n_tokens, sizeof(float));
        rl_sample *ps[1] = {&s[k]};
        float *lps[1] = {lp};
        mart_err err;
        assert_int_equal(rl_score(m, ps, 1, 1, c->temperature, lps, NULL, &err), MART_OK);
        for (int32_t i = 0; i < s[k].n_tokens; i++)
            if (s[k].trainable[i]) {
                sum += rl_policy_loss(lp[i], s[k].old_logprobs[i], s[k].advantages[i], c->clip_eps,
                                      NULL, NULL) +
                       c->kl_coef * rl_kl_k3(lp[i], s[k].ref_logprobs[i], c->kl_clamp, NULL);
                cnt++;
            }
        free(lp);
    }
    return sum / cnt;
}

static double critic_loss(model *m, rl_sample *s, int32_t n, const rl_loss_config *c) {
    double sum = 0, cnt = 0;
    for (int32_t k = 0; k < n; k++) {
        float *v = calloc((size_t)s[k].n_tokens, sizeof(float));
        rl_sample *ps[1] = {&s[k]};
        float *vs[1] = {v};
        mart_err err;
        assert_int_equal(rl_score(m, ps, 1, 1, 1.0f, NULL, vs, &err), MART_OK);
        for (int32_t i = 0; i < s[k].n_tokens; i++)
            if (s[k].trainable[i]) {
                sum += rl_value_loss(v[i], s[k].old_values[i], s[k].returns[i], c->value_clip,
                                     NULL, NULL);
                cnt++;
            }
        free(v);
    }
    return sum / cnt;
}

/* Indices of the k largest |grads| (the best-conditioned finite differences). */
static void top_grads(const model *m, int64_t *idx, int k) {
    for (int j = 0; j < k; j++) idx[j] = -1;
    for (int64_t i = 0; i < m->n_params; i++) {
        float g = fabsf(m->grads[i]);
        for (int j = 0; j < k; j++)
            if (idx[j] < 0 || g > fabsf(m->grads[idx[j]])) {
                for (int q = k - 1; q > j; q--) idx[q] = idx[q - 1];
                idx[j] = i;
                break;
            }
    }
}

static void ppo_loss_gradients_through_the_model_match_finite_differences(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 12, 0);
    model *actor = small_model(3, false), *critic = small_model(4, true);
    rl_sample s[3];
    make_sample(&s[0], &r, 5, 6, 4, 3);
    make_sample(&s[1], &r, 3, 9, 0, 0);
    make_sample(&s[2], &r, 4, 2, 5, 6);
    /* Small perturbations keep ratios inside the clip range (no kinks for the differences),
     * while the KL and value terms are all active. */
    for (int k = 0; k < 3; k++) fill_sample(&s[k], actor, critic, &r, 0.03f, 1.0f, true);
    rl_loss_config lc;
    rl_loss_config_default(&lc);
    lc.kl_coef = 0.5f; /* larger than the default so that the KL gradient is checked too */
    int32_t ntok = s[0].n_trainable + s[1].n_trainable + s[2].n_trainable;
    rl_sample *ps[3] = {&s[0], &s[1], &s[2]};
    rl_stats st = {0};
    mart_err err;
    model *ms[2] = {actor, critic};
    for (int which = 0; which < 2; which++) {
        model *m = ms[which];
        model_zero_grads(m);
        int rc = which == 0 ? rl_actor_backward(m, ps, 3, &lc, 1.0 / ntok, &st, &err)
                            : rl_critic_backward(m, ps, 3, &lc, 1.0 / ntok, &st, &err);
        assert_int_equal(rc, MART_OK);
        int64_t idx[8];
        top_grads(m, idx, 8);
        for (int j = 0; j < 8; j++) {
            float keep = m->params[idx[j]], h = 2e-3f;
            m->params[idx[j]] = keep + h;
            double hi = which == 0 ? actor_loss(m, s, 3, &lc) : critic_loss(m, s, 3, &lc);
            m->params[idx[j]] = keep - h;
            double lo = which == 0 ? actor_loss(m, s, 3, &lc) : critic_loss(m, s, 3, &lc);
            m->params[idx[j]] = keep;
            double fd = (hi - lo) / (2.0 * h), g = m->grads[idx[j]];
            assert_true(fabs(fd - g) <= 0.01 * fabs(g) + 1e-4);
        }
    }
    for (int k = 0; k < 3; k++) rl_sample_free(&s[k]);
    model_free(actor);
    model_free(critic);
}

static void mini_batch_gradient_does_not_depend_on_the_micro_batch_split(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 13, 0);
    model *actor = small_model(5, false);
    enum { N = 6 };
    rl_sample s[N];
    rl_sample *ps[N];
    int32_t ntok = 0;
    for (int k = 0; k < N; k++) {
        make_sample(&s[k], &r, 3 + k, 2 + 3 * k, k % 2 ? 4 : 0, k % 3 ? 3 : 0);
        fill_sample(&s[k], actor, NULL, &r, 0.1f, 1.0f, false);
        ps[k] = &s[k];
        ntok += s[k].n_trainable;
    }
    rl_loss_config lc;
    rl_loss_config_default(&lc);
    mart_err err;
    float *ref = malloc((size_t)actor->n_params * sizeof(float));
    const int splits[] = {N, 1, 4, 2};
    for (int q = 0; q < 4; q++) {
        model_zero_grads(actor);
        rl_stats st = {0};
        for (int u = 0; u < N; u += splits[q]) {
            int nu = N - u < splits[q] ? N - u : splits[q];
            assert_int_equal(rl_actor_backward(actor, ps + u, nu, &lc, 1.0 / ntok, &st, &err),
                             MART_OK);
        }
        assert_true(st.n_tokens == ntok);
        if (q == 0) {
            memcpy(ref, actor->grads, (size_t)actor->n_params * sizeof(float));
            continue;
        }
        double diff = 0, norm = 0;
        for (int64_t i = 0; i < actor->n_params; i++) {
            diff = fmax(diff, fabs(actor->grads[i] - ref[i]));
            norm = fmax(norm, fabs(ref[i]));
        }
        assert_true(diff <= 1e-5 * norm);
    }
    /* The reference's per-micro-batch mean (micro-batches of 1 here) gives another gradient. */
    model_zero_grads(actor);
    rl_stats st = {0};
    for (int k = 0; k < N; k++)
        assert_int_equal(rl_actor_backward(actor, ps + k, 1, &lc, 1.0 / (N * s[k].n_trainable), &st, &err),
                         MART_OK);
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < actor->n_params; i++) {
        diff = fmax(diff, fabs(actor->grads[i] - ref[i]));
        norm = fmax(norm, fabs(ref[i]));
    }
    assert_true(diff > 1e-2 * norm);
    free(ref);
    for (int k = 0; k < N; k++) rl_sample_free(&s[k]);
    model_free(actor);
}

/* ---- training runs ---- */

/* Teaches the model the answer format: a few AdamW steps of supervised learning on
 * "prompt \boxed{k}<|im_end|>" with k uniform in 1..3, so that RL starts from a policy that
 * boxes a random digit (reward about 0) and must learn to always answer 1. */
static void warm_start(model *m, const tok_tokenizer *tok) {
    env_config ec;
    env_config_default(&ec);
    mart_err err;
    int32_t *prompt = NULL, np = 0;
    assert_int_equal(env_build_prompt(tok, &ec, "Say 1.", 1, &prompt, &np, &err), MART_OK);
    enum { B = 3 };
    int32_t *toks = malloc((size_t)B * (np + 16) * sizeof(int32_t)), *tg = NULL;
    int32_t offs[B + 1] = {0};
    tg = malloc((size_t)B * (np + 16) * sizeof(int32_t));
    int32_t n = 0, n_ans = 0;
    for (int b = 0; b < B; b++) {
        char ans[32];
        snprintf(ans, sizeof ans, "\\boxed{%d}<|im_end|>", b + 1);
        int32_t *ids = NULL;
        int64_t na = 0;
        assert_int_equal(tok_encode(tok, ans, strlen(ans), &ids, &na, &err), MART_OK);
        int32_t len = np + (int32_t)na;
        for (int32_t i = 0; i < len; i++) toks[n + i] = i < np ? prompt[i] : ids[i - np];
        for (int32_t i = 0; i < len; i++) tg[n + i] = i + 1 >= np && i + 1 < len ? toks[n + i + 1] : -1;
        n_ans += (int32_t)na;
        n += len;
        offs[b + 1] = n;
        free(ids);
    }
    float *lp = malloc((size_t)n * sizeof(float)), *d = malloc((size_t)n * sizeof(float));
    for (int32_t i = 0; i < n; i++) d[i] = tg[i] >= 0 ? -1.0f / n_ans : 0.0f;
    model_batch batch = {.n_seqs = B, .tokens = toks, .offsets = offs};
    adamw_state st;
    adamw_init(&st, m->be, m->n_params);
    adamw_config ac = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f};
    for (int it = 0; it < 60; it++) {
        model_out out = {.targets = tg, .logprobs = lp};
        assert_int_equal(model_forward(m, &batch, NULL, &out, true, &err), MART_OK);
        model_zero_grads(m);
        model_backward(m, d, NULL, NULL);
        model_adamw_step(m, &st, &ac);
    }
    adamw_free(&st);
    free(lp);
    free(d);
    free(toks);
    free(tg);
    free(prompt);
}

/* A base model directory: a tiny random model over a byte tokenizer whose merges shorten
 * the prompt, optionally warm-started on the answer format and saved in BF16 (a BF16
 * checkpoint), and a JSONL of n_problems trivial problems ("Say 1.", answer 1). */
static void make_run_inputs(char *dir, size_t cap, int32_t n_problems, bool warm, bool bf16) {
    char tmpl[] = "/tmp/mart_rl_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(dir, cap, "%s", tmpl);
    const char *corpus[] = {
        "Please reason step by step, and put your final answer within \\boxed{}. You have 1 "
        "attempts to answer the questions, and you should provide the full reasoning steps in "
        "each attempt.",
        "Your answer is incorrect. You have 1 attempts left. Try an alternative.",
        "system\nuser\nassistant\nSay 1.",
    };
    tok_tokenizer *tok;
    mart_err err;
    assert_int_equal(tok_build_bytes(corpus, 3, 120, &tok, &err), MART_OK);
    model_config cfg = {.arch = MART_ARCH_QWEN2, .vocab_size = tok_vocab_size(tok),
                        .hidden_size = 32, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                        .head_dim = 16, .intermediate_size = 64,
                        .max_position_embeddings = 1024, .rms_norm_eps = 1e-6f,
                        .rope_theta = 10000.0, .tie_word_embeddings = true,
                        .attention_bias = true, .bos_token_id = -1, .eos_token_id = -1,
                        .dtype = MART_DTYPE_F32};
    model *m = model_create(&cfg, false, true);
    model_init_random(m, 7);
    if (warm) warm_start(m, tok);
    if (bf16) m->cfg.dtype = MART_DTYPE_BF16;
    char p[600];
    snprintf(p, sizeof p, "%s/base", dir);
    assert_int_equal(model_save(m, p, &err), MART_OK);
    snprintf(p, sizeof p, "%s/base/tokenizer.json", dir);
    assert_int_equal(tok_save(tok, p, &err), MART_OK);
    model_free(m);
    tok_free(tok);
    snprintf(p, sizeof p, "%s/data.jsonl", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < n_problems; i++) fprintf(f, "{\"problem\": \"Say 1.\", \"answer\": \"1\"}\n");
    fclose(f);
}

static void run_config(rl_config *c, const char *dir, char *model_dir, char *data, char *out,
                       const char *run) {
    rl_config_default(c);
    sprintf(model_dir, "%s/base", dir);
    sprintf(data, "%s/data.jsonl", dir);
    sprintf(out, "%s/%s", dir, run);
    c->model_dir = model_dir;
    c->data_path = data;
    c->out_dir = out;
    c->quiet = true;
    c->seed = 5;
    c->max_prompt = 320;
    c->gen_batch = 16;
}

static bool same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    mart_err err;
    if (mart_read_file(a, &x, &nx, &err) || mart_read_file(b, &y, &ny, &err)) return false;
    bool same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* The value of `key` on line `line` (1-based) of a metrics file. */
static double metric(const char *path, int line, const char *key) {
    mart_jsonl r;
    mart_err err;
    assert_int_equal(mart_jsonl_open(&r, path, &err), MART_OK);
    struct cJSON *o = NULL;
    double v = NAN;
    for (int i = 1; i <= line; i++) {
        if (o) cJSON_Delete(o);
        o = NULL;
        assert_int_equal(mart_jsonl_next(&r, &o, &err), 1);
    }
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(x)) v = x->valuedouble;
    cJSON_Delete(o);
    mart_jsonl_close(&r);
    return v;
}

/* PPO on the multi-attempt task, small: 4 steps of 3 questions in mini-batches of 2, up to 3
 * attempts of 12 tokens. */
static void small_ppo(rl_config *c) {
    c->steps = 4;
    c->rollout_batch = 3;
    c->mini_batch = 2;
    c->micro_batch = 1;
    c->max_tokens = 12;
    c->max_attempts = 3;
    c->actor_lr = c->critic_lr = 1e-3;
}

static void resumed_run_gives_bit_identical_weights_to_an_uninterrupted_run(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300], p1[400], p2[400];
    make_run_inputs(dir, sizeof dir, 5, false, false);
    mart_err err = {{0}};
    rl_config c;
    /* PPO on the multi-attempt task: actor, critic, reference, optimiser states, data order
     * wrapping around (5 problems, 3 per step). */
    run_config(&c, dir, md, data, out, "straight");
    small_ppo(&c);
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    run_config(&c, dir, md, data, out, "resumed");
    small_ppo(&c);
    c.stop_after = 2; /* as if Ctrl-C came after step 2 */
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    snprintf(p1, sizeof p1, "%s/resumed/final", dir);
    assert_false(mart_path_exists(p1));
    c.stop_after = 0;
    c.resume = true;
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    const char *files[] = {"final/model.safetensors", "checkpoint/model.safetensors",
                           "checkpoint/critic/model.safetensors",
                           "checkpoint/optimizer.safetensors", "checkpoint/state.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p1, sizeof p1, "%s/straight/%s", dir, files[i]);
        snprintf(p2, sizeof p2, "%s/resumed/%s", dir, files[i]);
        if (!same_file(p1, p2)) fail_msg("%s differs", files[i]);
    }
    snprintf(p1, sizeof p1, "%s/straight/metrics.jsonl", dir);
    snprintf(p2, sizeof p2, "%s/resumed/metrics.jsonl", dir);
    for (int line = 1; line <= 4; line++) {
        assert_float_equal(metric(p2, line, "step"), line, 0);
        assert_true(metric(p1, line, "reward_mean") == metric(p2, line, "reward_mean"));
        assert_true(metric(p1, line, "policy_loss") == metric(p2, line, "policy_loss"));
    }
    /* The engine's sampling log-probs are the old log-probs: the ratio starts at 1. */
    assert_true(metric(p1, 1, "ratio_dev0") < 1e-4);
    mart_remove_tree(dir, &err);
}

/* PPO on the multi-attempt task (actor, critic, reference, generation with its KV cache,
 * scoring, updates, checkpoints) on a backend whose memory is not the host's, and which
 * stops the process if it is ever handed host memory: the CPU backend's bytes. */
static void ppo_on_a_device_memory_backend_gives_the_cpu_bytes(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300], p1[400], p2[400];
    make_run_inputs(dir, sizeof dir, 4, false, false);
    mart_err err = {{0}};
    const char *runs[2] = {"cpu", "staged"};
    for (int k = 0; k < 2; k++) {
        rl_config c;
        run_config(&c, dir, md, data, out, runs[k]);
        c.backend = k ? mart_backend_cpu_staged() : NULL;
        small_ppo(&c);
        c.steps = 2;
        c.loss.kl_coef = 0.01f;
        c.save_every = 1;
        if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    }
    const char *files[] = {"final/model.safetensors", "checkpoint/critic/model.safetensors",
                           "checkpoint/optimizer.safetensors", "checkpoint/state.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p1, sizeof p1, "%s/cpu/%s", dir, files[i]);
        snprintf(p2, sizeof p2, "%s/staged/%s", dir, files[i]);
        if (!same_file(p1, p2)) fail_msg("%s differs", files[i]);
    }
    snprintf(p1, sizeof p1, "%s/cpu/metrics.jsonl", dir);
    snprintf(p2, sizeof p2, "%s/staged/metrics.jsonl", dir);
    const char *keys[] = {"reward_mean", "policy_loss", "value_loss", "kl", "grad_norm"};
    for (int line = 1; line <= 2; line++)
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (!(metric(p1, line, keys[i]) == metric(p2, line, keys[i])))
                fail_msg("step %d: %s differs", line, keys[i]);
    mart_remove_tree(dir, &err);
}

/* Single-turn GRPO on the "Say 1." task: 4 questions x 8 samples per step. */
static void grpo_config(rl_config *c, const char *dir, char *md, char *data, char *out,
                        const char *run, int32_t steps) {
    run_config(c, dir, md, data, out, run);
    c->algo = RL_ALGO_GRPO;
    c->multi = false;
    c->n_samples = 8;
    c->rollout_batch = 4;
    c->mini_batch = 16;
    c->micro_batch = 16;
    c->max_tokens = 16;
    c->steps = steps;
}

static void grpo_on_a_trivial_task_raises_the_reward(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300], path[400];
    make_run_inputs(dir, sizeof dir, 4, true, false);
    mart_err err = {{0}};
    rl_config c;
    grpo_config(&c, dir, md, data, out, "grpo", 20);
    c.actor_lr = 2e-3;
    c.loss.kl_coef = 0;
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/grpo/metrics.jsonl", dir);
    double first = 0, last = 0;
    for (int i = 1; i <= 4; i++) {
        first += metric(path, i, "reward_mean") / 4;
        last += metric(path, c.steps - 4 + i, "reward_mean") / 4;
    }
    if (getenv("MART_RL_KEEP")) fprintf(stderr, "kept %s\n", dir);
    if (!(last > first + 0.5)) fail_msg("reward %.3f -> %.3f", first, last);
    if (!getenv("MART_RL_KEEP")) mart_remove_tree(dir, &err);
}

static void ratio_starts_at_one_from_a_bf16_checkpoint(void **state) {
    (void)state;
    /* A BF16 checkpoint's weights get BF16 copies for decoding; RL must still sample with
     * exact products so that the sampler's log-probs are the training forward's. */
    char dir[256], md[300], data[300], out[300], path[400];
    make_run_inputs(dir, sizeof dir, 4, true, true);
    mart_err err = {{0}};
    rl_config c;
    grpo_config(&c, dir, md, data, out, "bf16", 1);
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/bf16/metrics.jsonl", dir);
    double dev = metric(path, 1, "ratio_dev0");
    if (!(dev < 1e-4)) fail_msg("first ratio off by %g", dev);
    mart_remove_tree(dir, &err);
}

static void out_of_range_or_conflicting_options_are_refused_by_name(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300];
    make_run_inputs(dir, sizeof dir, 1, false, false);
    mart_err err = {{0}};
    rl_config c;
    const char *want[] = {"--discount", "--discount", "--warmup", "--repeat-question"};
    for (int i = 0; i < 4; i++) {
        grpo_config(&c, dir, md, data, out, "bad", 1);
        if (i == 0) c.discount = 0.0;
        if (i == 1) c.discount = 1.5;
        if (i == 2) c.warmup_frac = 1.0;
        if (i == 3) c.repeat_question = c.baseline_prompt = true;
        assert_int_equal(rl_train(&c, &err), MART_ERR);
        if (!strstr(err.msg, want[i])) fail_msg("case %d: %s", i, err.msg);
    }
    mart_remove_tree(dir, &err);
}

static void bad_training_data_is_an_error_naming_the_file_and_line(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300];
    make_run_inputs(dir, sizeof dir, 2, false, false);
    rl_config c;
    run_config(&c, dir, md, data, out, "bad");
    FILE *f = fopen(data, "a");
    assert_non_null(f);
    fprintf(f, "{\"question\": \"Say 1.\", \"answer\": \"1\"}\n");
    fclose(f);
    mart_err err = {{0}};
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "data.jsonl:3"));
    assert_non_null(strstr(err.msg, "'problem'"));
    mart_remove_tree(dir, &err);
}

/* The smallest GRPO run: one question, two samples of 4 tokens. */
static void tiny_grpo(rl_config *c) {
    c->algo = RL_ALGO_GRPO;
    c->n_samples = 2;
    c->rollout_batch = 1;
    c->max_tokens = 4;
}

static void resuming_with_another_seed_task_prompt_or_discount_is_refused(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300];
    make_run_inputs(dir, sizeof dir, 2, false, false);
    rl_config c;
    run_config(&c, dir, md, data, out, "seeded");
    tiny_grpo(&c);
    c.steps = 1;
    mart_err err = {{0}};
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    c.steps = 2;
    c.resume = true;
    uint64_t seed = c.seed;
    c.seed = seed + 1;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--seed"));
    /* nor with other prompts or another task */
    c.seed = seed;
    c.repeat_question = true;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    if (!strstr(err.msg, "--repeat-question")) fail_msg("%s", err.msg);
    c.repeat_question = false;
    c.discount = 0.5;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    if (!strstr(err.msg, "--discount")) fail_msg("%s", err.msg);
    c.discount = 1.0;
    c.lr_horizon = 0.0; /* the schedule's horizon is part of the run */
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    if (!strstr(err.msg, "--lr-horizon")) fail_msg("%s", err.msg);
    rl_config_default(&c); /* (restores the default horizon) */
    run_config(&c, dir, md, data, out, "seeded");
    tiny_grpo(&c);
    c.steps = 2;
    c.resume = true;
    c.multi = !c.multi;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--task"));
    c.study_baseline = true; /* the study's baseline is another task than the N = 1 control */
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--task"));
    mart_remove_tree(dir, &err);
}

/* A folder that holds a run is never trained over silently; a checkpoint stranded by an
 * interrupted swap is found by --resume; every state.json field is checked against the run;
 * non-finite settings are refused by name. */
static void runs_are_never_lost_or_overwritten_silently(void **state) {
    (void)state;
    char dir[256], md[300], data[300], out[300], path[700];
    make_run_inputs(dir, sizeof dir, 2, false, false);
    rl_config c;
    run_config(&c, dir, md, data, out, "kept");
    tiny_grpo(&c);
    c.steps = 1;
    mart_err err = {{0}};
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    /* again without --resume: refused, nothing touched */
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    if (!strstr(err.msg, "--resume")) fail_msg("%s", err.msg);
    /* the checkpoint stranded between two renames: --resume finds it */
    char ck[400], old[420];
    snprintf(ck, sizeof ck, "%s/checkpoint", out);
    snprintf(old, sizeof old, "%s/checkpoint.old.12345", out);
    assert_int_equal(rename(ck, old), 0);
    c.resume = true;
    c.steps = 2;
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_true(mart_is_dir(ck) && !mart_path_exists(old));
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    assert_int_equal((int)metric(path, 2, "step"), 2);
    /* no checkpoint but metrics past the step of the first one: refused rather than started
     * over; metrics from before any checkpoint was due (a run killed early): from step 0 */
    assert_int_equal(mart_remove_tree(ck, &err), MART_OK);
    c.steps = 3;
    c.save_every = 1;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    if (!strstr(err.msg, "refusing")) fail_msg("%s", err.msg);
    c.save_every = 5;
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_int_equal((int)metric(path, 1, "step"), 1);
    assert_int_equal((int)metric(path, 3, "step"), 3);
    /* a tampered state.json: an error naming the field, never an out-of-bounds read */
    run_config(&c, dir, md, data, out, "tampered");
    tiny_grpo(&c);
    c.steps = 1;
    if (rl_train(&c, &err) != MART_OK) fail_msg("%s", err.msg);
    static const char *bad[] = {"\"data_pos\": -5", "\"data_pos\": -100000", "\"data_pos\": 3",
                                "\"step\": 1.5"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(path, sizeof path, "%s/checkpoint/state.json", out);
        char *text = NULL;
        size_t len;
        assert_int_equal(mart_read_file(path, &text, &len, &err), MART_OK);
        char *field = strstr(text, k == 3 ? "\"step\":" : "\"data_pos\":");
        assert_non_null(field);
        char *end = strchr(field, ',');
        mart_buf b = {0};
        mart_buf_append(&b, text, (size_t)(field - text));
        mart_buf_append(&b, bad[k], strlen(bad[k]));
        mart_buf_append(&b, end, strlen(end));
        assert_int_equal(mart_write_file_atomic(path, b.data, b.len, &err), MART_OK);
        c.resume = true;
        c.steps = 2;
        assert_int_equal(rl_train(&c, &err), MART_ERR);
        if (!strstr(err.msg, k == 3 ? "'step'" : "'data_pos'")) fail_msg("%s", err.msg);
        assert_int_equal(mart_write_file_atomic(path, text, len, &err), MART_OK);
        mart_buf_free(&b);
        free(text);
    }
    /* NaN and infinite settings */
    run_config(&c, dir, md, data, out, "nan");
    c.actor_lr = NAN;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--actor-lr"));
    c.actor_lr = 1e-3;
    c.temperature = INFINITY;
    assert_int_equal(rl_train(&c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--temperature"));
    mart_remove_tree(dir, &err);
}

static void environment_episodes_train_exactly_the_sampled_tokens(void **state) {
    (void)state;
    char dir[256], p[400];
    make_run_inputs(dir, sizeof dir, 1, true, false);
    mart_err err;
    model *m;
    tok_tokenizer *tok;
    snprintf(p, sizeof p, "%s/base", dir);
    assert_int_equal(model_load(p, false, &m, &err), MART_OK);
    assert_int_equal(tok_load(p, &tok, &err), MART_OK);
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = 8;
    gc.max_len = 600;
    gen_engine *g;
    assert_int_equal(gen_create(m, &gc, &g, &err), MART_OK);
    env_config ec;
    env_config_default(&ec);
    ec.max_tokens = 24;
    enum { N = 8 };
    env_problem pr[N];
    int32_t att[N];
    for (int i = 0; i < N; i++) {
        pr[i] = (env_problem){"Say 1.", "1"};
        att[i] = 3;
    }
    gen_params gp;
    gen_params_default(&gp);
    gp.seed = 3;
    env_episode ep[N];
    assert_int_equal(env_run(g, tok, &ec, pr, att, N, &gp, 0, NULL, ep, &err), MART_OK);
    int with_feedback = 0;
    for (int i = 0; i < N; i++) {
        rl_sample s;
        rl_sample_from_episode(&s, &ep[i]);
        assert_int_equal(s.n_trainable, ep[i].n_sampled);
        with_feedback += ep[i].n_attempts > 1;
        /* GAE leaves every prompt and feedback token at exactly zero */
        float *r = calloc((size_t)s.n_tokens, sizeof(float));
        for (int32_t k = 0; k < s.n_tokens; k++) s.old_values[k] = 0.5f;
        r[s.n_tokens - 1] = s.reward;
        rl_gae(s.n_tokens, s.trainable, r, s.old_values, 1.0f, 0.99f, s.advantages, s.returns);
        for (int32_t k = 0; k < s.n_tokens; k++)
            if (k < s.n_prompt || !ep[i].trainable[k]) {
                assert_true(s.advantages[k] == 0.0f);
                assert_true(s.returns[k] == 0.0f);
            }
        free(r);
        rl_sample_free(&s);
        env_episode_free(&ep[i]);
    }
    assert_true(with_feedback > 0); /* the warm model answers 2 or 3 often enough */
    gen_free(g);
    model_free(m);
    tok_free(tok);
    mart_remove_tree(dir, &err);
}

int main(void) {
    /* The models here are tiny: threads only add synchronisation (and, on a loaded machine,
     * seconds of waiting). Thread parity is the model module's test. */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gae_passes_credit_straight_through_a_feedback_span),
        cmocka_unit_test(kl_k3_is_unclamped_by_default_and_clamped_on_request),
        cmocka_unit_test(whitening_uses_the_trainable_tokens_of_the_whole_batch),
        cmocka_unit_test(the_schedule_follows_one_curve_whatever_the_run_length),
        cmocka_unit_test(gae_equals_the_literal_feedback_rule_on_random_episodes),
        cmocka_unit_test(policy_loss_matches_hand_computed_clipped_surrogate),
        cmocka_unit_test(policy_loss_gradient_matches_finite_differences),
        cmocka_unit_test(kl_k3_matches_hand_computed_value_and_gradient),
        cmocka_unit_test(value_loss_takes_the_larger_of_clipped_and_unclipped_errors),
        cmocka_unit_test(group_advantages_match_hand_computed_grpo_and_rloo),
        cmocka_unit_test(lr_warms_up_linearly_then_decays_by_cosine_to_a_tenth),
        cmocka_unit_test(feedback_and_prompt_tokens_receive_exactly_zero_gradient),
        cmocka_unit_test(ppo_loss_gradients_through_the_model_match_finite_differences),
        cmocka_unit_test(mini_batch_gradient_does_not_depend_on_the_micro_batch_split),
        cmocka_unit_test(resumed_run_gives_bit_identical_weights_to_an_uninterrupted_run),
        cmocka_unit_test(ppo_on_a_device_memory_backend_gives_the_cpu_bytes),
        cmocka_unit_test(grpo_on_a_trivial_task_raises_the_reward),
        cmocka_unit_test(environment_episodes_train_exactly_the_sampled_tokens),
        cmocka_unit_test(ratio_starts_at_one_from_a_bf16_checkpoint),
        cmocka_unit_test(out_of_range_or_conflicting_options_are_refused_by_name),
        cmocka_unit_test(bad_training_data_is_an_error_naming_the_file_and_line),
        cmocka_unit_test(resuming_with_another_seed_task_prompt_or_discount_is_refused),
        cmocka_unit_test(runs_are_never_lost_or_overwritten_silently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
