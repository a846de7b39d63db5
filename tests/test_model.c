/* model: every kernel's backward and the whole model's gradient against finite differences,
 * KV-cache and packed-batch equivalences, the tensor table, AdamW and clipping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "mart/ckpt.h"
#include "mart/model.h"
#include "model/kern.h"

/* ---- helpers ---- */

static void fill_normal(float *x, int64_t n, float scale, uint64_t seed) {
    mart_rng r;
    mart_rng_seed(&r, seed, 99);
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * mart_rng_normal(&r);
}

static double dot_d(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Compares an analytic gradient with central differences of loss() in x[0..n). */
typedef double (*loss_fn)(void *ctx);
static void check_grad(const char *what, float *x, const float *g, int64_t n, loss_fn loss,
                       void *ctx, float h, double tol) {
    double worst = 0, gmax = 1e-3;
    for (int64_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(g[i]));
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * (double)h);
        double e = fabs(fd - g[i]) / gmax;
        if (e > worst) worst = e;
        if (e > tol)
            print_error("%s: element %ld analytic %g finite difference %g\n", what, (long)i,
                        (double)g[i], fd);
    }
    assert_true(worst <= tol);
}

/* ---- kernels ---- */

typedef struct {
    int64_t M, N, K;
    float *x, *w, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    kern_linear(c->y, c->x, c->w, NULL, c->b, c->M, c->N, c->K, false, MART_PRODUCTS_EXACT, true);
    return dot_d(c->y, c->r, c->M * c->N);
}

static void linear_backward_matches_finite_differences(void **state) {
    (void)state;
    lin_ctx c = {5, 7, 6, NULL, NULL, NULL, NULL, NULL};
    float x[30], w[42], b[7], y[35], r[35], dx[30], dw[42] = {0}, db[7] = {0};
    c.x = x, c.w = w, c.b = b, c.y = y, c.r = r;
    fill_normal(x, 30, 1, 1), fill_normal(w, 42, 1, 2), fill_normal(b, 7, 1, 3);
    fill_normal(r, 35, 1, 4);
    kern_linear_backward(dx, dw, db, r, x, w, 5, 7, 6, false);
    check_grad("linear dx", x, dx, 30, lin_loss, &c, 1e-2f, 1e-3);
    check_grad("linear dw", w, dw, 42, lin_loss, &c, 1e-2f, 1e-3);
    check_grad("linear db", b, db, 7, lin_loss, &c, 1e-2f, 1e-3);
}

typedef struct {
    int64_t M, d;
    float *x, *w, *y, *r, *rstd;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    kern_rmsnorm_forward(c->y, c->rstd, c->x, c->w, c->M, c->d, 1e-5f);
    return dot_d(c->y, c->r, c->M * c->d);
}

static void rmsnorm_backward_matches_finite_differences(void **state) {
    (void)state;
    enum { M = 4, D = 24 };
    float x[M * D], w[D], y[M * D], r[M * D], rstd[M], dx[M * D] = {0}, dw[D] = {0};
    rms_ctx c = {M, D, x, w, y, r, rstd};
    fill_normal(x, M * D, 1, 5), fill_normal(w, D, 1, 6), fill_normal(r, M * D, 1, 7);
    rms_loss(&c);
    kern_rmsnorm_backward(dx, dw, r, x, w, rstd, M, D);
    check_grad("rmsnorm dx", x, dx, M * D, rms_loss, &c, 1e-2f, 2e-3);
    check_grad("rmsnorm dw", w, dw, D, rms_loss, &c, 1e-2f, 2e-3);
}

typedef struct {
    float *x, *y, *r, *cs, *sn;
    const int32_t *pos;
} rope_ctx;

enum { ROPE_M = 3, ROPE_LD = 20, ROPE_HEADS = 2, ROPE_HD = 8 };

static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->y, c->x, sizeof(float) * ROPE_M * ROPE_LD);
    kern_rope_forward(c->y, ROPE_LD, ROPE_M, ROPE_HEADS, ROPE_HD, c->pos, c->cs, c->sn);
    return dot_d(c->y, c->r, ROPE_M * ROPE_LD);
}

