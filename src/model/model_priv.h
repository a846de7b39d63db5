/* model_priv: what the files of src/model share and nobody else sees: the activation
 * buffers (allocated once, grown on demand, reused across calls because page faults are
 * expensive) and the state a forward pass keeps for the backward pass. */
#ifndef MART_MODEL_PRIV_H
#define MART_MODEL_PRIV_H

#include "mart/model.h"
#include "model/kern.h"

#include <assert.h>

/* A float buffer of a backend that only ever grows. */
typedef struct {
    const mart_backend *be; /* not owned */
    float *p;
    size_t cap;
} wbuf;

float *wbuf_get(wbuf *b, size_t n);

/* The parameter table of a model of shape c (params.c): fills t[] (when non-NULL) with
 * every tensor's name, shape and offset in the fixed order and returns the number of
 * tensors; *total gets the number of parameters. The one place the layout is written. */
int32_t model_layout(const model_config *c, bool value_head, model_tensor *t, int64_t *total);

struct model_work {
    /* Activations. With for_backward each has one copy per layer; otherwise one shared. */
    wbuf res;   /* (2 L + 1, T, d) residual stream: layer input, after attention, final */
    wbuf xn1;   /* (L, T, d) input_layernorm output */
    wbuf rstd1; /* (L, T) */
    wbuf qkv;   /* (L, T, qd + 2 kvd) q and k after rotary, v */
    wbuf att;   /* (L, T, qd) attention output before o_proj */
    wbuf probs; /* (L, sum_i n_heads len_i^2) attention probabilities */
    wbuf xn2;   /* (L, T, d) post_attention_layernorm output */
    wbuf rstd2; /* (L, T) */
    wbuf gu;    /* (L, T, 2 ffn) gate and up projections */
    wbuf hid;   /* (L, T, ffn) silu(gate) * up */
    wbuf xf;    /* (rows, d) final norm output */
    wbuf rstdf; /* (rows) */
    wbuf lsm;   /* (T, vocab) log-softmax kept for backward, or a row chunk of logits */
    wbuf ent;   /* (T) entropies kept for backward */
    wbuf rope_cos, rope_sin; /* (rope_n, hd/2) for positions 0 .. rope_n-1, grown on demand */
    int64_t rope_n;
    wbuf gather; /* (n_seqs, d) last rows for last_only */
    /* Backward scratch. */
    wbuf dres, dxn, dqkv, datt, dgu, dhid;
    /* The caller's host arrays (model_out outputs, model_backward weights) staged in backend
     * buffers, for a backend whose memory is not the host's: (rows) each. */
    wbuf io_lp, io_ent, io_val;
    /* Integer scratch: positions (T), targets kept for backward (T), tokens (T), offsets. */
    int32_t *pos, *tokens, *targets, *offsets;
    int64_t *last_rows; /* (n_seqs) last row of each sequence, for last_only */
    size_t icap, ocap;
    mart_attn_seq *seqs;
    size_t scap;
    /* What the last for_backward forward left. */
    bool saved;
    int64_t n_tokens;
    int32_t n_seqs;
    float temperature;
    bool has_targets;
    bool has_lsm; /* lsm/ent hold the whole (T, vocab) log-softmax (not a value-only pass) */
};

struct model_work *model_work_create(const mart_backend *be);
void model_work_free(struct model_work *w);

#endif
