/* forward: the transformer over a packed batch (see model_forward in mart/model.h).
 *
 *   x = embed[tokens]
 *   per layer:  a = rmsnorm(x) ; [q k v] = a Wqkv^T + b ; rotary(q, k) ; x += attn(q,k,v) Wo^T
 *               a = rmsnorm(x) ; [g u] = a Wgu^T ; x += (silu(g) * u) Wdown^T
 *   xf = rmsnorm(x) ; logits = xf lm_head^T ; values = xf . value_head
 *
 * With for_backward every layer's activations are kept (struct model_work) for backward.c;
 * otherwise one set of buffers is reused by every layer and logits are produced in row
 * chunks, so (n_tokens, vocab) is never held unless the caller asks for the logits. */
#include "model/model_priv.h"

#include <stdlib.h>
#include <string.h>

/* Logit rows per chunk when the full (rows, vocab) matrix is not kept: ~32 MB. */
#define LOGIT_CHUNK_FLOATS (8 << 20)

float *wbuf_get(wbuf *b, size_t n) {
    if (n == 0) n = 1;
    if (b->cap < n) {
        b->be->free(b->be, b->p);
        b->p = b->be->alloc(b->be, (int64_t)n);
        b->cap = n;
    }
    return b->p;
}

/* Every float buffer of w, for creation and freeing. */
#define WORK_BUFS(w)                                                                               \
    {&(w)->res,  &(w)->xn1,    &(w)->rstd1,    &(w)->qkv,      &(w)->att,  &(w)->probs,           \
     &(w)->xn2,  &(w)->rstd2,  &(w)->gu,       &(w)->hid,      &(w)->xf,   &(w)->rstdf,           \
     &(w)->lsm,  &(w)->ent,    &(w)->gather,   &(w)->rope_cos, &(w)->rope_sin, &(w)->dres,        \
     &(w)->dxn,  &(w)->dqkv,   &(w)->datt,     &(w)->dgu,      &(w)->dhid, &(w)->io_lp,         \
     &(w)->io_ent, &(w)->io_val}

struct model_work *model_work_create(const mart_backend *be) {
    struct model_work *w = mart_xcalloc(1, sizeof(struct model_work));
    wbuf *all[] = WORK_BUFS(w);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        all[i]->be = be;
    return w;
}

void model_work_free(struct model_work *w) {
    if (!w) return;
    wbuf *all[] = WORK_BUFS(w);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        all[i]->be->free(all[i]->be, all[i]->p);
    free(w->pos);
    free(w->tokens);
    free(w->targets);
    free(w->offsets);
    free(w->last_rows);
    free(w->seqs);
    free(w);
}

static void work_reserve_ints(struct model_work *w, int64_t n_tokens, int32_t n_seqs) {
    if (w->icap < (size_t)n_tokens + 1) {
        w->icap = (size_t)n_tokens + 1;
        w->pos = mart_xrealloc(w->pos, w->icap * sizeof(int32_t));
        w->tokens = mart_xrealloc(w->tokens, w->icap * sizeof(int32_t));
        w->targets = mart_xrealloc(w->targets, w->icap * sizeof(int32_t));
    }
    if (w->ocap < (size_t)n_seqs + 1) {
        w->ocap = (size_t)n_seqs + 1;
        w->offsets = mart_xrealloc(w->offsets, w->ocap * sizeof(int32_t));
        w->last_rows = mart_xrealloc(w->last_rows, w->ocap * sizeof(int64_t));
        w->seqs = mart_xrealloc(w->seqs, w->ocap * sizeof(mart_attn_seq));
    }
}