static void rope_backward_matches_finite_differences_and_keeps_norms(void **state) {
    (void)state;
    float x[ROPE_M * ROPE_LD], y[ROPE_M * ROPE_LD], r[ROPE_M * ROPE_LD], dx[ROPE_M * ROPE_LD];
    static float cs[1001 * ROPE_HD / 2], sn[1001 * ROPE_HD / 2];
    int32_t pos[ROPE_M] = {0, 7, 1000};
    kern_rope_table(cs, sn, 1001, ROPE_HD, 10000.0);
    assert_float_equal(cs[0], 1.0f, 1e-7);
    /* position 7, pair 1: angle 7 / 10000^(2/8) = 0.7 */
    assert_float_equal(cs[7 * ROPE_HD / 2 + 1], cosf(0.7f), 1e-6);
    rope_ctx c = {x, y, r, cs, sn, pos};
    fill_normal(x, ROPE_M * ROPE_LD, 1, 8), fill_normal(r, ROPE_M * ROPE_LD, 1, 9);
    rope_loss(&c);
    /* A rotation: each head keeps its norm; columns past the heads are untouched. */
    for (int t = 0; t < ROPE_M; t++) {
        assert_float_equal(dot_d(x + t * ROPE_LD, x + t * ROPE_LD, ROPE_HD),
                           dot_d(y + t * ROPE_LD, y + t * ROPE_LD, ROPE_HD), 1e-4);
        assert_float_equal(x[t * ROPE_LD + 19], y[t * ROPE_LD + 19], 0);
    }
    memcpy(dx, r, sizeof r);
    kern_rope_backward(dx, ROPE_LD, ROPE_M, ROPE_HEADS, ROPE_HD, pos, cs, sn);
    check_grad("rope dx", x, dx, ROPE_M * ROPE_LD, rope_loss, &c, 1e-2f, 1e-3);
}

/* Two packed sequences (3 and 5 rows), 4 heads sharing 2 kv heads, head_dim 4. */
enum { AT_T = 8, AT_H = 4, AT_KV = 2, AT_HD = 4, AT_LD = (AT_H + 2 * AT_KV) * AT_HD };
typedef struct {
    float *qkv, *out, *r, *probs;
    mart_attn_seq seqs[2];
} attn_ctx;

static void attn_setup(attn_ctx *c, float *dqkv) {
    int lens[2] = {3, 5}, row = 0;
    float *pp = c->probs;
    for (int i = 0; i < 2; i++) {
        mart_attn_seq *s = &c->seqs[i];
        s->q_row = row;
        s->n_q = s->n_k = lens[i];
        s->k = c->qkv + row * AT_LD + AT_H * AT_HD;
        s->v = s->k + AT_KV * AT_HD;
        s->dk = dqkv ? dqkv + row * AT_LD + AT_H * AT_HD : NULL;
        s->dv = dqkv ? s->dk + AT_KV * AT_HD : NULL;
        s->probs = pp;
        pp += AT_H * lens[i] * lens[i];
        row += lens[i];
    }
}

static double attn_loss(void *p) {
    attn_ctx *c = p;
    kern_attention_forward(c->out, c->qkv, AT_LD, AT_LD, c->seqs, 2, AT_H, AT_KV, AT_HD);
    return dot_d(c->out, c->r, AT_T * AT_H * AT_HD);
}

static void attention_backward_matches_finite_differences(void **state) {
    (void)state;
    float qkv[AT_T * AT_LD], out[AT_T * AT_H * AT_HD], r[AT_T * AT_H * AT_HD];
    float probs[AT_H * (9 + 25)], dqkv[AT_T * AT_LD];
    attn_ctx c = {qkv, out, r, probs, {{0}}};
    fill_normal(qkv, AT_T * AT_LD, 1, 10), fill_normal(r, AT_T * AT_H * AT_HD, 1, 11);
    attn_setup(&c, dqkv);
    attn_loss(&c);
    /* The first query of each sequence sees only itself: its output is its own value. */
    for (int j = 0; j < AT_HD; j++)
        assert_float_equal(out[j], qkv[AT_H * AT_HD + AT_KV * AT_HD + j], 1e-6);
    kern_attention_backward(dqkv, r, qkv, AT_LD, AT_LD, c.seqs, 2, AT_H, AT_KV, AT_HD);
    check_grad("attention dqkv", qkv, dqkv, AT_T * AT_LD, attn_loss, &c, 1e-2f, 2e-3);
    /* Without saved probabilities (the inference path) the output is the same. */
    float out2[AT_T * AT_H * AT_HD];
    attn_loss(&c);
    c.seqs[0].probs = c.seqs[1].probs = NULL;
    kern_attention_forward(out2, qkv, AT_LD, AT_LD, c.seqs, 2, AT_H, AT_KV, AT_HD);
    for (int i = 0; i < AT_T * AT_H * AT_HD; i++)
        assert_float_equal(out[i], out2[i], 1e-6);
}

/* One sequence of 150 rows (three query blocks), 2 heads sharing 1 kv head. */
enum { AL_T = 150, AL_H = 2, AL_HD = 4, AL_LD = (AL_H + 2) * AL_HD };
typedef struct {
    float *qkv, *out, *r;
    mart_attn_seq seq;
} attn_long_ctx;

