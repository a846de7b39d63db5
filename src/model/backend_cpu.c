/* backend_cpu: the CPU backend's operation table (see mart/backend.h) over the kernels of
 * kern_cpu.c and kern_gemv.c. Buffers are host memory. */
#include "mart/backend.h"
#include "mart/core.h"
#include "model/kern.h"
#include "model/kern_gemv.h"

#include <assert.h>
#include <string.h>

/* What distinguishes the two CPU tables. */
typedef struct {
    bool small_m; /* the decoding kernels of kern_gemv.h may take few-row products */
} cpu_ctx;

static float *cpu_alloc(const mart_backend *be, int64_t n) {
    (void)be;
    assert(n >= 0);
    return mart_aligned_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
}

static void cpu_free(const mart_backend *be, void *p) {
    (void)be;
    mart_aligned_free(p);
}

static void cpu_upload(const mart_backend *be, float *dst, const float *host, int64_t n) {
    (void)be;
    if (n > 0 && dst != host) memcpy(dst, host, (size_t)n * sizeof(float));
}

static void cpu_zero(const mart_backend *be, float *p, int64_t n) {
    (void)be;
    if (n > 0) memset(p, 0, (size_t)n * sizeof(float));
}

static uint16_t *cpu_bf16_copy(const mart_backend *be, const float *w, int64_t n) {
    (void)be;
    return kern_bf16_copy(w, n);
}

static bool cpu_bf16_products_supported(const mart_backend *be) {
    (void)be;
    return kern_bf16_products_supported();
}

static void cpu_linear(const mart_backend *be, float *y, const float *x, const float *w,
                       const uint16_t *w16, const float *b, int64_t M, int64_t N, int64_t K,
                       bool accumulate, mart_products products) {
    const cpu_ctx *c = be->ctx;
    assert(M >= 0 && N >= 0 && K >= 0 && (M == 0 || (y && x && w)));
    kern_linear(y, x, w, w16, b, M, N, K, accumulate, products, c->small_m);
}

static void cpu_linear_backward(const mart_backend *be, float *dx, float *dw, float *db,
                                const float *dy, const float *x, const float *w, int64_t M,
                                int64_t N, int64_t K, bool dx_accumulate) {
    (void)be;
    assert(M >= 0 && N >= 0 && K >= 0 && (M == 0 || (dy && x && w)));
    kern_linear_backward(dx, dw, db, dy, x, w, M, N, K, dx_accumulate);
}

static void cpu_rmsnorm_forward(const mart_backend *be, float *y, float *rstd, const float *x,
                                const float *w, int64_t M, int64_t d, float eps) {
    (void)be;
    kern_rmsnorm_forward(y, rstd, x, w, M, d, eps);
}

static void cpu_rmsnorm_backward(const mart_backend *be, float *dx, float *dw, const float *dy,
                                 const float *x, const float *w, const float *rstd, int64_t M,
                                 int64_t d) {
    (void)be;
    kern_rmsnorm_backward(dx, dw, dy, x, w, rstd, M, d);
}

static void cpu_rope_table(const mart_backend *be, float *cos_t, float *sin_t, int64_t n_pos,
                           int32_t hd, double theta) {
    (void)be;
    kern_rope_table(cos_t, sin_t, n_pos, hd, theta);
}

static void cpu_rope(const mart_backend *be, float *x, int64_t ld, int64_t M, int32_t n_heads,
                     int32_t hd, const int32_t *pos, const float *cos_t, const float *sin_t,
                     bool inverse) {
    (void)be;
    if (inverse)
        kern_rope_backward(x, ld, M, n_heads, hd, pos, cos_t, sin_t);
    else
        kern_rope_forward(x, ld, M, n_heads, hd, pos, cos_t, sin_t);
}

static void cpu_attention_forward(const mart_backend *be, float *out, const float *q,
                                  int64_t ld_q, int64_t ld_kv, const mart_attn_seq *seqs,
                                  int32_t n_seqs, int32_t n_heads, int32_t n_kv, int32_t hd) {
    (void)be;
    assert(n_kv > 0 && n_heads % n_kv == 0 && hd > 0 && ld_q >= (int64_t)(n_heads + 2 * n_kv) * hd);
    for (int32_t i = 0; i < n_seqs; i++)
        assert(seqs[i].n_q >= 0 && seqs[i].n_k >= seqs[i].n_q);
    kern_attention_forward(out, q, ld_q, ld_kv, seqs, n_seqs, n_heads, n_kv, hd);
}

static void cpu_attention_backward(const mart_backend *be, float *dq, const float *dout,
                                   const float *q, int64_t ld_q, int64_t ld_kv,
                                   const mart_attn_seq *seqs, int32_t n_seqs, int32_t n_heads,
                                   int32_t n_kv, int32_t hd) {
    (void)be;
    kern_attention_backward(dq, dout, q, ld_q, ld_kv, seqs, n_seqs, n_heads, n_kv, hd);
}

static void cpu_swiglu_forward(const mart_backend *be, float *h, const float *gu, int64_t M,
                               int64_t f) {
    (void)be;
    kern_swiglu_forward(h, gu, M, f);
}