/* Checks the batch against the model and the cache; fills w->pos. */
static int check_batch(const model *m, const model_batch *b, const model_kv_cache *cache,
                       const model_out *out, bool for_backward, mart_err *err) {
    const model_config *c = &m->cfg;
    if (b->n_seqs < 0) return mart_fail(err, "batch: negative number of sequences");
    if (b->n_seqs > 0 && b->offsets[0] != 0)
        return mart_fail(err, "batch: offsets[0] must be 0 (got %d)", b->offsets[0]);
    if (b->slots && !cache) return mart_fail(err, "batch: KV-cache slots given without a cache");
    if (b->slots && for_backward)
        return mart_fail(err, "batch: a forward pass for backward cannot use the KV cache");
    if (for_backward && out->last_only)
        return mart_fail(err, "batch: last_only outputs cannot be used for backward");
    if (out->values && !m->has_value_head)
        return mart_fail(err, "values requested from a model without a value head");
    for (int32_t i = 0; i < b->n_seqs; i++) {
        int32_t n = b->offsets[i + 1] - b->offsets[i];
        if (n < 0) return mart_fail(err, "batch: sequence %d has negative length", i);
        if (n == 0 && out->last_only)
            return mart_fail(err, "batch: sequence %d is empty (last_only needs a token)", i);
        int32_t p0 = 0;
        if (b->slots) {
            int32_t s = b->slots[i];
            if (s < 0 || s >= cache->n_slots)
                return mart_fail(err, "batch: sequence %d uses KV slot %d, outside [0, %d)", i, s,
                                 cache->n_slots);
            for (int32_t j = 0; j < i; j++)
                if (b->slots[j] == s)
                    return mart_fail(err, "batch: sequences %d and %d share KV slot %d", j, i, s);
            p0 = cache->len[s];
            if ((int64_t)p0 + n > cache->max_len)
                return mart_fail(err,
                                 "batch: sequence %d overflows KV slot %d (%d + %d positions > "
                                 "max_len %d)",
                                 i, s, p0, n, cache->max_len);
        }
        for (int32_t t = 0; t < n; t++) {
            int32_t tok = b->tokens[b->offsets[i] + t];
            if (tok < 0 || tok >= c->vocab_size)
                return mart_fail(err,
                                 "batch: sequence %d position %d: token id %d is outside the "
                                 "vocabulary [0, %d)",
                                 i, t, tok, c->vocab_size);
            if (out->targets && out->targets[b->offsets[i] + t] >= c->vocab_size)
                return mart_fail(err,
                                 "batch: sequence %d position %d: target id %d is outside the "
                                 "vocabulary [0, %d)",
                                 i, t, out->targets[b->offsets[i] + t], c->vocab_size);
            m->work->pos[b->offsets[i] + t] = p0 + t;
        }
    }
    return MART_OK;
}

/* Where an operation writes the host output array host (n floats): host itself when the
 * backend's memory is the host's, else a work buffer that out_fetch downloads. NULL when
 * the output is not wanted. */
static float *out_dst(const mart_backend *be, wbuf *b, float *host, int64_t n) {
    if (!host) return NULL;
    return be->host_memory ? host : wbuf_get(b, (size_t)n);
}

static void out_fetch(const mart_backend *be, float *host, const float *dst, int64_t n) {
    if (host && host != dst) be->download(be, host, dst, n);
}

/* Output rows of the LM head for the rows of xf (rows, d). */
static void head_outputs(model *m, const float *xf, int64_t rows, const int32_t *row_targets,
                         const model_out *out, bool for_backward) {
    struct model_work *w = m->work;
    const mart_backend *be = m->be;
    const int64_t V = m->cfg.vocab_size, d = m->cfg.hidden_size;
    float *lp = out_dst(be, &w->io_lp, out->logprobs, rows);
    float *ent = out_dst(be, &w->io_ent, out->entropy, rows);
    float *val = out_dst(be, &w->io_val, out->values, rows);
    if (val) be->dot_rows(be, val, xf, m->value_head, rows, d);
    out_fetch(be, out->values, val, rows);
    w->has_lsm = false;
    if (for_backward && (out->targets || out->logprobs || out->entropy || out->logits)) {
        float *lsm = wbuf_get(&w->lsm, (size_t)(rows * V));
        float *kept_ent = wbuf_get(&w->ent, (size_t)rows);
        be->linear(be, lsm, xf, m->lm_head, NULL, NULL, rows, V, d, false, MART_PRODUCTS_EXACT);
        if (out->logits) be->download(be, out->logits, lsm, rows * V);
        be->logsoftmax_forward(be, lsm, lsm, rows, V, out->temperature, row_targets, lp,
                               kept_ent);
        out_fetch(be, out->logprobs, lp, rows);
        if (out->entropy) be->download(be, out->entropy, kept_ent, rows);
        w->has_lsm = true;
        return;
    }
    if (!out->logprobs && !out->entropy && !out->logits) return;
    int64_t chunk = LOGIT_CHUNK_FLOATS / V;
    if (chunk < 16) chunk = 16;
    if (chunk > rows) chunk = rows;
    float *scratch = wbuf_get(&w->lsm, (size_t)(chunk * V));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        /* On a host-memory backend the logits go straight to the caller's array. */
        float *z = out->logits && be->host_memory ? out->logits + r0 * V : scratch;
        be->linear(be, z, xf + r0 * d, m->lm_head, m->lm_head16, NULL, n, V, d, false,
                   out->products);
        if (out->logits && z == scratch) be->download(be, out->logits + r0 * V, z, n * V);
        if (lp || ent)
            be->logsoftmax_forward(be, scratch, z, n, V, out->temperature,
                                   row_targets ? row_targets + r0 : NULL, lp ? lp + r0 : NULL,
                                   ent ? ent + r0 : NULL);
    }
    out_fetch(be, out->logprobs, lp, rows);
    out_fetch(be, out->entropy, ent, rows);
}

