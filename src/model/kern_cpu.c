/* kern_cpu: the CPU implementation of kern.h. Matrix products go to OpenBLAS, always on one
 * thread per call: mart splits large products itself into blocks of rows or columns whose
 * bounds depend on the shape alone, so every element is computed by the same call, in the
 * same order, whatever the number of threads. Elementwise work is OpenMP over rows; every
 * reduction across rows or threads has a fixed order. Attention runs one (sequence, head)
 * pair per task. */
#include "model/kern.h"
#include "model/kern_gemv.h"

#include "mart/core.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* exp(x) for float, written so that loops over it vectorize (libm's expf does not): range
 * reduction x = n ln2 + r with |r| <= ln2/2, a degree-6 Taylor polynomial for e^r, then the
 * exponent n put in with integer arithmetic. Relative error about 2e-7 on [-87, 88]. */
static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504089f + round) - round;
    float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
    float p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* Loops over fewer elements than this run on the calling thread: waking the pool costs more. */
#define PAR_MIN 32768

/* ---- per-thread scratch, allocated once and grown (page faults are costly here) ---- */

/* Indexed by a per-OS-thread id rather than omp_get_thread_num(), so that callers running
 * forward passes from several threads of their own (where every inner team is thread 0)
 * never share a buffer. The table keeps the buffers reachable (no leak reports). */
#define KERN_MAX_THREADS 1024
static float *scratch_buf[KERN_MAX_THREADS];
static size_t scratch_cap[KERN_MAX_THREADS];
static _Atomic int scratch_next_id;
static _Thread_local int scratch_id = -1;

static float *thread_scratch(size_t n) {
    if (scratch_id < 0) scratch_id = scratch_next_id++;
    int t = scratch_id;
    if (t >= KERN_MAX_THREADS) {
        fprintf(stderr, "mart: more than %d threads ran model kernels\n", KERN_MAX_THREADS);
        abort();
    }
    if (scratch_cap[t] < n) {
        mart_aligned_free(scratch_buf[t]);
        scratch_cap[t] = n + n / 4;
        scratch_buf[t] = mart_aligned_alloc(scratch_cap[t] * sizeof(float));
    }
    return scratch_buf[t];
}

/* ---- matrix products ---- */

/* cblas_sgemm on the calling thread alone. OpenBLAS's OpenMP build runs single-threaded
 * inside an active parallel region, but outside one it splits the product over OpenMP's
 * thread count, which would make its sums depend on that count: there, the count is set to 1
 * for the call. */
static void sgemm_1(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc) {
    bool serial = !omp_in_parallel();
    int threads = serial ? omp_get_max_threads() : 1;
    if (serial && threads > 1) omp_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
    if (serial && threads > 1) omp_set_num_threads(threads);
}

/* Products smaller than this (multiply-adds) run as one sgemm call on the calling thread. */
#define GEMM_SPLIT_MIN 4e6
/* Blocks per product when split: enough for 8 threads to share; fixed, so that the blocks'
 * bounds (and with them every result) never depend on the thread count. */
#define GEMM_BLOCKS 8

/* Row-major C (m, n) = alpha op(A) op(B) + beta C, split into GEMM_BLOCKS blocks of rows of C
 * (or of columns, when C has fewer rows than columns) that threads take in turn, each one
 * single-threaded sgemm call. A block of rows packs all of B again and a block of columns all
 * of A, so the split goes along the longer side, where the operand packed again is the
 * smaller. Element (i, j) is always computed by the same call over the whole of k. */
