/* backend_staged: the CPU backend behaving as a device backend (see mart_backend_cpu_staged in
 * mart/backend.h). Its buffers are the CPU backend's, but it says they are not host memory and
 * it keeps a table of them: every operation checks that each buffer argument lies inside a
 * live allocation of its own, and stops the process, naming the operation and the argument,
 * when one does not. A model, a generator or a trainer that hands an operation host memory
 * (an output array of the caller, a table of its own) therefore fails under this backend
 * exactly where it would read garbage on a GPU. The results are the CPU backend's. */
#include "mart/backend.h"
#include "mart/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    uintptr_t base;
    size_t bytes;
} staged_block;

/* The live allocations; guarded by lock (buffers may be made from several threads). */
static struct {
    pthread_mutex_t lock;
    staged_block *blocks;
    size_t n, cap;
} g_staged = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void staged_register(const void *p, size_t bytes) {
    if (!p) return;
    pthread_mutex_lock(&g_staged.lock);
    if (g_staged.n == g_staged.cap) {
        g_staged.cap = g_staged.cap ? 2 * g_staged.cap : 64;
        g_staged.blocks = mart_xrealloc(g_staged.blocks, g_staged.cap * sizeof(staged_block));
    }
    g_staged.blocks[g_staged.n++] = (staged_block){(uintptr_t)p, bytes};
    pthread_mutex_unlock(&g_staged.lock);
}

static void staged_unregister(const void *p) {
    if (!p) return;
    pthread_mutex_lock(&g_staged.lock);
    size_t i = 0;
    while (i < g_staged.n && g_staged.blocks[i].base != (uintptr_t)p)
        i++;
    if (i == g_staged.n) {
        pthread_mutex_unlock(&g_staged.lock);
        fprintf(stderr, "staged backend: free of %p, which it did not allocate\n", p);
        abort();
    }
    g_staged.blocks[i] = g_staged.blocks[--g_staged.n];
    pthread_mutex_unlock(&g_staged.lock);
}

/* Stops the process unless [p, p + bytes) lies inside one live allocation (NULL passes). */
static void need(const char *op, const char *arg, const void *p, int64_t bytes) {
    if (!p) return;
    uintptr_t a = (uintptr_t)p, e = a + (uintptr_t)(bytes > 0 ? bytes : 0);
    bool ok = false;
    pthread_mutex_lock(&g_staged.lock);
    for (size_t i = 0; i < g_staged.n && !ok; i++)
        ok = a >= g_staged.blocks[i].base && e <= g_staged.blocks[i].base + g_staged.blocks[i].bytes;
    pthread_mutex_unlock(&g_staged.lock);
    if (!ok) {
        fprintf(stderr,
                "staged backend: %s: argument %s (%p, %lld bytes) is not a buffer of this "
                "backend (host memory handed to a backend operation)\n",
                op, arg, p, (long long)bytes);
        abort();
    }
}

#define F(n) ((int64_t)(n) * (int64_t)sizeof(float))
/* Bytes spanned by rows rows of width floats at row stride ld. */
#define STRIDED(rows, ld, width) ((rows) > 0 ? F(((int64_t)(rows) - 1) * (ld) + (width)) : 0)

/* The wrapped table: the CPU backend. */
static const mart_backend *cpu(void) {
    return mart_backend_cpu();
}

static float *st_alloc(const mart_backend *be, int64_t n) {
    (void)be;
    float *p = cpu()->alloc(cpu(), n);
    staged_register(p, (size_t)F(n > 0 ? n : 1));
    return p;
}

static void st_free(const mart_backend *be, void *p) {
    (void)be;
    staged_unregister(p);
    cpu()->free(cpu(), p);
}

static void st_upload(const mart_backend *be, float *dst, const float *host, int64_t n) {
    (void)be;
    need("upload", "dst", dst, F(n));
    cpu()->upload(cpu(), dst, host, n);
}

static void st_download(const mart_backend *be, float *host, const float *src, int64_t n) {
    (void)be;
    need("download", "src", src, F(n));
    cpu()->download(cpu(), host, src, n);
}

static void st_zero(const mart_backend *be, float *p, int64_t n) {
    (void)be;
    need("zero", "p", p, F(n));
    cpu()->zero(cpu(), p, n);
}

static void st_copy(const mart_backend *be, float *dst, const float *src, int64_t n) {
    (void)be;
    need("copy", "dst", dst, F(n));
    need("copy", "src", src, F(n));
    cpu()->copy(cpu(), dst, src, n);
}