int model_forward(model *m, const model_batch *b, model_kv_cache *cache, model_out *out,
                  bool for_backward, mart_err *err) {
    const model_config *c = &m->cfg;
    const mart_backend *be = m->be;
    struct model_work *w = m->work;
    const int32_t S = b->n_seqs;
    const int64_t T = S > 0 ? b->offsets[S] : 0;
    const int64_t d = c->hidden_size, hd = c->head_dim, qd = c->n_heads * hd,
                  kvd = c->n_kv_heads * hd, ldqkv = qd + 2 * kvd, f = c->intermediate_size;
    const int32_t L = c->n_layers;
    w->saved = false;
    work_reserve_ints(w, T, S);
    if (check_batch(m, b, cache, out, for_backward, err)) return MART_ERR;
    /* BF16 products round the activations: their gradients would not be the model's. */
    const mart_products prod = for_backward ? MART_PRODUCTS_EXACT : out->products;
    if (T == 0) {
        /* An empty micro-batch: backward then adds nothing. */
        w->saved = for_backward;
        w->n_tokens = 0;
        return MART_OK;
    }

    /* Layer-indexed views: one copy per layer when keeping activations for backward. */
    const int64_t nl = for_backward ? L : 1;
    int64_t p_total = 0;
    for (int32_t i = 0; i < S; i++) {
        int64_t n = b->offsets[i + 1] - b->offsets[i];
        p_total += for_backward ? (int64_t)c->n_heads * n * n : 0;
    }
    float *res = wbuf_get(&w->res, (size_t)((for_backward ? 2 * L + 1 : 1) * T * d));
    float *xn1 = wbuf_get(&w->xn1, (size_t)(nl * T * d));
    float *rstd1 = wbuf_get(&w->rstd1, (size_t)(nl * T));
    float *qkv = wbuf_get(&w->qkv, (size_t)(nl * T * ldqkv));
    float *att = wbuf_get(&w->att, (size_t)(nl * T * qd));
    float *probs = for_backward ? wbuf_get(&w->probs, (size_t)(L * p_total)) : NULL;
    float *xn2 = wbuf_get(&w->xn2, (size_t)(nl * T * d));
    float *rstd2 = wbuf_get(&w->rstd2, (size_t)(nl * T));
    float *gu = wbuf_get(&w->gu, (size_t)(nl * T * 2 * f));
    float *hid = wbuf_get(&w->hid, (size_t)(nl * T * f));
    int64_t max_pos = 0;
    for (int64_t t = 0; t < T; t++)
        max_pos = w->pos[t] > max_pos ? w->pos[t] : max_pos;
    if (max_pos >= w->rope_n) {
        int64_t n = max_pos + 1 > 2 * w->rope_n ? max_pos + 1 : 2 * w->rope_n;
        be->rope_table(be, wbuf_get(&w->rope_cos, (size_t)(n * hd / 2)),
                       wbuf_get(&w->rope_sin, (size_t)(n * hd / 2)), n, (int32_t)hd,
                       c->rope_theta);
        w->rope_n = n;
    }
    const float *rc = w->rope_cos.p, *rs = w->rope_sin.p;

    be->embed_forward(be, res, m->embed, b->tokens, T, d);

    for (int32_t l = 0; l < L; l++) {
        const model_layer *ly = &m->layers[l];
        const int64_t li = for_backward ? l : 0;
        float *x_in = for_backward ? res + (2 * l) * T * d : res;
        float *x_mid = for_backward ? res + (2 * l + 1) * T * d : res;
        float *x_out = for_backward ? res + (2 * l + 2) * T * d : res;
        float *a1 = xn1 + li * T * d, *q = qkv + li * T * ldqkv, *o = att + li * T * qd;
        float *a2 = xn2 + li * T * d, *g = gu + li * T * 2 * f, *h = hid + li * T * f;
        assert(ly->wk == ly->wq + qd * d && ly->wv == ly->wk + kvd * d);
        assert(ly->w_up == ly->w_gate + f * d);

        /* Attention block. */
        be->rmsnorm_forward(be, a1, rstd1 + li * T, x_in, ly->attn_norm, T, d, c->rms_norm_eps);
        be->linear(be, q, a1, ly->wq, ly->wqkv16, ly->bq, T, ldqkv, d, false, prod);
        be->rope(be, q, ldqkv, T, c->n_heads + c->n_kv_heads, (int32_t)hd, w->pos, rc, rs, false);
        float *pp = probs ? probs + l * p_total : NULL;
        for (int32_t i = 0; i < S; i++) {
            mart_attn_seq *sq = &w->seqs[i];
            int64_t r0 = b->offsets[i];
            int32_t n = b->offsets[i + 1] - b->offsets[i];
            sq->q_row = r0;
            sq->n_q = n;
            sq->dk = sq->dv = NULL;
            if (b->slots) {
                int32_t slot = b->slots[i], p0 = cache->len[slot];
                int64_t base = ((int64_t)l * cache->n_slots + slot) * cache->max_len * kvd;
                float *kc = cache->k + base, *vc = cache->v + base;
                be->copy_rows(be, kc + p0 * kvd, kvd, q + r0 * ldqkv + qd, ldqkv, NULL, n, kvd);
                be->copy_rows(be, vc + p0 * kvd, kvd, q + r0 * ldqkv + qd + kvd, ldqkv, NULL, n,
                              kvd);
                sq->k = kc;
                sq->v = vc;
                sq->n_k = p0 + n;
            } else {
                sq->k = q + r0 * ldqkv + qd;
                sq->v = q + r0 * ldqkv + qd + kvd;
                sq->n_k = n;
            }
            sq->probs = pp;
            if (pp) pp += (int64_t)c->n_heads * n * n;
        }
        be->attention_forward(be, o, q, ldqkv, b->slots ? kvd : ldqkv, w->seqs, S, c->n_heads,
                              c->n_kv_heads, (int32_t)hd);
        if (x_mid != x_in) be->copy(be, x_mid, x_in, T * d);
        be->linear(be, x_mid, o, ly->wo, ly->wo16, NULL, T, d, qd, true, prod);

        /* MLP block. */
        be->rmsnorm_forward(be, a2, rstd2 + li * T, x_mid, ly->mlp_norm, T, d, c->rms_norm_eps);
        be->linear(be, g, a2, ly->w_gate, ly->w_gu16, NULL, T, 2 * f, d, false, prod);
        be->swiglu_forward(be, h, g, T, f);
        if (x_out != x_mid) be->copy(be, x_out, x_mid, T * d);
        be->linear(be, x_out, h, ly->w_down, ly->w_down16, NULL, T, d, f, true, prod);
    }
    if (b->slots)
        for (int32_t i = 0; i < S; i++)
            cache->len[b->slots[i]] += b->offsets[i + 1] - b->offsets[i];

    /* Final norm and heads, on every token or on the last token of each sequence. */
    float *x_fin = for_backward ? res + (int64_t)(2 * L) * T * d : res;
    int64_t rows = out->last_only ? S : T;
    int32_t *row_targets = out->targets ? w->targets : NULL;
    if (out->last_only) {
        float *gth = wbuf_get(&w->gather, (size_t)(S * d));
        int64_t *last = w->last_rows;
        for (int32_t i = 0; i < S; i++) {
            last[i] = b->offsets[i + 1] - 1;
            if (row_targets) row_targets[i] = out->targets[last[i]];
        }
        be->copy_rows(be, gth, d, x_fin, d, last, S, d);
        x_fin = gth;
    } else if (row_targets) {
        memcpy(row_targets, out->targets, (size_t)T * sizeof(int32_t));
    }
    float *xf = wbuf_get(&w->xf, (size_t)(rows * d));
    float *rstdf = wbuf_get(&w->rstdf, (size_t)rows);
    be->rmsnorm_forward(be, xf, rstdf, x_fin, m->final_norm, rows, d, c->rms_norm_eps);
    model_out o = *out;
    o.products = prod;
    head_outputs(m, xf, rows, row_targets, &o, for_backward);

    if (for_backward) {
        memcpy(w->tokens, b->tokens, (size_t)T * sizeof(int32_t));
        memcpy(w->offsets, b->offsets, (size_t)(S + 1) * sizeof(int32_t));
        w->saved = true;
        w->n_tokens = T;
        w->n_seqs = S;
        w->temperature = out->temperature;
        w->has_targets = out->targets != NULL;
    }
    return MART_OK;
}