static void sgemm_blocks(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc) {
    bool split = (double)m * (double)n * (double)k >= GEMM_SPLIT_MIN;
    bool by_rows = m >= n;
    int64_t len = by_rows ? m : n;
    /* Boundaries on multiples of 16 keep each block's rows or columns cache-line aligned. */
    int64_t step = ((len + GEMM_BLOCKS - 1) / GEMM_BLOCKS + 15) & ~(int64_t)15;
    int64_t n_blocks = split ? (len + step - 1) / step : 1;
    if (!split) step = len;
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t i0 = blk * step, i1 = i0 + step < len ? i0 + step : len;
        const float *ab = a, *bb = b;
        float *cb = c;
        int64_t mb = m, nb = n;
        if (by_rows) {
            ab = ta ? a + i0 : a + i0 * lda;
            cb = c + i0 * ldc;
            mb = i1 - i0;
        } else {
            bb = tb ? b + i0 * ldb : b + i0;
            cb = c + i0;
            nb = i1 - i0;
        }
        sgemm_1(ta, tb, mb, nb, k, alpha, ab, lda, bb, ldb, beta, cb, ldc);
    }
}

void kern_linear(float *y, const float *x, const float *w, const uint16_t *w16, const float *b,
                 int64_t M, int64_t N, int64_t K, bool accumulate, mart_products products,
                 bool small_m) {
    if (M <= 0 || N <= 0) return;
    if (small_m && kern_gemv(y, x, w, w16, b, M, N, K, accumulate, products == MART_PRODUCTS_BF16))
        return; /* decoding, BF16 products */
    float beta = accumulate ? 1.0f : 0.0f;
    if (b) {
        if (!accumulate) {
#pragma omp parallel for schedule(static) if (M * N > PAR_MIN)
            for (int64_t i = 0; i < M; i++)
                memcpy(y + i * N, b, (size_t)N * sizeof(float));
        } else {
#pragma omp parallel for schedule(static) if (M * N > PAR_MIN)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    y[i * N + j] += b[j];
        }
        beta = 1.0f;
    }
    sgemm_blocks(false, true, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}

/* db (N) += column sums of dy (M, N), columns split between threads. */
static void colsum_add(float *db, const float *dy, int64_t M, int64_t N) {
#pragma omp parallel if (M * N > PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t c0 = N * t / nt, c1 = N * (t + 1) / nt;
        for (int64_t i = 0; i < M; i++) {
            const float *r = dy + i * N;
#pragma omp simd
            for (int64_t j = c0; j < c1; j++)
                db[j] += r[j];
        }
    }
}

void kern_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int64_t M, int64_t N, int64_t K, bool dx_accumulate) {
    if (M <= 0) return;
    if (dx)
        sgemm_blocks(false, false, M, K, N, 1.0f, dy, N, w, K, dx_accumulate ? 1.0f : 0.0f, dx, K);
    if (dw) sgemm_blocks(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
    if (db) colsum_add(db, dy, M, N);
}

/* ---- RMSNorm ---- */

void kern_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t M,
                          int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (M * d > PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < d; j++)
            ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)d + eps);
        if (rstd) rstd[i] = r;
#pragma omp simd
        for (int64_t j = 0; j < d; j++)
            yi[j] = xi[j] * r * w[j];
    }
}

void kern_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           const float *rstd, int64_t M, int64_t d) {
#pragma omp parallel if (M * d > PAR_MIN)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            const float *xi = x + i * d, *dyi = dy + i * d;
            float *dxi = dx + i * d;
            float r = rstd[i], dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < d; j++)
                dot += dyi[j] * w[j] * xi[j];
            float c = dot * r * r * r / (float)d;
#pragma omp simd
            for (int64_t j = 0; j < d; j++)
                dxi[j] += dyi[j] * w[j] * r - xi[j] * c;
        }
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t c0 = d * t / nt, c1 = d * (t + 1) / nt;
        for (int64_t i = 0; i < M; i++) {
            const float *xi = x + i * d, *dyi = dy + i * d;
            float r = rstd[i];
#pragma omp simd
            for (int64_t j = c0; j < c1; j++)
                dw[j] += dyi[j] * xi[j] * r;
        }
    }
}

/* ---- rotary embedding ---- */

