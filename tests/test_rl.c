/* rl: PPO/GRPO math against hand-computed values, GAE pass-through across feedback spans,
 * gradients through the model, micro-batch invariance, and short training runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mart/rl.h"

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
    assert_float_equal(rl_kl_k3(-1.0f, -1.5f, &d), 0.1065307, TOL);
    assert_float_equal(d, 0.3934693, TOL);
    /* same policies: 0 and gradient 0 */
    assert_float_equal(rl_kl_k3(-0.3f, -0.3f, &d), 0.0, TOL);
    assert_float_equal(d, 0.0, TOL);
    double h = 1e-3;
    double fd = (rl_kl_k3((float)(-0.8 + h), -1.9f, NULL) - rl_kl_k3((float)(-0.8 - h), -1.9f, NULL)) /
                (2 * h);
    rl_kl_k3(-0.8f, -1.9f, &d);
    assert_float_equal(d, fd, 1e-3);
    /* k3 is never negative */
    for (float x = -5; x < 5; x += 0.25f) assert_true(rl_kl_k3(0.0f, x, NULL) >= 0.0f);
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
    assert_float_equal(rl_lr_at(0, 200, 1.0, 0.03, 0.1), 0.0, 1e-12);
    assert_float_equal(rl_lr_at(3, 200, 1.0, 0.03, 0.1), 0.5, 1e-12);
    assert_float_equal(rl_lr_at(6, 200, 1.0, 0.03, 0.1), 1.0, 1e-12);
    assert_float_equal(rl_lr_at(103, 200, 1.0, 0.03, 0.1), 0.55, 1e-12);
    assert_float_equal(rl_lr_at(200, 200, 1.0, 0.03, 0.1), 0.1, 1e-12);
    double prev = 2;
    for (int s = 6; s <= 200; s++) {
        double lr = rl_lr_at(s, 200, 1.0, 0.03, 0.1);
        assert_true(lr <= prev);
        prev = lr;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gae_passes_credit_straight_through_a_feedback_span),
        cmocka_unit_test(gae_equals_the_literal_feedback_rule_on_random_episodes),
        cmocka_unit_test(policy_loss_matches_hand_computed_clipped_surrogate),
        cmocka_unit_test(policy_loss_gradient_matches_finite_differences),
        cmocka_unit_test(kl_k3_matches_hand_computed_value_and_gradient),
        cmocka_unit_test(value_loss_takes_the_larger_of_clipped_and_unclipped_errors),
        cmocka_unit_test(group_advantages_match_hand_computed_grpo_and_rloo),
        cmocka_unit_test(lr_warms_up_linearly_then_decays_by_cosine_to_a_tenth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
