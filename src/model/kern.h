/* kern: the CPU backend's kernels (src/model/backend_cpu.c puts them in the mart_backend
 * table; nothing else calls them). Contracts are those of the table's operations in
 * mart/backend.h. They thread with OpenMP and call OpenBLAS, which is kept single-threaded:
 * work is split in blocks fixed by the shapes alone, so no result depends on the number of
 * threads. */
#ifndef MART_MODEL_KERN_H
#define MART_MODEL_KERN_H

#include "mart/backend.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- matrix products ---- */

/* y (M, N) = x (M, K) · w (N, K)^T + b (N) (b may be NULL). With accumulate, y += instead
 * of y =. w16: w's BF16 copy (kern_bf16_copy) or NULL; products as mart_products; small_m:
 * whether the decoding kernels (kern_gemv.h) may take few-row products (else sgemm only).
 * Every matrix product of the forward pass goes through here. */
void kern_linear(float *y, const float *x, const float *w, const uint16_t *w16, const float *b,
                 int64_t M, int64_t N, int64_t K, bool accumulate, mart_products products,
                 bool small_m);
/* Backward of kern_linear given dy (M, N): dx (M, K) = dy · w (or += with dx_accumulate;
 * dx may be NULL), dw (N, K) += dy^T · x, db (N) += column sums of dy (db may be NULL). */
void kern_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int64_t M, int64_t N, int64_t K, bool dx_accumulate);

/* ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w ---- */

/* x, y: (M, d); rstd (M) receives 1/sqrt(mean(x^2)+eps) (kept for backward; may be NULL). */
void kern_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t M,
                          int64_t d, float eps);
/* dx (M, d) += gradient w.r.t. x; dw (d) += gradient w.r.t. w. */
void kern_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           const float *rstd, int64_t M, int64_t d);

/* ---- rotary position embedding (Hugging Face rotate-half layout) ---- */

/* cos, sin (n_pos, hd/2) for positions 0 .. n_pos-1, as transformers computes them in
 * float32: inv_freq[i] = 1 / theta^(2i/hd), angle = pos * inv_freq[i]. */
void kern_rope_table(float *cos_t, float *sin_t, int64_t n_pos, int32_t hd, double theta);
/* Rotates, in place, n_heads heads of width hd at the start of each of M rows of x (row
 * stride ld), row t at position pos[t]: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) with x1 the
 * first half of the head, x2 the second. */
void kern_rope_forward(float *x, int64_t ld, int64_t M, int32_t n_heads, int32_t hd,
                       const int32_t *pos, const float *cos_t, const float *sin_t);
/* The transpose rotation, in place on dx: the gradient w.r.t. the un-rotated input. */
void kern_rope_backward(float *dx, int64_t ld, int64_t M, int32_t n_heads, int32_t hd,
                        const int32_t *pos, const float *cos_t, const float *sin_t);

/* ---- causal grouped-query attention over packed sequences ---- */

/* out (rows, n_heads*hd) = softmax(q k^T / sqrt(hd)) v per sequence and head; head h reads
 * kv head h / (n_heads / n_kv). q has row stride ld_q, out is dense. */
void kern_attention_forward(float *out, const float *q, int64_t ld_q, int64_t ld_kv,
                            const mart_attn_seq *seqs, int32_t n_seqs, int32_t n_heads,
                            int32_t n_kv, int32_t hd);
/* Backward from dout (rows, n_heads*hd) using the saved probs: dq (row stride ld_q) is
 * written, each sequence's dk/dv (row stride ld_kv) are written. */
void kern_attention_backward(float *dq, const float *dout, const float *q, int64_t ld_q,
                             int64_t ld_kv, const mart_attn_seq *seqs, int32_t n_seqs,
                             int32_t n_heads, int32_t n_kv, int32_t hd);

/* ---- SwiGLU: h = silu(gate) * up ---- */

/* gu (M, 2f): gate in columns [0, f), up in [f, 2f). h (M, f). */
void kern_swiglu_forward(float *h, const float *gu, int64_t M, int64_t f);
/* dgu (M, 2f) = gradient w.r.t. gu given dh (M, f) (overwritten). */
void kern_swiglu_backward(float *dgu, const float *dh, const float *gu, int64_t M, int64_t f);

/* ---- log-softmax, log-probabilities, entropy ---- */

/* Per row of z (M, V): lsm = log_softmax(z / temp) (lsm may alias z); lp[r] =
 * lsm[r, targets[r]] (0 when targets is NULL or targets[r] < 0); ent[r] = entropy. lp, ent
 * may be NULL. */
void kern_logsoftmax_forward(float *lsm, const float *z, int64_t M, int64_t V, float temp,
                             const int32_t *targets, float *lp, float *ent);
/* dz (M, V) = d(sum_r dlp[r] lp[r] + dent[r] ent[r]) / dz from the saved lsm and ent (dz may
 * alias lsm; dlp, dent may be NULL). */
void kern_logsoftmax_backward(float *dz, const float *lsm, const float *ent, int64_t M, int64_t V,
                              float temp, const int32_t *targets, const float *dlp,
                              const float *dent);

/* ---- rows, optimiser, reductions (see mart/backend.h) ---- */

void kern_embed_forward(float *out, const float *table, const int32_t *tokens, int64_t n,
                        int64_t d);
void kern_embed_backward(float *dtable, const float *dout, const int32_t *tokens, int64_t n,
                         int64_t d);
void kern_copy_rows(float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                    const int64_t *rows, int64_t n, int64_t width);
void kern_dot_rows(float *out, const float *x, const float *v, int64_t M, int64_t d);
void kern_dot_rows_backward(float *dx, float *dv, const float *dout, const float *x,
                            const float *v, int64_t M, int64_t d);
void kern_adamw(float *params, const float *grads, float *m, float *v, int64_t n, int64_t step,
                const adamw_config *c);
double kern_sumsq(const float *x, int64_t n);
void kern_scale(float *x, int64_t n, float s);

#endif