void kern_rope_table(float *cos_t, float *sin_t, int64_t n_pos, int32_t hd, double theta) {
    int32_t half = hd / 2;
    float inv[1024];
    assert(half <= 1024);
    for (int32_t i = 0; i < half; i++)
        inv[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)hd);
#pragma omp parallel for schedule(static) if (n_pos > 64)
    for (int64_t t = 0; t < n_pos; t++)
        for (int32_t i = 0; i < half; i++) {
            float a = (float)t * inv[i];
            cos_t[t * half + i] = (float)cos((double)a);
            sin_t[t * half + i] = (float)sin((double)a);
        }
}

static void rope_apply(float *x, int64_t ld, int64_t M, int32_t n_heads, int32_t hd,
                       const int32_t *pos, const float *cos_t, const float *sin_t, float sign) {
    int32_t half = hd / 2;
#pragma omp parallel for schedule(static) if (M * n_heads * hd > PAR_MIN)
    for (int64_t t = 0; t < M; t++) {
        const float *c = cos_t + (int64_t)pos[t] * half, *s = sin_t + (int64_t)pos[t] * half;
        for (int32_t h = 0; h < n_heads; h++) {
            float *a = x + t * ld + (int64_t)h * hd, *b = a + half;
#pragma omp simd
            for (int32_t i = 0; i < half; i++) {
                float x1 = a[i], x2 = b[i], si = sign * s[i];
                a[i] = x1 * c[i] - x2 * si;
                b[i] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void kern_rope_forward(float *x, int64_t ld, int64_t M, int32_t n_heads, int32_t hd,
                       const int32_t *pos, const float *cos_t, const float *sin_t) {
    rope_apply(x, ld, M, n_heads, hd, pos, cos_t, sin_t, 1.0f);
}

void kern_rope_backward(float *dx, int64_t ld, int64_t M, int32_t n_heads, int32_t hd,
                        const int32_t *pos, const float *cos_t, const float *sin_t) {
    rope_apply(dx, ld, M, n_heads, hd, pos, cos_t, sin_t, -1.0f);
}

/* ---- attention ---- */

/* Query rows are processed in blocks so that each block multiplies only by the keys it can
 * see (roughly halves the work of the causal mask for long prefills). */
#define ATTN_BLOCK 64

void kern_attention_forward(float *out, const float *q, int64_t ld_q, int64_t ld_kv,
                            const mart_attn_seq *seqs, int32_t n_seqs, int32_t n_heads,
                            int32_t n_kv, int32_t hd) {
    int32_t group = n_heads / n_kv;
    int64_t ld_o = (int64_t)n_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t n_items = (int64_t)n_seqs * n_heads, work = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        work += (int64_t)seqs[i].n_q * seqs[i].n_k;
#pragma omp parallel for schedule(dynamic, 1) if (work * n_heads * hd > PAR_MIN)
    for (int64_t item = 0; item < n_items; item++) {
        const mart_attn_seq *s = &seqs[item / n_heads];
        int32_t h = (int32_t)(item % n_heads), g = h / group;
        int32_t nq = s->n_q, nk = s->n_k, p0 = nk - nq;
        const float *kh = s->k + (int64_t)g * hd, *vh = s->v + (int64_t)g * hd;
        for (int32_t r0 = 0; r0 < nq; r0 += ATTN_BLOCK) {
            int32_t nr = nq - r0 < ATTN_BLOCK ? nq - r0 : ATTN_BLOCK;
            int32_t kk = p0 + r0 + nr; /* keys visible to the last row of the block */
            int64_t lds = s->probs ? nk : kk;
            float *S = s->probs ? s->probs + ((int64_t)h * nq + r0) * nk
                                : thread_scratch((size_t)nr * (size_t)kk);
            const float *qb = q + (s->q_row + r0) * ld_q + (int64_t)h * hd;
            sgemm_1(false, true, nr, kk, hd, scale, qb, ld_q, kh, ld_kv, 0.0f, S, lds);
            for (int32_t i = 0; i < nr; i++) {
                float *row = S + i * lds;
                int32_t nv = p0 + r0 + i + 1; /* visible keys */
                float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
                for (int32_t j = 0; j < nv; j++)
                    mx = row[j] > mx ? row[j] : mx;
#pragma omp simd reduction(+ : sum)
                for (int32_t j = 0; j < nv; j++) {
                    row[j] = fast_expf(row[j] - mx);
                    sum += row[j];
                }
                float inv = 1.0f / sum;
#pragma omp simd
                for (int32_t j = 0; j < nv; j++)
                    row[j] *= inv;
                for (int64_t j = nv; j < lds; j++)
                    row[j] = 0.0f;
            }
            sgemm_1(false, false, nr, hd, kk, 1.0f, S, lds, vh, ld_kv, 0.0f,
                    out + (s->q_row + r0) * ld_o + (int64_t)h * hd, ld_o);
        }
    }
}

void kern_attention_backward(float *dq, const float *dout, const float *q, int64_t ld_q,
                             int64_t ld_kv, const mart_attn_seq *seqs, int32_t n_seqs,
                             int32_t n_heads, int32_t n_kv, int32_t hd) {
    int32_t group = n_heads / n_kv;
    int64_t ld_o = (int64_t)n_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t n_items = (int64_t)n_seqs * n_kv, work = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        work += (int64_t)seqs[i].n_q * seqs[i].n_k;
        /* One task per (sequence, kv head): the heads sharing a kv head add into the same dk/dv
         * rows, so they run in one task, one after another. Query rows go in blocks that touch
         * only the keys they can see, as in the forward pass. */
#pragma omp parallel for schedule(dynamic, 1) if (work * n_heads * hd > PAR_MIN)
    for (int64_t item = 0; item < n_items; item++) {
        const mart_attn_seq *s = &seqs[item / n_kv];
        int32_t g = (int32_t)(item % n_kv);
        int32_t nq = s->n_q, nk = s->n_k, p0 = nk - nq;
        const float *kg = s->k + (int64_t)g * hd, *vg = s->v + (int64_t)g * hd;
        float *dkg = s->dk + (int64_t)g * hd, *dvg = s->dv + (int64_t)g * hd;
        for (int32_t j = 0; j < nk; j++) {
            memset(dkg + j * ld_kv, 0, (size_t)hd * sizeof(float));
            memset(dvg + j * ld_kv, 0, (size_t)hd * sizeof(float));
        }
        float *dS = thread_scratch((size_t)ATTN_BLOCK * (size_t)nk);
        for (int32_t hh = 0; hh < group; hh++) {
            int32_t h = g * group + hh;
            for (int32_t r0 = 0; r0 < nq; r0 += ATTN_BLOCK) {
                int32_t nr = nq - r0 < ATTN_BLOCK ? nq - r0 : ATTN_BLOCK;
                int32_t kk = p0 + r0 + nr; /* keys visible to the block */
                const float *P = s->probs + ((int64_t)h * nq + r0) * nk;
                const float *dO = dout + (s->q_row + r0) * ld_o + (int64_t)h * hd;
                const float *qb = q + (s->q_row + r0) * ld_q + (int64_t)h * hd;
                /* dV += P^T dO */
                sgemm_1(true, false, kk, hd, nr, 1.0f, P, nk, dO, ld_o, 1.0f, dvg, ld_kv);
                /* dP = dO V^T, then dS = P * (dP - rowsum(P * dP)) */
                sgemm_1(false, true, nr, kk, hd, 1.0f, dO, ld_o, vg, ld_kv, 0.0f, dS, kk);
                for (int32_t i = 0; i < nr; i++) {
                    float *ds = dS + (int64_t)i * kk;
                    const float *p = P + (int64_t)i * nk;
                    int32_t nv = p0 + r0 + i + 1;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int32_t j = 0; j < nv; j++)
                        dot += p[j] * ds[j];
#pragma omp simd
                    for (int32_t j = 0; j < nv; j++)
                        ds[j] = p[j] * (ds[j] - dot);
                    for (int32_t j = nv; j < kk; j++)
                        ds[j] = 0.0f;
                }
                /* dQ = scale dS K ; dK += scale dS^T Q */
                sgemm_1(false, false, nr, hd, kk, scale, dS, kk, kg, ld_kv, 0.0f,
                        dq + (s->q_row + r0) * ld_q + (int64_t)h * hd, ld_q);
                sgemm_1(true, false, kk, hd, nr, scale, dS, kk, qb, ld_q, 1.0f, dkg, ld_kv);
            }
        }
    }
}

/* ---- SwiGLU ---- */

void kern_swiglu_forward(float *h, const float *gu, int64_t M, int64_t f) {
#pragma omp parallel for schedule(static) if (M * f > PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *g = gu + i * 2 * f, *u = g + f;
        float *hi = h + i * f;
#pragma omp simd
        for (int64_t j = 0; j < f; j++)
            hi[j] = g[j] / (1.0f + fast_expf(-g[j])) * u[j];
    }
}

void kern_swiglu_backward(float *dgu, const float *dh, const float *gu, int64_t M, int64_t f) {
#pragma omp parallel for schedule(static) if (M * f > PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *g = gu + i * 2 * f, *u = g + f, *dhi = dh + i * f;
        float *dg = dgu + i * 2 * f, *du = dg + f;
#pragma omp simd
        for (int64_t j = 0; j < f; j++) {
            float sg = 1.0f / (1.0f + fast_expf(-g[j])), silu = g[j] * sg;
            du[j] = dhi[j] * silu;
            dg[j] = dhi[j] * u[j] * sg * (1.0f + g[j] * (1.0f - sg));
        }
    }
}

/* ---- log-softmax, log-probabilities, entropy ---- */

void kern_logsoftmax_forward(float *lsm, const float *z, int64_t M, int64_t V, float temp,
                             const int32_t *targets, float *lp, float *ent) {
    float it = 1.0f / (temp > 0.0f ? temp : 1.0f);
#pragma omp parallel for schedule(static) if (M * V > PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *zi = z + i * V;
        float *li = lsm + i * V;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < V; j++)
            mx = zi[j] > mx ? zi[j] : mx;
        mx *= it;
        /* One exp per element: with u = z/temp - mx, e = exp(u), s = sum e:
         * lse = mx + log s and entropy = log s - sum(e u) / s. */
        float sum = 0.0f, eu = 0.0f;
#pragma omp simd reduction(+ : sum, eu)
        for (int64_t j = 0; j < V; j++) {
            float u = zi[j] * it - mx, e = fast_expf(u);
            sum += e;
            eu += e * u;
        }
        float lse = mx + logf(sum), h = logf(sum) - eu / sum;
#pragma omp simd
        for (int64_t j = 0; j < V; j++)
            li[j] = zi[j] * it - lse;
        if (lp) lp[i] = targets && targets[i] >= 0 ? li[targets[i]] : 0.0f;
        if (ent) ent[i] = h;
    }
}