static double attn_long_loss(void *p) {
    attn_long_ctx *c = p;
    kern_attention_forward(c->out, c->qkv, AL_LD, AL_LD, &c->seq, 1, AL_H, 1, AL_HD);
    return dot_d(c->out, c->r, AL_T * AL_H * AL_HD);
}

static void attention_backward_over_several_query_blocks_matches_finite_differences(void **s) {
    (void)s;
    float *qkv = malloc(sizeof(float) * AL_T * AL_LD), *dqkv = malloc(sizeof(float) * AL_T * AL_LD);
    float *out = malloc(sizeof(float) * AL_T * AL_H * AL_HD),
          *r = malloc(sizeof(float) * AL_T * AL_H * AL_HD);
    float *probs = malloc(sizeof(float) * AL_H * AL_T * AL_T);
    fill_normal(qkv, AL_T * AL_LD, 1, 30), fill_normal(r, AL_T * AL_H * AL_HD, 1, 31);
    attn_long_ctx c = {qkv,
                       out,
                       r,
                       {0, AL_T, AL_T, qkv + AL_H * AL_HD, qkv + (AL_H + 1) * AL_HD,
                        dqkv + AL_H * AL_HD, dqkv + (AL_H + 1) * AL_HD, probs}};
    attn_long_loss(&c);
    kern_attention_backward(dqkv, r, qkv, AL_LD, AL_LD, &c.seq, 1, AL_H, 1, AL_HD);
    /* Every column of a few rows spread over the blocks. */
    int rows[] = {0, 63, 64, 100, 149};
    for (int i = 0; i < 5; i++)
        check_grad("attention dqkv (long)", qkv + rows[i] * AL_LD, dqkv + rows[i] * AL_LD, AL_LD,
                   attn_long_loss, &c, 1e-2f, 5e-3);
    free(qkv), free(dqkv), free(out), free(r), free(probs);
}

typedef struct {
    float *gu, *h, *r;
} swi_ctx;

static double swi_loss(void *p) {
    swi_ctx *c = p;
    kern_swiglu_forward(c->h, c->gu, 3, 5);
    return dot_d(c->h, c->r, 15);
}

static void swiglu_backward_matches_finite_differences(void **state) {
    (void)state;
    float gu[30], h[15], r[15], dgu[30];
    swi_ctx c = {gu, h, r};
    fill_normal(gu, 30, 2, 12), fill_normal(r, 15, 1, 13);
    kern_swiglu_backward(dgu, r, gu, 3, 5);
    check_grad("swiglu dgu", gu, dgu, 30, swi_loss, &c, 1e-2f, 1e-3);
}

typedef struct {
    float *z, *lsm, *lp, *ent, *a, *b;
    int32_t *tg;
    float temp;
} lsm_ctx;

static double lsm_loss(void *p) {
    lsm_ctx *c = p;
    kern_logsoftmax_forward(c->lsm, c->z, 3, 9, c->temp, c->tg, c->lp, c->ent);
    return dot_d(c->lp, c->a, 3) + dot_d(c->ent, c->b, 3);
}

static void logprob_and_entropy_backward_match_finite_differences(void **state) {
    (void)state;
    float z[27], lsm[27], lp[3], ent[3], a[3], b[3], dz[27];
    int32_t tg[3] = {4, -1, 8};
    lsm_ctx c = {z, lsm, lp, ent, a, b, tg, 1.7f};
    fill_normal(z, 27, 2, 14), fill_normal(a, 3, 1, 15), fill_normal(b, 3, 1, 16);
    lsm_loss(&c);
    assert_float_equal(lp[1], 0.0f, 0); /* no target: no log-probability */
    double s = 0;
    for (int j = 0; j < 9; j++)
        s += exp(lsm[j]);
    assert_float_equal(s, 1.0, 1e-5);
    kern_logsoftmax_backward(dz, lsm, ent, 3, 9, c.temp, tg, a, b);
    check_grad("logsoftmax dz", z, dz, 27, lsm_loss, &c, 1e-2f, 2e-3);
}

/* ---- whole model ---- */

static model_config tiny_config(mart_arch arch) {
    model_config c = {0};
    c.arch = arch;
    c.vocab_size = 13;
    c.hidden_size = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 4;
    c.intermediate_size = 24;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = arch == MART_ARCH_QWEN2;
    c.attention_bias = arch == MART_ARCH_QWEN2;
    c.bos_token_id = c.eos_token_id = -1;
    return c;
}