static uint16_t *st_bf16_copy(const mart_backend *be, const float *w, int64_t n) {
    (void)be;
    need("bf16_copy", "w", w, F(n));
    uint16_t *p = cpu()->bf16_copy(cpu(), w, n);
    staged_register(p, (size_t)n * sizeof(uint16_t));
    return p;
}

static bool st_bf16_products_supported(const mart_backend *be) {
    (void)be;
    return cpu()->bf16_products_supported(cpu());
}

static void st_linear(const mart_backend *be, float *y, const float *x, const float *w,
                      const uint16_t *w16, const float *b, int64_t M, int64_t N, int64_t K,
                      bool accumulate, mart_products products) {
    (void)be;
    need("linear", "y", y, F(M * N));
    need("linear", "x", x, F(M * K));
    need("linear", "w", w, F(N * K));
    need("linear", "w16", w16, N * K * (int64_t)sizeof(uint16_t));
    need("linear", "b", b, F(N));
    cpu()->linear(cpu(), y, x, w, w16, b, M, N, K, accumulate, products);
}

static void st_linear_backward(const mart_backend *be, float *dx, float *dw, float *db,
                               const float *dy, const float *x, const float *w, int64_t M,
                               int64_t N, int64_t K, bool dx_accumulate) {
    (void)be;
    need("linear_backward", "dx", dx, F(M * K));
    need("linear_backward", "dw", dw, F(N * K));
    need("linear_backward", "db", db, F(N));
    need("linear_backward", "dy", dy, F(M * N));
    need("linear_backward", "x", x, F(M * K));
    need("linear_backward", "w", w, F(N * K));
    cpu()->linear_backward(cpu(), dx, dw, db, dy, x, w, M, N, K, dx_accumulate);
}

static void st_rmsnorm_forward(const mart_backend *be, float *y, float *rstd, const float *x,
                               const float *w, int64_t M, int64_t d, float eps) {
    (void)be;
    need("rmsnorm_forward", "y", y, F(M * d));
    need("rmsnorm_forward", "rstd", rstd, F(M));
    need("rmsnorm_forward", "x", x, F(M * d));
    need("rmsnorm_forward", "w", w, F(d));
    cpu()->rmsnorm_forward(cpu(), y, rstd, x, w, M, d, eps);
}

static void st_rmsnorm_backward(const mart_backend *be, float *dx, float *dw, const float *dy,
                                const float *x, const float *w, const float *rstd, int64_t M,
                                int64_t d) {
    (void)be;
    need("rmsnorm_backward", "dx", dx, F(M * d));
    need("rmsnorm_backward", "dw", dw, F(d));
    need("rmsnorm_backward", "dy", dy, F(M * d));
    need("rmsnorm_backward", "x", x, F(M * d));
    need("rmsnorm_backward", "w", w, F(d));
    need("rmsnorm_backward", "rstd", rstd, F(M));
    cpu()->rmsnorm_backward(cpu(), dx, dw, dy, x, w, rstd, M, d);
}

static void st_rope_table(const mart_backend *be, float *cos_t, float *sin_t, int64_t n_pos,
                          int32_t hd, double theta) {
    (void)be;
    need("rope_table", "cos_t", cos_t, F(n_pos * hd / 2));
    need("rope_table", "sin_t", sin_t, F(n_pos * hd / 2));
    cpu()->rope_table(cpu(), cos_t, sin_t, n_pos, hd, theta);
}

static void st_rope(const mart_backend *be, float *x, int64_t ld, int64_t M, int32_t n_heads,
                    int32_t hd, const int32_t *pos, const float *cos_t, const float *sin_t,
                    bool inverse) {
    (void)be;
    need("rope", "x", x, STRIDED(M, ld, (int64_t)n_heads * hd));
    need("rope", "cos_t", cos_t, 0);
    need("rope", "sin_t", sin_t, 0);
    cpu()->rope(cpu(), x, ld, M, n_heads, hd, pos, cos_t, sin_t, inverse);
}