void kern_logsoftmax_backward(float *dz, const float *lsm, const float *ent, int64_t M, int64_t V,
                              float temp, const int32_t *targets, const float *dlp,
                              const float *dent) {
    float it = 1.0f / (temp > 0.0f ? temp : 1.0f);
#pragma omp parallel for schedule(static) if (M * V > PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
        const float *li = lsm + i * V;
        float *di = dz + i * V;
        int32_t t = targets ? targets[i] : -1;
        float a = dlp && t >= 0 ? dlp[i] : 0.0f, b = dent ? dent[i] : 0.0f;
        float h = ent ? ent[i] : 0.0f;
        /* d lp_t / du_j = [j == t] - p_j ; d H / du_j = -p_j (lsm_j + H) ; u = z / temp */
#pragma omp simd
        for (int64_t j = 0; j < V; j++) {
            float p = fast_expf(li[j]);
            di[j] = (-a * p - b * p * (li[j] + h)) * it;
        }
        if (t >= 0) di[t] += a * it;
    }
}

/* ---- rows ---- */

void kern_embed_forward(float *out, const float *table, const int32_t *tokens, int64_t n,
                        int64_t d) {
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
    for (int64_t t = 0; t < n; t++)
        memcpy(out + t * d, table + (int64_t)tokens[t] * d, (size_t)d * sizeof(float));
}

