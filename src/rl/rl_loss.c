/* rl: rollout samples, scoring (reference log-probs, critic values) and the per-micro-batch
 * actor and critic backward passes (see include/mart/rl.h).
 *
 * Row layout: a sample of n_tokens tokens is fed as tokens[0 .. n_tokens-1) (the last token
 * predicts nothing we need), so row j of the sample predicts token j+1: logprob, entropy and
 * value of token i come from row i-1, the state before the token was sampled (as OpenRLHF's
 * action values). */
#include "mart/rl.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rl_loss_config_default(rl_loss_config *c) {
    c->clip_eps = RL_CLIP_EPS;
    c->value_clip = RL_VALUE_CLIP;
    c->kl_coef = RL_KL_COEF;
    c->kl_clamp = 0.0f;
    c->temperature = 1.0f;
}

void rl_sample_from_episode(rl_sample *s, const env_episode *e) {
    memset(s, 0, sizeof *s);
    int32_t n = e->n_tokens;
    s->n_tokens = n;
    s->n_prompt = e->n_prompt;
    s->reward = e->reward;
    s->tokens = mart_xmalloc((size_t)n * sizeof(int32_t));
    s->trainable = mart_xmalloc((size_t)n);
    memcpy(s->tokens, e->tokens, (size_t)n * sizeof(int32_t));
    memcpy(s->trainable, e->trainable, (size_t)n);
    /* Token 0 has no prefix to be predicted from: never trainable. */
    if (n > 0) s->trainable[0] = 0;
    float **arrays[] = {&s->old_logprobs, &s->ref_logprobs, &s->old_values, &s->advantages,
                        &s->returns};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        *arrays[k] = mart_xcalloc((size_t)n, sizeof(float));
    for (int32_t i = 0; i < n; i++)
        if (s->trainable[i]) {
            s->old_logprobs[i] = e->logprobs[i];
            s->n_trainable++;
        }
}

void rl_sample_free(rl_sample *s) {
    if (!s) return;
    free(s->tokens);
    free(s->trainable);
    free(s->old_logprobs);
    free(s->ref_logprobs);
    free(s->old_values);
    free(s->advantages);
    free(s->returns);
    memset(s, 0, sizeof *s);
}

/* A packed micro-batch: the samples' inputs back to back, targets for trainable rows only. */
typedef struct {
    int32_t *tokens, *targets, *offsets; /* (rows), (rows), (n_seqs + 1) */
    int32_t *which;                      /* (n_seqs) index into the caller's sample list */
    int32_t rows, n_seqs;
} packed;

static void pack(rl_sample *const *s, int32_t n, packed *p) {
    assert(n >= 0);
    int64_t rows = 0;
    for (int32_t k = 0; k < n; k++)
        if (s[k]->n_tokens > 1) rows += s[k]->n_tokens - 1;
    p->tokens = mart_xmalloc((size_t)(rows ? rows : 1) * sizeof(int32_t));
    p->targets = mart_xmalloc((size_t)(rows ? rows : 1) * sizeof(int32_t));
    p->offsets = mart_xmalloc((size_t)(n + 1) * sizeof(int32_t));
    p->which = mart_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t));
    p->n_seqs = 0;
    int32_t r = 0;
    p->offsets[0] = 0;
    for (int32_t k = 0; k < n; k++) {
        const rl_sample *x = s[k];
        /* the sample's invariants: a prompt of untrainable tokens, trainable ones counted */
        assert(x->n_prompt >= 0 && x->n_prompt <= x->n_tokens);
        assert(x->n_trainable >= 0 && x->n_trainable <= x->n_tokens - x->n_prompt);
        if (x->n_tokens < 2) continue; /* nothing to predict */
        for (int32_t i = 1; i < x->n_tokens; i++, r++) {
            p->tokens[r] = x->tokens[i - 1];
            p->targets[r] = x->trainable[i] ? x->tokens[i] : -1;
        }
        p->which[p->n_seqs] = k;
        p->offsets[++p->n_seqs] = r;
    }
    p->rows = r;
}

static void pack_free(packed *p) {
    free(p->tokens);
    free(p->targets);
    free(p->offsets);
    free(p->which);
}

static model_batch pack_batch(const packed *p) {
    model_batch b = {.n_seqs = p->n_seqs, .tokens = p->tokens, .offsets = p->offsets};
    return b;
}

int rl_score(model *m, rl_sample *const *s, int32_t n, int32_t micro, float temperature,
             float *const *logprobs, float *const *values, mart_err *err) {
    if (micro < 1) micro = 1;
    for (int32_t b0 = 0; b0 < n; b0 += micro) {
        int32_t nb = n - b0 < micro ? n - b0 : micro;
        packed p;
        pack(s + b0, nb, &p);
        if (p.rows == 0) {
            pack_free(&p);
            continue;
        }
        float *lp = logprobs ? mart_xmalloc((size_t)p.rows * sizeof(float)) : NULL;
        float *v = values ? mart_xmalloc((size_t)p.rows * sizeof(float)) : NULL;
        model_out out = {.targets = p.targets, .temperature = temperature, .logprobs = lp,
                         .values = v};
        model_batch batch = pack_batch(&p);
        int rc = model_forward(m, &batch, NULL, &out, false, err);
        if (rc == MART_OK)
            for (int32_t q = 0; q < p.n_seqs; q++) {
                int32_t k = b0 + p.which[q];
                const rl_sample *x = s[k];
                for (int32_t i = 1; i < x->n_tokens; i++) {
                    int32_t row = p.offsets[q] + i - 1;
                    if (lp) logprobs[k][i] = x->trainable[i] ? lp[row] : 0.0f;
                    if (v) values[k][i] = x->trainable[i] ? v[row] : 0.0f;
                }
            }
        free(lp);
        free(v);
        pack_free(&p);
        if (rc != MART_OK) return mart_fail_wrap(err, "scoring samples %d..%d", b0, b0 + nb - 1);
    }
    return MART_OK;
}