/* Random weights larger than the 0.02 init, so that every path carries signal. */
static model *test_model(mart_arch arch, bool value_head) {
    model_config c = tiny_config(arch);
    model *m = model_create(&c, value_head, true);
    fill_normal(m->params, m->n_params, 0.3f, 17);
    for (int32_t i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, "norm"))
            for (int64_t j = 0; j < m->tensors[i].numel; j++)
                m->params[m->tensors[i].offset + j] += 1.0f;
    return m;
}

static const int32_t g_tokens[] = {1, 5, 7, 2, 12, 0, 3, 3, 9, 4, 11};
static const int32_t g_targets[] = {5, 7, 2, 12, -1, 3, 3, 9, 4, 11, -1};
static const int32_t g_offsets[] = {0, 5, 6, 11};

typedef struct {
    model *m;
    float a[11], b[11], cv[11], lp[11], ent[11], val[11];
} model_ctx;

static double model_loss(void *p) {
    model_ctx *c = p;
    model_batch batch = {3, g_tokens, g_offsets, NULL};
    model_out out = {0};
    out.targets = g_targets;
    out.temperature = 1.3f;
    out.logprobs = c->lp;
    out.entropy = c->ent;
    out.values = c->val;
    mart_err err = {0};
    assert_int_equal(model_forward(c->m, &batch, NULL, &out, false, &err), MART_OK);
    return dot_d(c->lp, c->a, 11) + dot_d(c->ent, c->b, 11) + dot_d(c->val, c->cv, 11);
}

static void check_model_gradient(mart_arch arch) {
    model_ctx c;
    c.m = test_model(arch, true);
    fill_normal(c.a, 11, 1, 20), fill_normal(c.b, 11, 1, 21), fill_normal(c.cv, 11, 1, 22);
    model_batch batch = {3, g_tokens, g_offsets, NULL};
    model_out out = {0};
    out.targets = g_targets;
    out.temperature = 1.3f;
    out.logprobs = c.lp;
    out.entropy = c.ent;
    out.values = c.val;
    mart_err err = {0};
    assert_int_equal(model_forward(c.m, &batch, NULL, &out, true, &err), MART_OK);
    float lp2[11];
    memcpy(lp2, c.lp, sizeof lp2);
    model_zero_grads(c.m);
    model_backward(c.m, c.a, c.b, c.cv);
    /* The same outputs as the inference path. */
    model_loss(&c);
    for (int i = 0; i < 11; i++)
        assert_float_equal(lp2[i], c.lp[i], 1e-5);
    /* A few elements of every tensor, errors relative to the largest gradient (central
     * differences of a float forward carry ~1e-4 absolute noise). */
    double gmax = 0;
    for (int64_t j = 0; j < c.m->n_params; j++)
        gmax = fmax(gmax, fabs(c.m->grads[j]));
    const float h = 1e-2f;
    for (int32_t i = 0; i < c.m->n_tensors; i++) {
        const model_tensor *t = &c.m->tensors[i];
        int64_t n = t->numel < 6 ? t->numel : 6, step = t->numel / n;
        for (int64_t k = 0; k < n; k++) {
            int64_t j = t->offset + k * step + (k * 7) % (step > 0 ? step : 1);
            float x0 = c.m->params[j];
            c.m->params[j] = x0 + h;
            double lp = model_loss(&c);
            c.m->params[j] = x0 - h;
            double lm = model_loss(&c);
            c.m->params[j] = x0;
            double fd = (lp - lm) / (2.0 * h), e = fabs(fd - c.m->grads[j]) / gmax;
            if (e > 1e-2)
                print_error("%s[%ld]: analytic %g finite difference %g (max grad %g)\n", t->name,
                            (long)(j - t->offset), (double)c.m->grads[j], fd, gmax);
            assert_true(e <= 1e-2);
        }
    }
    /* An empty micro-batch adds nothing. */
    float *before = malloc(sizeof(float) * (size_t)c.m->n_params);
    memcpy(before, c.m->grads, sizeof(float) * (size_t)c.m->n_params);
    int32_t zero = 0;
    model_batch empty = {0, g_tokens, &zero, NULL};
    assert_int_equal(model_forward(c.m, &empty, NULL, &out, true, &err), MART_OK);
    model_backward(c.m, c.a, c.b, c.cv);
    assert_int_equal(memcmp(before, c.m->grads, sizeof(float) * (size_t)c.m->n_params), 0);
    free(before);
    model_free(c.m);
}

static void qwen2_model_gradient_with_bias_and_tied_head_matches_finite_differences(void **s) {
    (void)s;
    check_model_gradient(MART_ARCH_QWEN2);
}