/* Column blocks of the embedding gradient per task: a token repeated in the batch adds into
 * the same row, so each task owns whole columns and runs over the tokens in order. */
#define EMBED_COLS 256

void kern_embed_backward(float *dtable, const float *dout, const int32_t *tokens, int64_t n,
                         int64_t d) {
    int64_t n_blocks = (d + EMBED_COLS - 1) / EMBED_COLS;
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t c0 = blk * EMBED_COLS, c1 = c0 + EMBED_COLS < d ? c0 + EMBED_COLS : d;
        for (int64_t i = 0; i < n; i++) {
            float *dst = dtable + (int64_t)tokens[i] * d;
            const float *src = dout + i * d;
#pragma omp simd
            for (int64_t j = c0; j < c1; j++)
                dst[j] += src[j];
        }
    }
}

void kern_copy_rows(float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                    const int64_t *rows, int64_t n, int64_t width) {
#pragma omp parallel for schedule(static) if (n * width > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + i * ld_dst, src + (rows ? rows[i] : i) * ld_src,
               (size_t)width * sizeof(float));
}

void kern_dot_rows(float *out, const float *x, const float *v, int64_t M, int64_t d) {
#pragma omp parallel for schedule(static) if (M * d > PAR_MIN)
    for (int64_t r = 0; r < M; r++) {
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < d; j++)
            s += x[r * d + j] * v[j];
        out[r] = s;
    }
}