/* The buffers a sequence table points at. */
static void need_seqs(const char *op, const mart_attn_seq *seqs, int32_t n_seqs, int64_t ld_kv,
                      int32_t n_heads, int32_t kv_width) {
    for (int32_t i = 0; i < n_seqs; i++) {
        const mart_attn_seq *s = &seqs[i];
        need(op, "seqs[].k", s->k, STRIDED(s->n_k, ld_kv, kv_width));
        need(op, "seqs[].v", s->v, STRIDED(s->n_k, ld_kv, kv_width));
        need(op, "seqs[].dk", s->dk, STRIDED(s->n_k, ld_kv, kv_width));
        need(op, "seqs[].dv", s->dv, STRIDED(s->n_k, ld_kv, kv_width));
        need(op, "seqs[].probs", s->probs, F((int64_t)n_heads * s->n_q * s->n_k));
    }
}

static int64_t q_rows(const mart_attn_seq *seqs, int32_t n_seqs) {
    int64_t rows = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        if (seqs[i].q_row + seqs[i].n_q > rows) rows = seqs[i].q_row + seqs[i].n_q;
    return rows;
}

static void st_attention_forward(const mart_backend *be, float *out, const float *q, int64_t ld_q,
                                 int64_t ld_kv, const mart_attn_seq *seqs, int32_t n_seqs,
                                 int32_t n_heads, int32_t n_kv, int32_t hd) {
    (void)be;
    int64_t rows = q_rows(seqs, n_seqs);
    need("attention_forward", "out", out, F(rows * n_heads * hd));
    need("attention_forward", "q", q, STRIDED(rows, ld_q, (int64_t)n_heads * hd));
    need_seqs("attention_forward", seqs, n_seqs, ld_kv, n_heads, n_kv * hd);
    cpu()->attention_forward(cpu(), out, q, ld_q, ld_kv, seqs, n_seqs, n_heads, n_kv, hd);
}

static void st_attention_backward(const mart_backend *be, float *dq, const float *dout,
                                  const float *q, int64_t ld_q, int64_t ld_kv,
                                  const mart_attn_seq *seqs, int32_t n_seqs, int32_t n_heads,
                                  int32_t n_kv, int32_t hd) {
    (void)be;
    int64_t rows = q_rows(seqs, n_seqs);
    need("attention_backward", "dq", dq, STRIDED(rows, ld_q, (int64_t)n_heads * hd));
    need("attention_backward", "dout", dout, F(rows * n_heads * hd));
    need("attention_backward", "q", q, STRIDED(rows, ld_q, (int64_t)n_heads * hd));
    need_seqs("attention_backward", seqs, n_seqs, ld_kv, n_heads, n_kv * hd);
    cpu()->attention_backward(cpu(), dq, dout, q, ld_q, ld_kv, seqs, n_seqs, n_heads, n_kv, hd);
}

static void st_swiglu_forward(const mart_backend *be, float *h, const float *gu, int64_t M,
                              int64_t f) {
    (void)be;
    need("swiglu_forward", "h", h, F(M * f));
    need("swiglu_forward", "gu", gu, F(M * 2 * f));
    cpu()->swiglu_forward(cpu(), h, gu, M, f);
}

static void st_swiglu_backward(const mart_backend *be, float *dgu, const float *dh,
                               const float *gu, int64_t M, int64_t f) {
    (void)be;
    need("swiglu_backward", "dgu", dgu, F(M * 2 * f));
    need("swiglu_backward", "dh", dh, F(M * f));
    need("swiglu_backward", "gu", gu, F(M * 2 * f));
    cpu()->swiglu_backward(cpu(), dgu, dh, gu, M, f);
}

static void st_logsoftmax_forward(const mart_backend *be, float *lsm, const float *z, int64_t M,
                                  int64_t V, float temp, const int32_t *targets, float *lp,
                                  float *ent) {
    (void)be;
    need("logsoftmax_forward", "lsm", lsm, F(M * V));
    need("logsoftmax_forward", "z", z, F(M * V));
    need("logsoftmax_forward", "lp", lp, F(M));
    need("logsoftmax_forward", "ent", ent, F(M));
    cpu()->logsoftmax_forward(cpu(), lsm, z, M, V, temp, targets, lp, ent);
}

static void st_logsoftmax_backward(const mart_backend *be, float *dz, const float *lsm,
                                   const float *ent, int64_t M, int64_t V, float temp,
                                   const int32_t *targets, const float *dlp, const float *dent) {
    (void)be;
    need("logsoftmax_backward", "dz", dz, F(M * V));
    need("logsoftmax_backward", "lsm", lsm, F(M * V));
    need("logsoftmax_backward", "ent", ent, F(M));
    need("logsoftmax_backward", "dlp", dlp, F(M));
    need("logsoftmax_backward", "dent", dent, F(M));
    cpu()->logsoftmax_backward(cpu(), dz, lsm, ent, M, V, temp, targets, dlp, dent);
}