static void llama_model_gradient_untied_without_bias_matches_finite_differences(void **s) {
    (void)s;
    check_model_gradient(MART_ARCH_LLAMA);
}

static void packed_batch_gives_the_same_outputs_as_sequences_run_alone(void **state) {
    (void)state;
    model *m = test_model(MART_ARCH_QWEN2, true);
    float lp[11], ent[11], val[11];
    model_out out = {0};
    out.targets = g_targets, out.logprobs = lp, out.entropy = ent, out.values = val;
    model_batch all = {3, g_tokens, g_offsets, NULL};
    mart_err err = {0};
    assert_int_equal(model_forward(m, &all, NULL, &out, false, &err), MART_OK);
    for (int i = 0; i < 3; i++) {
        int32_t off[2] = {0, g_offsets[i + 1] - g_offsets[i]};
        float lp1[11], ent1[11], val1[11];
        model_out o1 = {0};
        o1.targets = g_targets + g_offsets[i], o1.logprobs = lp1, o1.entropy = ent1;
        o1.values = val1;
        model_batch one = {1, g_tokens + g_offsets[i], off, NULL};
        assert_int_equal(model_forward(m, &one, NULL, &o1, false, &err), MART_OK);
        for (int t = 0; t < off[1]; t++) {
            assert_float_equal(lp1[t], lp[g_offsets[i] + t], 1e-5);
            assert_float_equal(ent1[t], ent[g_offsets[i] + t], 1e-5);
            assert_float_equal(val1[t], val[g_offsets[i] + t], 1e-5);
        }
    }
    /* last_only gives the last row of each sequence. */
    float lpl[3];
    model_out ol = {0};
    ol.targets = g_targets, ol.logprobs = lpl, ol.last_only = true;
    assert_int_equal(model_forward(m, &all, NULL, &ol, false, &err), MART_OK);
    for (int i = 0; i < 3; i++)
        assert_float_equal(lpl[i], lp[g_offsets[i + 1] - 1], 1e-6);
    model_free(m);
}

static void kv_cache_prefill_in_pieces_gives_the_same_logits_as_one_pass(void **state) {
    (void)state;
    model *m = test_model(MART_ARCH_LLAMA, false);
    const int32_t V = m->cfg.vocab_size, n = 11;
    float full[11 * 13], part[11 * 13];
    int32_t off[2] = {0, n};
    model_batch one = {1, g_tokens, off, NULL};
    model_out out = {0};
    out.logits = full;
    mart_err err = {0};
    assert_int_equal(model_forward(m, &one, NULL, &out, false, &err), MART_OK);
    model_kv_cache kv;
    assert_int_equal(model_kv_create(&kv, m, 3, 16, &err), MART_OK);
    /* Slot 2, pieces of 4, 3, 1, 1, 2 tokens, batched with another sequence in slot 0. */
    int pieces[] = {4, 3, 1, 1, 2}, at = 0;
    for (int p = 0; p < 5; p++) {
        int32_t toks[8], offs[3] = {0, pieces[p], pieces[p] + 1}, slots[2] = {2, 0};
        memcpy(toks, g_tokens + at, sizeof(int32_t) * (size_t)pieces[p]);
        toks[pieces[p]] = 6;
        float lg[9 * 13];
        model_batch b = {2, toks, offs, slots};
        model_out o = {0};
        o.logits = lg;
        assert_int_equal(model_forward(m, &b, &kv, &o, false, &err), MART_OK);
        memcpy(part + at * V, lg, sizeof(float) * (size_t)(pieces[p] * V));
        at += pieces[p];
    }
    assert_int_equal(kv.len[2], n);
    assert_int_equal(kv.len[0], 5);
    for (int i = 0; i < n * V; i++)
        assert_float_equal(part[i], full[i], 1e-4);
    /* A copied prefix continues like the original. */
    model_kv_copy(&kv, 1, 2, 6);
    int32_t toks[5], offs[2] = {0, 5}, slot = 1;
    memcpy(toks, g_tokens + 6, sizeof toks);
    float lg[5 * 13];
    model_batch b = {1, toks, offs, &slot};
    model_out o = {0};
    o.logits = lg;
    assert_int_equal(model_forward(m, &b, &kv, &o, false, &err), MART_OK);
    for (int i = 0; i < 5 * V; i++)
        assert_float_equal(lg[i], full[6 * V + i], 1e-4);
    /* Overflowing the slot is an error naming it. */
    int32_t offs16[2] = {0, 11};
    model_batch big = {1, g_tokens, offs16, &slot};
    assert_int_equal(model_forward(m, &big, &kv, &o, false, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "slot 1"));
    model_kv_free(&kv);
    model_free(m);
}