static void cpu_swiglu_backward(const mart_backend *be, float *dgu, const float *dh,
                                const float *gu, int64_t M, int64_t f) {
    (void)be;
    kern_swiglu_backward(dgu, dh, gu, M, f);
}

static void cpu_logsoftmax_forward(const mart_backend *be, float *lsm, const float *z, int64_t M,
                                   int64_t V, float temp, const int32_t *targets, float *lp,
                                   float *ent) {
    (void)be;
    kern_logsoftmax_forward(lsm, z, M, V, temp, targets, lp, ent);
}

static void cpu_logsoftmax_backward(const mart_backend *be, float *dz, const float *lsm,
                                    const float *ent, int64_t M, int64_t V, float temp,
                                    const int32_t *targets, const float *dlp, const float *dent) {
    (void)be;
    assert(M >= 0 && V > 0 && !(dlp && !targets));
    kern_logsoftmax_backward(dz, lsm, ent, M, V, temp, targets, dlp, dent);
}

static void cpu_embed_forward(const mart_backend *be, float *out, const float *table,
                              const int32_t *tokens, int64_t n, int64_t d) {
    (void)be;
    assert(n >= 0 && d > 0);
    kern_embed_forward(out, table, tokens, n, d);
}

static void cpu_embed_backward(const mart_backend *be, float *dtable, const float *dout,
                               const int32_t *tokens, int64_t n, int64_t d) {
    (void)be;
    kern_embed_backward(dtable, dout, tokens, n, d);
}

static void cpu_copy_rows(const mart_backend *be, float *dst, int64_t ld_dst, const float *src,
                          int64_t ld_src, const int64_t *rows, int64_t n, int64_t width) {
    (void)be;
    kern_copy_rows(dst, ld_dst, src, ld_src, rows, n, width);
}

static void cpu_dot_rows(const mart_backend *be, float *out, const float *x, const float *v,
                         int64_t M, int64_t d) {
    (void)be;
    kern_dot_rows(out, x, v, M, d);
}

static void cpu_dot_rows_backward(const mart_backend *be, float *dx, float *dv, const float *dout,
                                  const float *x, const float *v, int64_t M, int64_t d) {
    (void)be;
    kern_dot_rows_backward(dx, dv, dout, x, v, M, d);
}

static void cpu_adamw(const mart_backend *be, float *params, const float *grads, float *m,
                      float *v, int64_t n, int64_t step, const adamw_config *c) {
    (void)be;
    assert(n >= 0 && step >= 1 && c->beta1 >= 0.0f && c->beta1 < 1.0f && c->beta2 >= 0.0f &&
           c->beta2 < 1.0f);
    kern_adamw(params, grads, m, v, n, step, c);
}

static double cpu_sumsq(const mart_backend *be, const float *x, int64_t n) {
    (void)be;
    return kern_sumsq(x, n);
}

static void cpu_scale(const mart_backend *be, float *x, int64_t n, float s) {
    (void)be;
    kern_scale(x, n, s);
}

static cpu_ctx ctx_default = {.small_m = true}, ctx_sgemm_only = {.small_m = false};

#define CPU_TABLE(ctx_ptr)                                                                         \
    {                                                                                              \
        .name = "cpu", .ctx = (ctx_ptr), .host_memory = true, .alloc = cpu_alloc,                  \
        .free = cpu_free,                                                                          \
        .upload = cpu_upload, .download = cpu_upload, .zero = cpu_zero, .copy = cpu_upload,        \
        .bf16_copy = cpu_bf16_copy, .bf16_products_supported = cpu_bf16_products_supported,        \
        .linear = cpu_linear, .linear_backward = cpu_linear_backward,                              \
        .rmsnorm_forward = cpu_rmsnorm_forward, .rmsnorm_backward = cpu_rmsnorm_backward,          \
        .rope_table = cpu_rope_table, .rope = cpu_rope,                                            \
        .attention_forward = cpu_attention_forward,                                                \
        .attention_backward = cpu_attention_backward, .swiglu_forward = cpu_swiglu_forward,        \
        .swiglu_backward = cpu_swiglu_backward, .logsoftmax_forward = cpu_logsoftmax_forward,      \
        .logsoftmax_backward = cpu_logsoftmax_backward, .embed_forward = cpu_embed_forward,        \
        .embed_backward = cpu_embed_backward, .copy_rows = cpu_copy_rows,                          \
        .dot_rows = cpu_dot_rows, .dot_rows_backward = cpu_dot_rows_backward,                      \
        .adamw = cpu_adamw, .sumsq = cpu_sumsq, .scale = cpu_scale,                                \
    }

static const mart_backend cpu_default = CPU_TABLE(&ctx_default),
                          cpu_sgemm_only = CPU_TABLE(&ctx_sgemm_only);

const mart_backend *mart_backend_cpu(void) {
    return &cpu_default;
}

const mart_backend *mart_backend_cpu_sgemm_only(void) {
    return &cpu_sgemm_only;
}
