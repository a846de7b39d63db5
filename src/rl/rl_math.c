/* rl: the per-token math of PPO/GRPO (see include/mart/rl.h). No model, no I/O. */
#include "mart/rl.h"

#include <assert.h>
#include <math.h>

void rl_gae(int32_t n, const uint8_t *trainable, const float *rewards, const float *values,
            float gamma, float lambda, float *adv, float *ret) {
    assert(n >= 0 && gamma >= 0.0f && gamma <= 1.0f && lambda >= 0.0f && lambda <= 1.0f);
    /* Walking backwards over trainable tokens only is the same computation as the literal
     * rule (gamma = lambda = 1 on steps whose next token is feedback): over a feedback span
     * delta_i + delta_f1 + ... + delta_fk telescopes to r_i + gamma*V_m - V_i, and the last
     * feedback step carries gamma*lambda*A_m, m being the next model token. tests/test_rl.c
     * checks the two against each other. */
    float next_v = 0.0f, next_a = 0.0f;
    for (int32_t i = n - 1; i >= 0; i--) {
        if (!trainable[i]) {
            adv[i] = 0.0f;
            ret[i] = 0.0f;
            continue;
        }
        float delta = rewards[i] + gamma * next_v - values[i];
        float a = delta + gamma * lambda * next_a;
        adv[i] = a;
        ret[i] = a + values[i];
        next_v = values[i];
        next_a = a;
    }
}

float rl_policy_loss(float logp, float old_logp, float adv, float eps, float *d_logp,
                     bool *clipped) {
    float ratio = expf(logp - old_logp);
    float surr1 = ratio * adv;
    float rc = ratio < 1.0f - eps ? 1.0f - eps : ratio > 1.0f + eps ? 1.0f + eps : ratio;
    float surr2 = rc * adv;
    /* On a tie the clamp is inactive (rc == ratio), so both branches have gradient ratio*A. */
    bool use_clipped = surr2 < surr1;
    if (d_logp) *d_logp = use_clipped ? 0.0f : -ratio * adv;
    if (clipped) *clipped = use_clipped;
    return -(use_clipped ? surr2 : surr1);
}

float rl_kl_k3(float logp, float ref_logp, float clamp, float *d_logp) {
    double r = (double)ref_logp - (double)logp;
    bool clamped = clamp > 0.0f && (r > clamp || r < -clamp);
    if (clamped) r = r > 0 ? clamp : -clamp;
    double e = exp(r);
    /* d/dlogp (e^r - 1 - r) = (e^r - 1) * dr/dlogp = 1 - e^r */
    if (d_logp) *d_logp = clamped ? 0.0f : (float)(1.0 - e);
    return (float)(e - 1.0 - r);
}

void rl_moments_add_sum(rl_moments *m, const float *adv, const uint8_t *trainable, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (trainable[i]) {
            m->count += 1.0;
            m->sum += adv[i];
        }
}

void rl_moments_add_dev(rl_moments *m, const float *adv, const uint8_t *trainable, int32_t n,
                        double mean) {
    for (int32_t i = 0; i < n; i++)
        if (trainable[i]) m->dev += ((double)adv[i] - mean) * ((double)adv[i] - mean);
}

double rl_whiten_scale(double var) {
    return 1.0 / sqrt(var > RL_WHITEN_VAR_MIN ? var : RL_WHITEN_VAR_MIN);
}

void rl_whiten(float *adv, const uint8_t *trainable, int32_t n, double mean, double scale) {
    for (int32_t i = 0; i < n; i++)
        if (trainable[i]) adv[i] = (float)(((double)adv[i] - mean) * scale);
}

float rl_value_loss(float v, float old_v, float ret, float clip, float *d_v, bool *clipped) {
    float dv = v - old_v;
    bool inside = dv >= -clip && dv <= clip;
    float vc = old_v + (inside ? dv : dv < 0 ? -clip : clip);
    float e1 = vc - ret, e2 = v - ret;
    bool use_clipped = e1 * e1 > e2 * e2;
    if (d_v) *d_v = use_clipped ? (inside ? e1 : 0.0f) : e2;
    if (clipped) *clipped = use_clipped;
    return 0.5f * (use_clipped ? e1 * e1 : e2 * e2);
}

void rl_group_advantages(const float *rewards, int32_t n_groups, int32_t group_size,
                         rl_group_mode mode, float *adv) {
    for (int32_t g = 0; g < n_groups; g++) {
        const float *r = rewards + (int64_t)g * group_size;
        float *a = adv + (int64_t)g * group_size;
        double sum = 0;
        for (int32_t i = 0; i < group_size; i++) sum += r[i];
        if (group_size < 2) {
            /* No baseline is defined for a group of one: no signal. */
            for (int32_t i = 0; i < group_size; i++) a[i] = 0.0f;
            continue;
        }
        double mean = sum / group_size;
        if (mode == RL_GROUP_RLOO) {
            for (int32_t i = 0; i < group_size; i++)
                a[i] = (float)(r[i] - (sum - r[i]) / (group_size - 1));
            continue;
        }
        double ss = 0;
        for (int32_t i = 0; i < group_size; i++) ss += (r[i] - mean) * (r[i] - mean);
        double sd = sqrt(ss / (group_size - 1));
        for (int32_t i = 0; i < group_size; i++)
            a[i] = (float)((r[i] - mean) / (sd + RL_GROUP_EPS));
    }
}


int64_t rl_schedule_steps(double horizon, int64_t n_problems, int32_t run_steps,
                          int32_t rollout_batch, int32_t n_samples, int32_t mini_batch,
                          int32_t epochs) {
    assert(mini_batch > 0 && epochs > 0 && n_samples > 0 && rollout_batch > 0);
    if (horizon > 0.0) {
        int64_t per_pass = n_problems * n_samples / mini_batch * epochs;
        if (per_pass < 1) per_pass = 1;
        return (int64_t)ceil(horizon * (double)per_pass);
    }
    int64_t n_eps = (int64_t)rollout_batch * n_samples;
    return (int64_t)run_steps * epochs * ((n_eps + mini_batch - 1) / mini_batch);
}