static void temperature_divides_logits_for_logprobs_and_entropy(void **state) {
    (void)state;
    model *m = test_model(MART_ARCH_QWEN2, false);
    float lg[11 * 13], lp[11], ent[11];
    model_batch all = {3, g_tokens, g_offsets, NULL};
    model_out out = {0};
    out.targets = g_targets, out.logits = lg, out.logprobs = lp, out.entropy = ent;
    out.temperature = 0.7f;
    mart_err err = {0};
    assert_int_equal(model_forward(m, &all, NULL, &out, false, &err), MART_OK);
    for (int t = 0; t < 11; t++) {
        double mx = -1e30, s = 0, h = 0;
        for (int j = 0; j < 13; j++)
            mx = fmax(mx, lg[t * 13 + j] / 0.7);
        for (int j = 0; j < 13; j++)
            s += exp(lg[t * 13 + j] / 0.7 - mx);
        for (int j = 0; j < 13; j++) {
            double l = lg[t * 13 + j] / 0.7 - mx - log(s);
            h -= exp(l) * l;
            if (j == g_targets[t]) assert_float_equal(lp[t], l, 1e-5);
        }
        assert_float_equal(ent[t], h, 1e-5);
    }
    model_free(m);
}

static void token_outside_the_vocabulary_is_an_error_naming_the_position(void **state) {
    (void)state;
    model *m = test_model(MART_ARCH_QWEN2, false);
    int32_t toks[4] = {1, 2, 13, 3}, offs[3] = {0, 1, 4};
    float lp[4];
    model_batch b = {2, toks, offs, NULL};
    model_out o = {0};
    o.logprobs = lp;
    mart_err err = {0};
    assert_int_equal(model_forward(m, &b, NULL, &o, false, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "sequence 1 position 1"));
    assert_non_null(strstr(err.msg, "13"));
    toks[2] = -1;
    assert_int_equal(model_forward(m, &b, NULL, &o, false, &err), MART_ERR);
    model_free(m);
}

static void tensor_table_uses_hugging_face_names_and_covers_params_once(void **state) {
    (void)state;
    mart_err err = {0};
    model_config c;
    assert_int_equal(model_config_builtin("40m", &c, &err), MART_OK);
    model *m = model_create(&c, true, false);
    assert_null(m->grads);
    assert_true(m->n_params > 38000000 && m->n_params < 42000000);
    int64_t at = 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        assert_int_equal(m->tensors[i].offset, at);
        at += m->tensors[i].numel;
    }
    assert_int_equal(at, m->n_params);
    const model_tensor *t = model_find_tensor(m, "model.layers.7.self_attn.k_proj.bias");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 256);
    assert_true(m->params + t->offset == m->layers[7].bk);
    t = model_find_tensor(m, "value_head.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 512);
    assert_null(model_find_tensor(m, "lm_head.weight"));
    assert_true(m->lm_head == m->embed);
    model_free(m);
    assert_int_equal(model_config_builtin("nope", &c, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "tiny"));

    /* Untied: lm_head has its own tensor. Clone and value-head changes keep the weights. */
    model_config lc = tiny_config(MART_ARCH_LLAMA);
    m = model_create(&lc, false, false);
    model_init_random(m, 5);
    assert_non_null(model_find_tensor(m, "lm_head.weight"));
    assert_null(model_find_tensor(m, "model.layers.0.self_attn.q_proj.bias"));
    model *k = model_clone(m, true, true);
    assert_non_null(k->grads);
    assert_int_equal(memcmp(k->params, m->params, sizeof(float) * (size_t)m->n_params), 0);
    assert_float_equal(k->value_head[3], 0.0f, 0);
    model_set_value_head(k, false);
    model_set_trainable(k, false);
    assert_null(k->grads);
    assert_int_equal(k->n_params, m->n_params);
    assert_int_equal(memcmp(k->params, m->params, sizeof(float) * (size_t)m->n_params), 0);
    model_free(k);
    model_free(m);
}

