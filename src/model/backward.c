/* backward: gradients of a per-token weighted objective through the whole model, from the
 * activations the last model_forward(for_backward = true) kept (see forward.c for the
 * forward equations; each step here is the transpose of one step there, in reverse). */
#include "model/model_priv.h"

/* The gradient slot of a parameter pointer. */
static float *grad_of(model *m, const float *p) {
    return m->grads + (p - m->params);
}

/* The host array host (n floats) as a buffer of the backend: host itself when the backend's
 * memory is the host's, else a copy uploaded into b. */
static const float *in_src(const mart_backend *be, wbuf *b, const float *host, int64_t n) {
    if (!host || be->host_memory) return host;
    float *p = wbuf_get(b, (size_t)n);
    be->upload(be, p, host, n);
    return p;
}

void model_backward(model *m, const float *d_logprobs_host, const float *d_entropy_host,
                    const float *d_values_host) {
    struct model_work *w = m->work;
    const mart_backend *be = m->be;
    assert(m->trainable && m->grads);
    assert(w->saved && "model_backward needs a preceding model_forward(for_backward=true)");
    const model_config *c = &m->cfg;
    const int64_t T = w->n_tokens, V = c->vocab_size, d = c->hidden_size, hd = c->head_dim,
                  qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, ldqkv = qd + 2 * kvd,
                  f = c->intermediate_size;
    const int32_t L = c->n_layers, S = w->n_seqs;
    w->saved = false; /* the log-softmax buffer is overwritten below */
    if (T == 0) return;
    const float *d_logprobs = in_src(be, &w->io_lp, d_logprobs_host, T);
    const float *d_entropy = in_src(be, &w->io_ent, d_entropy_host, T);
    const float *d_values = in_src(be, &w->io_val, d_values_host, T);

    float *dxf = wbuf_get(&w->dxn, (size_t)(T * d));
    float *xf = w->xf.p;
    be->zero(be, dxf, T * d);

    /* LM head: dz overwrites the saved log-softmax, then flows into xf and lm_head. */
    if (d_logprobs || d_entropy) {
        assert(w->has_lsm && "the forward pass asked for no log-probabilities or entropy");
        float *z = w->lsm.p;
        be->logsoftmax_backward(be, z, z, w->ent.p, T, V, w->temperature,
                                w->has_targets ? w->targets : NULL, d_logprobs, d_entropy);
        be->linear_backward(be, dxf, grad_of(m, m->lm_head), NULL, z, xf, m->lm_head, T, V, d,
                            false);
    }
    if (d_values) {
        assert(m->has_value_head);
        be->dot_rows_backward(be, dxf, grad_of(m, m->value_head), d_values, xf, m->value_head, T,
                              d);
    }

    float *res = w->res.p;
    float *dres = wbuf_get(&w->dres, (size_t)(T * d));
    be->zero(be, dres, T * d);
    be->rmsnorm_backward(be, dres, grad_of(m, m->final_norm), dxf, res + (int64_t)(2 * L) * T * d,
                          m->final_norm, w->rstdf.p, T, d);

    float *dxn = wbuf_get(&w->dxn, (size_t)(T * d)); /* dxf is dead from here on */
    float *dqkv = wbuf_get(&w->dqkv, (size_t)(T * ldqkv));
    float *datt = wbuf_get(&w->datt, (size_t)(T * qd));
    float *dgu = wbuf_get(&w->dgu, (size_t)(T * 2 * f));
    float *dhid = wbuf_get(&w->dhid, (size_t)(T * f));
    int64_t p_total = 0;
    for (int32_t i = 0; i < S; i++) {
        int64_t n = w->offsets[i + 1] - w->offsets[i];
        p_total += (int64_t)c->n_heads * n * n;
    }

    for (int32_t l = L - 1; l >= 0; l--) {
        const model_layer *ly = &m->layers[l];
        const float *x_in = res + (2 * l) * T * d, *x_mid = res + (2 * l + 1) * T * d;
        const float *a1 = w->xn1.p + l * T * d, *q = w->qkv.p + l * T * ldqkv;
        const float *o = w->att.p + l * T * qd, *a2 = w->xn2.p + l * T * d;
        const float *g = w->gu.p + l * T * 2 * f, *h = w->hid.p + l * T * f;

        /* MLP block: x_out = x_mid + (silu(g) * u) Wdown^T, [g u] = rmsnorm(x_mid) Wgu^T. */
        be->linear_backward(be, dhid, grad_of(m, ly->w_down), NULL, dres, h, ly->w_down, T, d, f,
                            false);
        be->swiglu_backward(be, dgu, dhid, g, T, f);
        be->linear_backward(be, dxn, grad_of(m, ly->w_gate), NULL, dgu, a2, ly->w_gate, T, 2 * f,
                            d, false);
        be->rmsnorm_backward(be, dres, grad_of(m, ly->mlp_norm), dxn, x_mid, ly->mlp_norm,
                             w->rstd2.p + l * T, T, d);

        /* Attention block: x_mid = x_in + attn(q, k, v) Wo^T. */
        be->linear_backward(be, datt, grad_of(m, ly->wo), NULL, dres, o, ly->wo, T, d, qd, false);
        float *pp = w->probs.p + l * p_total;
        for (int32_t i = 0; i < S; i++) {
            mart_attn_seq *sq = &w->seqs[i];
            int64_t r0 = w->offsets[i];
            int32_t n = w->offsets[i + 1] - w->offsets[i];
            sq->q_row = r0;
            sq->n_q = sq->n_k = n;
            sq->k = q + r0 * ldqkv + qd;
            sq->v = q + r0 * ldqkv + qd + kvd;
            sq->dk = dqkv + r0 * ldqkv + qd;
            sq->dv = dqkv + r0 * ldqkv + qd + kvd;
            sq->probs = pp;
            pp += (int64_t)c->n_heads * n * n;
        }
        be->attention_backward(be, dqkv, datt, q, ldqkv, ldqkv, w->seqs, S, c->n_heads,
                               c->n_kv_heads, (int32_t)hd);
        be->rope(be, dqkv, ldqkv, T, c->n_heads + c->n_kv_heads, (int32_t)hd, w->pos,
                 w->rope_cos.p, w->rope_sin.p, true);
        be->linear_backward(be, dxn, grad_of(m, ly->wq), ly->bq ? grad_of(m, ly->bq) : NULL,
                            dqkv, a1, ly->wq, T, ldqkv, d, false);
        be->rmsnorm_backward(be, dres, grad_of(m, ly->attn_norm), dxn, x_in, ly->attn_norm,
                             w->rstd1.p + l * T, T, d);
    }

    be->embed_backward(be, grad_of(m, m->embed), dres, w->tokens, T, d);
}
