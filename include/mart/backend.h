/* backend: the compute seam. A backend is a table of operations over buffers it owns; the
 * model, the generation engine and the trainers call the table and never touch a backend's
 * memory except through it. The CPU backend (mart_backend_cpu) is the reference every other
 * backend is tested against, operation by operation, forward and backward.
 *
 * Conventions for every operation: matrices are row-major float32; shapes are given as
 * (rows, cols); pointers are buffers of the same backend (from its alloc), except where an
 * argument is said to be host memory: integer inputs (token ids, positions, targets, row
 * indices) and the attention's sequence table are always host memory (small; a device
 * backend copies them). Backward operations ACCUMULATE into weight gradients
 * (dw += ...) and write or accumulate activation gradients as stated. Every reduction runs
 * in an order fixed by the shapes alone: the results do not depend on the number of threads
 * or on scheduling (they may depend on the instruction set, see docs/PERFORMANCE.md). */
#ifndef MART_BACKEND_H
#define MART_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a matrix product multiplies, chosen per call (never a process-wide switch). */
typedef enum {
    MART_PRODUCTS_EXACT = 0, /* float32 products and sums */
    MART_PRODUCTS_BF16 = 1,  /* x rounded to bfloat16 (nearest even) and multiplied with the
                                weights' BF16 copy by the CPU's BF16 dot products, float32 sums;
                                only where the weight has a BF16 copy and the CPU has them
                                (AVX512_BF16), exact products otherwise */
} mart_products;

/* AdamW with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} adamw_config;

/* One sequence of an attention call. Query row i of the sequence sits at position
 * n_k - n_q + i and attends keys 0 .. n_k - n_q + i (causal). */
typedef struct {
    int64_t q_row;      /* first row of the sequence in q / out / dq */
    int32_t n_q, n_k;   /* query rows, key rows (n_k >= n_q) */
    const float *k, *v; /* (n_k, ld_kv): key/value row 0 of this sequence, kv head 0 */
    float *dk, *dv;     /* (n_k, ld_kv) gradients (backward only; overwritten) */
    float *probs;       /* (n_heads, n_q, n_k) softmax probabilities kept for backward, or NULL */
} mart_attn_seq;

typedef struct mart_backend mart_backend;

struct mart_backend {
    const char *name; /* "cpu", "cuda" */
    void *ctx;        /* the backend's own state (options, streams, handles) */
    bool host_memory; /* buffers are host memory that host code may read and write directly
                         (the CPU backend); otherwise only through upload/download */

    /* ---- buffers ---- */

    /* n floats, 64-byte aligned, contents undefined; aborts when out of memory. */
    float *(*alloc)(const mart_backend *be, int64_t n);
    void (*free)(const mart_backend *be, void *p);
    /* Host memory <-> backend buffers, n floats. */
    void (*upload)(const mart_backend *be, float *dst, const float *host, int64_t n);
    void (*download)(const mart_backend *be, float *host, const float *src, int64_t n);
    void (*zero)(const mart_backend *be, float *p, int64_t n);
    void (*copy)(const mart_backend *be, float *dst, const float *src, int64_t n);
    /* A BF16 copy of the weights w (n) for MART_PRODUCTS_BF16 and faster decoding, when every
     * value is exactly a bfloat16 (a BF16 checkpoint not yet trained) and the backend has a
     * kernel that reads it; NULL otherwise. The copy is stale once w changes. */
    uint16_t *(*bf16_copy)(const mart_backend *be, const float *w, int64_t n);
    /* Whether MART_PRODUCTS_BF16 multiplies in BF16 on this backend (else it is exact). */
    bool (*bf16_products_supported)(const mart_backend *be);

    /* ---- matrix products ---- */

    /* y (M, N) = x (M, K) · w (N, K)^T + b (N) (b may be NULL; with accumulate, y += instead
     * of y =). w16: w's BF16 copy or NULL; products: see mart_products. */
    void (*linear)(const mart_backend *be, float *y, const float *x, const float *w,
                   const uint16_t *w16, const float *b, int64_t M, int64_t N, int64_t K,
                   bool accumulate, mart_products products);
    /* Backward of linear (exact products) given dy (M, N): dx (M, K) = dy · w (or += with
     * dx_accumulate; dx may be NULL), dw (N, K) += dy^T · x, db (N) += column sums of dy (db
     * may be NULL). */
    void (*linear_backward)(const mart_backend *be, float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w, int64_t M,
                            int64_t N, int64_t K, bool dx_accumulate);

    /* ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w ---- */

    /* x, y: (M, d); rstd (M) receives 1/sqrt(mean(x^2)+eps) (may be NULL). */
    void (*rmsnorm_forward)(const mart_backend *be, float *y, float *rstd, const float *x,
                            const float *w, int64_t M, int64_t d, float eps);
    /* dx (M, d) += gradient w.r.t. x; dw (d) += gradient w.r.t. w. */
    void (*rmsnorm_backward)(const mart_backend *be, float *dx, float *dw, const float *dy,
                             const float *x, const float *w, const float *rstd, int64_t M,
                             int64_t d);

    /* ---- rotary position embedding (Hugging Face rotate-half layout) ---- */

    /* cos, sin (n_pos, hd/2) for positions 0 .. n_pos-1, as transformers computes them in
     * float32: inv_freq[i] = 1 / theta^(2i/hd), angle = pos * inv_freq[i]. */
    void (*rope_table)(const mart_backend *be, float *cos_t, float *sin_t, int64_t n_pos,
                       int32_t hd, double theta);
    /* Rotates in place n_heads heads of width hd at the start of each of M rows of x (row
     * stride ld), row t at position pos[t]. With
     * inverse, the transpose rotation (the backward pass). */
    void (*rope)(const mart_backend *be, float *x, int64_t ld, int64_t M, int32_t n_heads,
                 int32_t hd, const int32_t *pos, const float *cos_t, const float *sin_t,
                 bool inverse);