/* What an update needs of one trainable token: its per-token gradient from the forward
 * pass's outputs for its row (log-prob and entropy, or value), adding to the stats. */
typedef float (*token_grad_fn)(void *ctx, const rl_sample *x, int32_t i, float lp, float ent,
                               float v);

/* The skeleton of both updates: packs the micro-batch, runs the forward pass for backward
 * (log-probs and entropies, or values), asks fn for the gradient of every trainable token's
 * row, and runs the backward pass with them as d_logprobs (or d_values). */
static int micro_update(model *m, rl_sample *const *s, int32_t n, bool values, float temperature,
                        token_grad_fn fn, void *ctx, mart_err *err) {
    packed p;
    pack(s, n, &p);
    if (p.rows == 0) {
        pack_free(&p);
        return MART_OK;
    }
    float *a = mart_xmalloc((size_t)p.rows * sizeof(float)); /* log-probs or values */
    float *ent = values ? NULL : mart_xmalloc((size_t)p.rows * sizeof(float));
    float *d = mart_xcalloc((size_t)p.rows, sizeof(float));
    model_out out = values ? (model_out){.values = a}
                           : (model_out){.targets = p.targets, .temperature = temperature,
                                         .logprobs = a, .entropy = ent};
    model_batch batch = pack_batch(&p);
    int rc = model_forward(m, &batch, NULL, &out, true, err);
    if (rc == MART_OK) {
        for (int32_t q = 0; q < p.n_seqs; q++) {
            const rl_sample *x = s[p.which[q]];
            for (int32_t i = 1; i < x->n_tokens; i++) {
                if (!x->trainable[i]) continue;
                int32_t row = p.offsets[q] + i - 1;
                d[row] = values ? fn(ctx, x, i, 0.0f, 0.0f, a[row])
                                : fn(ctx, x, i, a[row], ent[row], 0.0f);
            }
        }
        model_backward(m, values ? NULL : d, NULL, values ? d : NULL);
    }
    free(a);
    free(ent);
    free(d);
    pack_free(&p);
    return rc;
}

typedef struct {
    const rl_loss_config *c;
    double inv_norm;
    rl_stats *st;
} update_ctx;

/* Policy loss + kl_coef * k3 KL for one token, scaled by the normaliser. */
static float actor_token(void *ctx, const rl_sample *x, int32_t i, float lp, float ent, float v) {
    (void)v;
    update_ctx *u = ctx;
    const rl_loss_config *c = u->c;
    float d_pg, d_kl = 0.0f, kl = 0.0f;
    bool clipped;
    float pg = rl_policy_loss(lp, x->old_logprobs[i], x->advantages[i], c->clip_eps, &d_pg,
                              &clipped);
    if (c->kl_coef != 0.0f) kl = rl_kl_k3(lp, x->ref_logprobs[i], c->kl_clamp, &d_kl);
    double dev = fabs(exp((double)lp - x->old_logprobs[i]) - 1.0);
    rl_stats *st = u->st;
    if (dev > st->max_ratio_dev) st->max_ratio_dev = dev;
    st->n_tokens += 1;
    st->policy_loss += pg;
    st->kl += kl;
    st->entropy += ent;
    st->clip_frac += clipped;
    return (float)(u->inv_norm * (d_pg + c->kl_coef * d_kl));
}

/* The clipped value loss for one token, scaled by the normaliser. */
static float critic_token(void *ctx, const rl_sample *x, int32_t i, float lp, float ent, float v) {
    (void)lp, (void)ent;
    update_ctx *u = ctx;
    float dv;
    bool clipped;
    float l = rl_value_loss(v, x->old_values[i], x->returns[i], u->c->value_clip, &dv, &clipped);
    u->st->value_loss += l;
    u->st->value_clip_frac += clipped;
    return (float)(u->inv_norm * dv);
}

int rl_actor_backward(model *actor, rl_sample *const *s, int32_t n, const rl_loss_config *c,
                      double inv_norm, rl_stats *st, mart_err *err) {
    assert(actor->trainable && isfinite(inv_norm) && inv_norm >= 0.0);
    update_ctx u = {c, inv_norm, st};
    int rc = micro_update(actor, s, n, false, c->temperature, actor_token, &u, err);
    return rc == MART_OK ? MART_OK : mart_fail_wrap(err, "actor update");
}

int rl_critic_backward(model *critic, rl_sample *const *s, int32_t n, const rl_loss_config *c,
                       double inv_norm, rl_stats *st, mart_err *err) {
    assert(critic->trainable && critic->has_value_head && isfinite(inv_norm) && inv_norm >= 0.0);
    update_ctx u = {c, inv_norm, st};
    int rc = micro_update(critic, s, n, true, 1.0f, critic_token, &u, err);
    return rc == MART_OK ? MART_OK : mart_fail_wrap(err, "critic update");
}
