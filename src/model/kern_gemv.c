/* kern_gemv: kern_linear for a few rows (decoding: M = 1 .. KERN_GEMV_MAX_M). There the
 * product is bound by reading the weights once from memory, which OpenBLAS's sgemm does
 * poorly at M = 1 (3-14 GFLOP/s on the development machine) while a plain AVX-512 loop
 * streams them at the memory's speed. Each thread takes a block of output columns (rows of
 * w), reads each weight row once and multiplies it with all M rows of x (kept in cache).
 *
 * Weights registered with kern_gemv_register_bf16 whose values are all exactly
 * representable in bfloat16 (a model loaded from a BF16 checkpoint) are read from a BF16
 * copy instead: half the bytes, and, widened back to float32 exactly, the same products. */
#include "model/kern_gemv.h"

#include "mart/core.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Rows of w handled together: their dot products with one x row share the loads of x. */
#define GEMV_ROWS 4

static bool have_avx512(void) {
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    return ok == 1;
}

/* ---- the BF16 weight registry ---- */

typedef struct {
    const float *w;  /* the float32 weights this copy stands for */
    int64_t n;       /* elements */
    uint16_t *bf16;  /* (n) */
    int32_t refs;    /* registrations not yet dropped */
} bf16_copy;

static bool gemv_on = true;

void kern_gemv_enable(bool on) { gemv_on = on; }

static bf16_copy *copies;
static int32_t n_copies;

static bf16_copy *find_copy(const float *w) {
    for (int32_t i = 0; i < n_copies; i++)
        if (copies[i].w == w) return &copies[i];
    return NULL;
}

static const uint16_t *find_bf16(const float *w, int64_t n) {
    const bf16_copy *c = find_copy(w);
    return c && c->n == n ? c->bf16 : NULL;
}

bool kern_gemv_register_bf16(const float *w, int64_t n) {
    if (!have_avx512()) return false;
    bf16_copy *c = find_copy(w);
    if (c) {
        c->refs++;
        return c->n == n;
    }
    bool exact = true;
#pragma omp parallel for schedule(static) reduction(&& : exact)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        exact = exact && (u & 0xffffu) == 0;
    }
    if (!exact) return false;
    uint16_t *b = mart_aligned_alloc((size_t)n * sizeof(uint16_t));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        b[i] = (uint16_t)(u >> 16);
    }
    copies = mart_xrealloc(copies, (size_t)(n_copies + 1) * sizeof *copies);
    copies[n_copies++] = (bf16_copy){w, n, b, 1};
    return true;
}

void kern_gemv_unregister(const float *w) {
    for (int32_t i = 0; i < n_copies; i++)
        if (copies[i].w == w) {
            if (--copies[i].refs > 0) return;
            mart_aligned_free(copies[i].bf16);
            copies[i] = copies[--n_copies];
            return;
        }
}

/* ---- the kernels ---- */

/* Horizontal sum of four vectors into four floats. */
__attribute__((target("avx512f"))) static inline void sum4(float *out, __m512 a, __m512 b,
                                                            __m512 c, __m512 d) {
    out[0] = _mm512_reduce_add_ps(a);
    out[1] = _mm512_reduce_add_ps(b);
    out[2] = _mm512_reduce_add_ps(c);
    out[3] = _mm512_reduce_add_ps(d);
}

/* Loads 16 weights (or the masked tail) of row r at column k as float32. */
__attribute__((target("avx512f,avx512bw"))) static inline __m512
load_w(const float *w, const uint16_t *wb, int64_t off, __mmask16 mk) {
    if (wb) {
        __m256i h = _mm256_maskz_loadu_epi16(mk, wb + off);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(mk, w + off);
}

/* y[m, n0 .. n0+GEMV_ROWS) for all m: rows n0.. of w (float32 or bf16) against x. */
__attribute__((target("avx512f,avx512bw"))) static void
gemv_block(float *y, const float *x, const float *w, const uint16_t *wb, int64_t M, int64_t N,
           int64_t K, int64_t n0, float *acc /* (M, GEMV_ROWS) */) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    for (int64_t m = 0; m < M; m++) {
        const float *xm = x + m * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 xv = _mm512_maskz_loadu_ps(mk, xm + k);
            a0 = _mm512_fmadd_ps(load_w(w, wb, n0 * K + k, mk), xv, a0);
            if (nr > 1) a1 = _mm512_fmadd_ps(load_w(w, wb, (n0 + 1) * K + k, mk), xv, a1);
            if (nr > 2) a2 = _mm512_fmadd_ps(load_w(w, wb, (n0 + 2) * K + k, mk), xv, a2);
            if (nr > 3) a3 = _mm512_fmadd_ps(load_w(w, wb, (n0 + 3) * K + k, mk), xv, a3);
        }
        sum4(acc + m * GEMV_ROWS, a0, a1, a2, a3);
    }
    (void)y;
}

bool kern_gemv(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t N,
               int64_t K, bool accumulate) {
    if (M > KERN_GEMV_MAX_M || !gemv_on || !have_avx512()) return false;
    const uint16_t *wb = find_bf16(w, N * K);
    int64_t n_blocks = (N + GEMV_ROWS - 1) / GEMV_ROWS;
#pragma omp parallel for schedule(static) if (N * K > 32768)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        float acc[KERN_GEMV_MAX_M * GEMV_ROWS];
        int64_t n0 = blk * GEMV_ROWS, nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
        gemv_block(y, x, w, wb, M, N, K, n0, acc);
        for (int64_t m = 0; m < M; m++)
            for (int64_t r = 0; r < nr; r++) {
                float v = acc[m * GEMV_ROWS + r] + (b ? b[n0 + r] : 0.0f);
                float *o = y + m * N + n0 + r;
                *o = accumulate ? *o + v : v;
            }
    }
    return true;
}