    /* ---- causal grouped-query attention over packed sequences ---- */

    /* out (rows, n_heads*hd) = softmax(q k^T / sqrt(hd)) v per sequence and head; head h
     * reads kv head h / (n_heads / n_kv). q has row stride ld_q, out is dense. */
    void (*attention_forward)(const mart_backend *be, float *out, const float *q, int64_t ld_q,
                              int64_t ld_kv, const mart_attn_seq *seqs, int32_t n_seqs,
                              int32_t n_heads, int32_t n_kv, int32_t hd);
    /* Backward from dout using the saved probs: dq (row stride ld_q) and each sequence's
     * dk/dv (row stride ld_kv) are written. */
    void (*attention_backward)(const mart_backend *be, float *dq, const float *dout,
                               const float *q, int64_t ld_q, int64_t ld_kv,
                               const mart_attn_seq *seqs, int32_t n_seqs, int32_t n_heads,
                               int32_t n_kv, int32_t hd);

    /* ---- SwiGLU: h = silu(gate) * up ---- */

    /* gu (M, 2f): gate in columns [0, f), up in [f, 2f). h (M, f). */
    void (*swiglu_forward)(const mart_backend *be, float *h, const float *gu, int64_t M,
                           int64_t f);
    /* dgu (M, 2f) = gradient w.r.t. gu given dh (M, f) (overwritten). */
    void (*swiglu_backward)(const mart_backend *be, float *dgu, const float *dh, const float *gu,
                            int64_t M, int64_t f);

    /* ---- log-softmax, log-probabilities, entropy ---- */

    /* Per row of z (M, V): lsm = log_softmax(z / temp) (may alias z); lp[r] =
     * lsm[r, targets[r]] (0 when targets is NULL or targets[r] < 0); ent[r] = entropy. lp,
     * ent may be NULL. */
    void (*logsoftmax_forward)(const mart_backend *be, float *lsm, const float *z, int64_t M,
                               int64_t V, float temp, const int32_t *targets, float *lp,
                               float *ent);
    /* dz (M, V) = d(sum_r dlp[r] lp[r] + dent[r] ent[r]) / dz from the saved lsm and ent (dz
     * may alias lsm; dlp, dent may be NULL). */
    void (*logsoftmax_backward)(const mart_backend *be, float *dz, const float *lsm,
                                const float *ent, int64_t M, int64_t V, float temp,
                                const int32_t *targets, const float *dlp, const float *dent);

    /* ---- rows: embedding, KV append, gathers, the value head ---- */

    /* out (n, d): row i = table[tokens[i]]. */
    void (*embed_forward)(const mart_backend *be, float *out, const float *table,
                          const int32_t *tokens, int64_t n, int64_t d);
    /* dtable[tokens[i]] += dout[i] for every i (repeated tokens add up, in order of i). */
    void (*embed_backward)(const mart_backend *be, float *dtable, const float *dout,
                           const int32_t *tokens, int64_t n, int64_t d);
    /* dst row i (stride ld_dst) = src row rows[i] (stride ld_src), width floats each; rows
     * NULL means rows[i] = i. Used for KV-cache appends and last-row gathers. */
    void (*copy_rows)(const mart_backend *be, float *dst, int64_t ld_dst, const float *src,
                      int64_t ld_src, const int64_t *rows, int64_t n, int64_t width);
    /* out (M) = x (M, d) · v (d): the value head. */
    void (*dot_rows)(const mart_backend *be, float *out, const float *x, const float *v,
                     int64_t M, int64_t d);
    /* Backward of dot_rows given dout (M): dx (M, d) += dout ⊗ v, dv (d) += x^T dout. */
    void (*dot_rows_backward)(const mart_backend *be, float *dx, float *dv, const float *dout,
                              const float *x, const float *v, int64_t M, int64_t d);

    /* ---- optimiser ---- */

    /* One AdamW update of params (n) from grads, moments m, v; step is the 1-based count of
     * updates including this one (bias corrections). */
    void (*adamw)(const mart_backend *be, float *params, const float *grads, float *m, float *v,
                  int64_t n, int64_t step, const adamw_config *c);
    /* Sum of squares of x (n) in double, in a fixed order. */
    double (*sumsq)(const mart_backend *be, const float *x, int64_t n);
    /* x (n) *= s. */
    void (*scale)(const mart_backend *be, float *x, int64_t n, float s);

};

/* The CPU backend: OpenMP threads and OpenBLAS, each sgemm call on one thread (mart splits
 * the work itself in blocks fixed by the shapes, so results do not depend on the thread
 * count). A process-wide immutable table; never freed. */
const mart_backend *mart_backend_cpu(void);
/* A CPU backend without the small-M (decoding) matrix kernels: every product goes to sgemm.
 * For benchmarks that compare the two; same results up to float rounding. Its buffers are
 * mart_backend_cpu()'s: a model may switch between the two tables. */
const mart_backend *mart_backend_cpu_sgemm_only(void);
/* The CPU backend behaving as a device backend, for tests of the seam: host_memory is false,
 * so every host access of the model, checkpoints and trainers must go through
 * upload/download, and every operation checks that each buffer argument lies inside a live
 * allocation of this backend, stopping the process with a message naming the operation and
 * the argument when one does not (host memory handed to an operation). Results are the CPU
 * backend's. */
const mart_backend *mart_backend_cpu_staged(void);

#endif