static void st_embed_forward(const mart_backend *be, float *out, const float *table,
                             const int32_t *tokens, int64_t n, int64_t d) {
    (void)be;
    need("embed_forward", "out", out, F(n * d));
    need("embed_forward", "table", table, 0);
    cpu()->embed_forward(cpu(), out, table, tokens, n, d);
}

static void st_embed_backward(const mart_backend *be, float *dtable, const float *dout,
                              const int32_t *tokens, int64_t n, int64_t d) {
    (void)be;
    need("embed_backward", "dtable", dtable, 0);
    need("embed_backward", "dout", dout, F(n * d));
    cpu()->embed_backward(cpu(), dtable, dout, tokens, n, d);
}

static void st_copy_rows(const mart_backend *be, float *dst, int64_t ld_dst, const float *src,
                         int64_t ld_src, const int64_t *rows, int64_t n, int64_t width) {
    (void)be;
    need("copy_rows", "dst", dst, STRIDED(n, ld_dst, width));
    need("copy_rows", "src", src, rows ? 0 : STRIDED(n, ld_src, width));
    cpu()->copy_rows(cpu(), dst, ld_dst, src, ld_src, rows, n, width);
}

static void st_dot_rows(const mart_backend *be, float *out, const float *x, const float *v,
                        int64_t M, int64_t d) {
    (void)be;
    need("dot_rows", "out", out, F(M));
    need("dot_rows", "x", x, F(M * d));
    need("dot_rows", "v", v, F(d));
    cpu()->dot_rows(cpu(), out, x, v, M, d);
}

static void st_dot_rows_backward(const mart_backend *be, float *dx, float *dv, const float *dout,
                                 const float *x, const float *v, int64_t M, int64_t d) {
    (void)be;
    need("dot_rows_backward", "dx", dx, F(M * d));
    need("dot_rows_backward", "dv", dv, F(d));
    need("dot_rows_backward", "dout", dout, F(M));
    need("dot_rows_backward", "x", x, F(M * d));
    need("dot_rows_backward", "v", v, F(d));
    cpu()->dot_rows_backward(cpu(), dx, dv, dout, x, v, M, d);
}

static void st_adamw(const mart_backend *be, float *params, const float *grads, float *m,
                     float *v, int64_t n, int64_t step, const adamw_config *c) {
    (void)be;
    need("adamw", "params", params, F(n));
    need("adamw", "grads", grads, F(n));
    need("adamw", "m", m, F(n));
    need("adamw", "v", v, F(n));
    cpu()->adamw(cpu(), params, grads, m, v, n, step, c);
}

static double st_sumsq(const mart_backend *be, const float *x, int64_t n) {
    (void)be;
    need("sumsq", "x", x, F(n));
    return cpu()->sumsq(cpu(), x, n);
}

static void st_scale(const mart_backend *be, float *x, int64_t n, float s) {
    (void)be;
    need("scale", "x", x, F(n));
    cpu()->scale(cpu(), x, n, s);
}

static const mart_backend staged = {
    .name = "cpu-staged",
    .host_memory = false,
    .alloc = st_alloc,
    .free = st_free,
    .upload = st_upload,
    .download = st_download,
    .zero = st_zero,
    .copy = st_copy,
    .bf16_copy = st_bf16_copy,
    .bf16_products_supported = st_bf16_products_supported,
    .linear = st_linear,
    .linear_backward = st_linear_backward,
    .rmsnorm_forward = st_rmsnorm_forward,
    .rmsnorm_backward = st_rmsnorm_backward,
    .rope_table = st_rope_table,
    .rope = st_rope,
    .attention_forward = st_attention_forward,
    .attention_backward = st_attention_backward,
    .swiglu_forward = st_swiglu_forward,
    .swiglu_backward = st_swiglu_backward,
    .logsoftmax_forward = st_logsoftmax_forward,
    .logsoftmax_backward = st_logsoftmax_backward,
    .embed_forward = st_embed_forward,
    .embed_backward = st_embed_backward,
    .copy_rows = st_copy_rows,
    .dot_rows = st_dot_rows,
    .dot_rows_backward = st_dot_rows_backward,
    .adamw = st_adamw,
    .sumsq = st_sumsq,
    .scale = st_scale,
};

const mart_backend *mart_backend_cpu_staged(void) {
    return &staged;
}