static void random_init_is_seeded_normal_and_independent_of_thread_count(void **state) {
    (void)state;
    model_config c = tiny_config(MART_ARCH_QWEN2);
    c.vocab_size = 5000; /* embedding over several random streams */
    model *a = model_create(&c, true, false), *b = model_create(&c, true, false);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    model_init_random(a, 7);
    omp_set_num_threads(threads > 1 ? threads : 2);
    model_init_random(b, 7);
    omp_set_num_threads(threads);
    assert_int_equal(memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params), 0);
    double s = 0, s2 = 0;
    int64_t n = 5000 * 16;
    for (int64_t j = 0; j < n; j++)
        s += a->embed[j], s2 += (double)a->embed[j] * a->embed[j];
    assert_true(fabs(s / n) < 1e-3);
    assert_float_equal(sqrt(s2 / n), 0.02, 5e-4);
    assert_float_equal(a->final_norm[3], 1.0f, 0);
    assert_float_equal(a->layers[1].bk[2], 0.0f, 0);
    assert_float_equal(a->value_head[0], 0.0f, 0);
    model_init_random(b, 8);
    assert_true(a->embed[0] != b->embed[0]);
    model_free(a);
    model_free(b);
}

static void adamw_step_matches_a_hand_computed_update(void **state) {
    (void)state;
    adamw_state s;
    adamw_init(&s, mart_backend_cpu(), 2);
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.0f};
    adamw_config c = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f};
    adamw_step(&s, p, g, &c);
    /* step 1: m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25 -> update lr * 0.5/0.5 = 0.1 */
    assert_float_equal(p[0], 1.0f * (1 - 0.001f) - 0.1f, 1e-6);
    assert_float_equal(p[1], -2.0f * (1 - 0.001f), 1e-6);
    float g2[2] = {-0.5f, 0.0f};
    adamw_step(&s, p, g2, &c);
    /* step 2: m = 0.9*0.05 - 0.05 = -0.005, mhat = -0.005/0.19; v = 0.999*0.00025 + 0.00025,
     * vhat = v / (1 - 0.999^2) */
    double m2 = -0.005 / 0.19, v2 = (0.999 * 0.00025 + 0.001 * 0.25) / (1 - 0.999 * 0.999);
    double want = (1.0 * 0.999 - 0.1) * 0.999 - 0.1 * m2 / (sqrt(v2) + 1e-8);
    assert_float_equal(p[0], want, 1e-6);
    adamw_free(&s);
}

static void clip_grad_norm_scales_to_the_limit_and_reports_the_old_norm(void **state) {
    (void)state;
    model_config c = tiny_config(MART_ARCH_LLAMA);
    model *m = model_create(&c, false, true);
    model_zero_grads(m);
    m->grads[0] = 3.0f;
    m->grads[m->n_params - 1] = 4.0f;
    assert_float_equal(model_clip_grad_norm(m, 10.0f), 5.0f, 1e-6);
    assert_float_equal(m->grads[0], 3.0f, 0);
    assert_float_equal(model_clip_grad_norm(m, 1.0f), 5.0f, 1e-6);
    assert_float_equal(m->grads[0], 0.6f, 1e-6);
    assert_float_equal(m->grads[m->n_params - 1], 0.8f, 1e-6);
    assert_float_equal(model_clip_grad_norm(m, 0.0f), 1.0f, 1e-5);
    model_free(m);
}

/* A backend whose memory is not the host's (the CPU kernels behind upload/download): a
 * model loaded onto it, trained one step (with value head), saved and its moments
 * checkpointed gives the CPU backend's bytes, so the model, checkpoints and optimiser reach
 * parameters only through the backend. */