void kern_dot_rows_backward(float *dx, float *dv, const float *dout, const float *x,
                            const float *v, int64_t M, int64_t d) {
#pragma omp parallel for schedule(static) if (M * d > PAR_MIN)
    for (int64_t t = 0; t < M; t++)
        for (int64_t j = 0; j < d; j++)
            dx[t * d + j] += dout[t] * v[j];
    for (int64_t t = 0; t < M; t++)
        for (int64_t j = 0; j < d; j++)
            dv[j] += dout[t] * x[t * d + j];
}

/* ---- optimiser and reductions ---- */

void kern_adamw(float *params, const float *grads, float *m, float *v, int64_t n, int64_t step,
                const adamw_config *c) {
    /* Bias corrections in double: beta^step underflows gracefully and stays exact early on. */
    float bc1 = (float)(1.0 - pow((double)c->beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)c->beta2, (double)step));
    float lr = c->lr, b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        /* Decoupled weight decay: shrink the weight, then the Adam step (as torch.optim.AdamW). */
        params[i] = params[i] * (1.0f - lr * wd) - lr * mh / (sqrtf(vh) + eps);
    }
}

/* Elements per partial sum of kern_sumsq: the partials are added in chunk order. */
#define SUMSQ_CHUNK 16384

double kern_sumsq(const float *x, int64_t n) {
    int64_t n_chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = mart_xmalloc((size_t)(n_chunks > 0 ? n_chunks : 1) * sizeof(double));
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t i0 = c * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++)
            s += (double)x[i] * x[i];
        part[c] = s;
    }
    double ss = 0.0;
    for (int64_t c = 0; c < n_chunks; c++)
        ss += part[c];
    free(part);
    return ss;
}

void kern_scale(float *x, int64_t n, float s) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}