static void a_device_memory_backend_gives_the_cpu_results(void **state) {
    (void)state;
    char dir[] = "/tmp/mart_staged_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[300], b[300], ca[300], cb[300];
    snprintf(a, sizeof a, "%s/cpu", dir);
    snprintf(b, sizeof b, "%s/staged", dir);
    mart_err err = {0};
    model *m0 = test_model(MART_ARCH_QWEN2, true);
    assert_int_equal(model_save(m0, a, &err), MART_OK);
    model_free(m0);
    model *m[2];
    assert_int_equal(model_load(a, true, &m[0], &err), MART_OK);
    assert_int_equal(model_load_on(mart_backend_cpu_staged(), a, true, &m[1], &err), MART_OK);
    assert_false(m[1]->be->host_memory);
    int32_t offs[3] = {0, 5, 11};
    model_batch batch = {2, g_tokens, offs, NULL};
    float lp[2][11], v[2][11], dlp[11], dv[11];
    adamw_state st[2];
    for (int k = 0; k < 2; k++) {
        model_out o = {.targets = g_targets, .logprobs = lp[k], .values = v[k]};
        assert_int_equal(model_forward(m[k], &batch, NULL, &o, true, &err), MART_OK);
        for (int t = 0; t < 11; t++) {
            dlp[t] = g_targets[t] >= 0 ? 0.1f * (float)(t % 3) - 0.1f : 0.0f;
            dv[t] = 0.05f * (float)t;
        }
        model_zero_grads(m[k]);
        model_backward(m[k], dlp, NULL, dv);
        adamw_init(&st[k], m[k]->be, m[k]->n_params);
        adamw_config ac = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
        model_optimizer_step(m[k], &st[k], &ac, 1.0f);
    }
    assert_memory_equal(lp[0], lp[1], sizeof lp[0]);
    assert_memory_equal(v[0], v[1], sizeof v[0]);
    snprintf(ca, sizeof ca, "%s/moments_cpu.safetensors", dir);
    snprintf(cb, sizeof cb, "%s/moments_staged.safetensors", dir);
    const char *names[1] = {"model"};
    const adamw_state *s0[1] = {&st[0]}, *s1[1] = {&st[1]};
    assert_int_equal(ckpt_save_moments(ca, s0, names, 1, &err), MART_OK);
    assert_int_equal(ckpt_save_moments(cb, s1, names, 1, &err), MART_OK);
    snprintf(a, sizeof a, "%s/cpu_after", dir);
    assert_int_equal(model_save(m[0], a, &err), MART_OK);
    assert_int_equal(model_save(m[1], b, &err), MART_OK);
    const char *files[2][2] = {{a, b}, {ca, cb}};
    for (int f = 0; f < 2; f++) {
        char pa[400], pb[400], *x = NULL, *y = NULL;
        size_t lx = 0, ly = 0;
        snprintf(pa, sizeof pa, f ? "%s" : "%s/model.safetensors", files[f][0]);
        snprintf(pb, sizeof pb, f ? "%s" : "%s/model.safetensors", files[f][1]);
        assert_int_equal(mart_read_file(pa, &x, &lx, &err), MART_OK);
        assert_int_equal(mart_read_file(pb, &y, &ly, &err), MART_OK);
        assert_int_equal(lx, ly);
        assert_memory_equal(x, y, lx);
        free(x);
        free(y);
    }
    /* and back: moments loaded onto the device backend */
    adamw_state back;
    adamw_init(&back, m[1]->be, m[1]->n_params);
    adamw_state *bk[1] = {&back};
    assert_int_equal(ckpt_load_moments(ca, bk, names, 1, &err), MART_OK);
    assert_memory_equal(back.m, st[0].m, (size_t)back.n * sizeof(float));
    adamw_free(&back);
    for (int k = 0; k < 2; k++) {
        adamw_free(&st[k]);
        model_free(m[k]);
    }
    mart_remove_tree(dir, &err);
}

/* Taking the CPU backend keeps OpenBLAS on one thread per call but leaves OpenMP's thread
 * count as it was (OpenBLAS's OpenMP build would otherwise set it to 1 for the process). */
static void the_cpu_backend_keeps_the_openmp_thread_count(void **state) {
    (void)state;
    int before = omp_get_max_threads();
    assert_non_null(mart_backend_cpu());
    assert_int_equal(omp_get_max_threads(), before);
    int team = 0;
#pragma omp parallel
    {
#pragma omp atomic
        team++;
    }
    assert_int_equal(team, before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_backward_matches_finite_differences),
        cmocka_unit_test(rmsnorm_backward_matches_finite_differences),
        cmocka_unit_test(rope_backward_matches_finite_differences_and_keeps_norms),
        cmocka_unit_test(attention_backward_matches_finite_differences),
        cmocka_unit_test(attention_backward_over_several_query_blocks_matches_finite_differences),
        cmocka_unit_test(swiglu_backward_matches_finite_differences),
        cmocka_unit_test(logprob_and_entropy_backward_match_finite_differences),
        cmocka_unit_test(qwen2_model_gradient_with_bias_and_tied_head_matches_finite_differences),
        cmocka_unit_test(llama_model_gradient_untied_without_bias_matches_finite_differences),
        cmocka_unit_test(packed_batch_gives_the_same_outputs_as_sequences_run_alone),
        cmocka_unit_test(kv_cache_prefill_in_pieces_gives_the_same_logits_as_one_pass),
        cmocka_unit_test(temperature_divides_logits_for_logprobs_and_entropy),
        cmocka_unit_test(token_outside_the_vocabulary_is_an_error_naming_the_position),
        cmocka_unit_test(tensor_table_uses_hugging_face_names_and_covers_params_once),
        cmocka_unit_test(random_init_is_seeded_normal_and_independent_of_thread_count),
        cmocka_unit_test(adamw_step_matches_a_hand_computed_update),
        cmocka_unit_test(the_cpu_backend_keeps_the_openmp_thread_count),
        cmocka_unit_test(a_device_memory_backend_gives_the_cpu_results),
        cmocka_unit_test(clip_grad_norm_scales_to_the_limit_and_reports_the_old_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
