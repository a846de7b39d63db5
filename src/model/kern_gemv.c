/* kern_gemv: kern_linear for the few rows of a decoding step. At M = 1 the product is bound
 * by reading the weights once from memory, which OpenBLAS's sgemm does poorly (3-14 GFLOP/s
 * on the development machine: it repacks the weights every call) while a plain AVX-512 loop
 * streams them at the memory's speed. Each thread takes a block of output columns (rows of
 * w) and reads each weight once for all M rows of x (kept in cache).
 *
 * Weights registered with kern_gemv_register_bf16 whose values are all exactly
 * representable in bfloat16 (a model loaded from a BF16 checkpoint) are read from a BF16
 * copy instead: half the bytes, and, widened back to float32 exactly, the same products.
 * From such copies this path also takes decoding batches up to KERN_GEMV_BF16_MAX_M rows
 * (4 x 4 tiles), where it beats sgemm on the float32 weights. */
#include "model/kern_gemv.h"

#include "mart/core.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Rows of w handled together: their dot products with one x row share the loads of x. */
#define GEMV_ROWS 4
/* Software prefetch distance, in rows of the 4-row tiles (in units of 256 weights for the
 * sequential loop): the hardware prefetcher alone left a core at about half its read
 * bandwidth. */
#ifndef GEMV_PREFETCH_ROWS
#define GEMV_PREFETCH_ROWS 16
#endif

static bool have_avx512(void) {
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    return ok == 1;
}

/* ---- the BF16 weight registry ---- */

typedef struct {
    const float *w; /* the float32 weights this copy stands for */
    int64_t n;      /* elements */
    uint16_t *bf16; /* (n) */
    int32_t refs;   /* registrations not yet dropped */
} bf16_copy;

static bool gemv_on = true;

void kern_gemv_enable(bool on) {
    gemv_on = on;
}

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
    for (int64_t i = 0; i < n && i < 4096 && exact; i++) { /* trained weights fail fast */
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        exact = (u & 0xffffu) == 0;
    }
    if (!exact) return false;
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
__attribute__((target("avx512f"))) static inline void sum4(float *out, __m512 a, __m512 b, __m512 c,
                                                           __m512 d) {
    out[0] = _mm512_reduce_add_ps(a);
    out[1] = _mm512_reduce_add_ps(b);
    out[2] = _mm512_reduce_add_ps(c);
    out[3] = _mm512_reduce_add_ps(d);
}

/* y[m, n0 .. n0+GEMV_ROWS) for all m from float32 rows n0.. of w. acc: (M, GEMV_ROWS). */
__attribute__((target("avx512f"))) static void gemv_block_f32(const float *x, const float *w,
                                                              int64_t M, int64_t N, int64_t K,
                                                              int64_t n0, float *acc) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    const float *w0 = w + n0 * K, *w1 = nr > 1 ? w0 + K : w0, *w2 = nr > 2 ? w0 + 2 * K : w0,
                *w3 = nr > 3 ? w0 + 3 * K : w0;
    for (int64_t m = 0; m < M; m++) {
        const float *xm = x + m * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 xv = _mm512_maskz_loadu_ps(mk, xm + k);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w0 + k), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w1 + k), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w2 + k), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w3 + k), xv, a3);
        }
        sum4(acc + m * GEMV_ROWS, a0, a1, a2, a3);
    }
}

/* The same from BF16 rows, for MR rows of x at once (m0 ..): a tile of MR x GEMV_ROWS dot
 * products, so that each weight is loaded and widened once per MR rows. 32 weights are
 * loaded at once; as 16 32-bit lanes, a lane's high half is the odd weight and its low half
 * (shifted up) the even one, both exactly float32. xp holds x with each block of 32 split
 * into its 16 even then 16 odd elements, zero-padded to a multiple of 32 (K32). */
__attribute__((target("avx512f,avx512bw"), always_inline)) static inline void
gemv_tile_bf16(const float *xp, const uint16_t *wb, int64_t N, int64_t K, int64_t K32, int64_t n0,
               int64_t m0, float *acc, const int MR) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    const uint16_t *w[GEMV_ROWS];
    for (int r = 0; r < GEMV_ROWS; r++)
        w[r] = wb + (n0 + (r < nr ? r : 0)) * K;
    const float *xr[4];
    for (int i = 0; i < MR; i++)
        xr[i] = xp + (m0 + i) * K32;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 a[4][GEMV_ROWS];
    for (int i = 0; i < MR; i++)
        for (int r = 0; r < GEMV_ROWS; r++)
            a[i][r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) {
        __mmask32 mk = K - k >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1ull << (K - k)) - 1);
        __m512 we[GEMV_ROWS], wo[GEMV_ROWS];
        for (int r = 0; r < GEMV_ROWS; r++) {
            _mm_prefetch((const char *)(w[r] + k + GEMV_PREFETCH_ROWS * K), _MM_HINT_T0);
            __m512i v = _mm512_maskz_loadu_epi16(mk, w[r] + k);
            we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            wo[r] = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
        }
        for (int i = 0; i < MR; i++) {
            __m512 xe = _mm512_load_ps(xr[i] + k), xo = _mm512_load_ps(xr[i] + k + 16);
            /* keep x in registers: folded into each FMA it would be loaded four times */
            __asm__("" : "+v"(xe), "+v"(xo));
            for (int r = 0; r < GEMV_ROWS; r++) {
                a[i][r] = _mm512_fmadd_ps(we[r], xe, a[i][r]);
                a[i][r] = _mm512_fmadd_ps(wo[r], xo, a[i][r]);
            }
        }
    }
    for (int i = 0; i < MR; i++)
        sum4(acc + (m0 + i) * GEMV_ROWS, a[i][0], a[i][1], a[i][2], a[i][3]);
}

/* Few rows of x (MR < 4, memory-bound decoding): the weight rows are read one after the
 * other, one sequential stream that the hardware prefetcher follows; even and odd halves go
 * to separate accumulators so that the FMA latency is not the limit. */
__attribute__((target("avx512f,avx512bw"), always_inline)) static inline void
gemv_rows_bf16(const float *xp, const uint16_t *wb, int64_t N, int64_t K, int64_t K32, int64_t n0,
               float *acc, const int MR) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t r = 0; r < nr; r++) {
        const uint16_t *wr = wb + (n0 + r) * K;
        __m512 ae[3], ao[3];
        for (int i = 0; i < MR; i++)
            ae[i] = ao[i] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k += 32) {
            __mmask32 mk =
                K - k >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1ull << (K - k)) - 1);
            _mm_prefetch((const char *)(wr + k + GEMV_PREFETCH_ROWS * 256), _MM_HINT_T0);
            __m512i v = _mm512_maskz_loadu_epi16(mk, wr + k);
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
            for (int i = 0; i < MR; i++) {
                ae[i] = _mm512_fmadd_ps(we, _mm512_load_ps(xp + i * K32 + k), ae[i]);
                ao[i] = _mm512_fmadd_ps(wo, _mm512_load_ps(xp + i * K32 + k + 16), ao[i]);
            }
        }
        for (int i = 0; i < MR; i++)
            acc[i * GEMV_ROWS + r] = _mm512_reduce_add_ps(_mm512_add_ps(ae[i], ao[i]));
    }
}

/* All M rows of x against rows n0.. of the BF16 weights: four x rows at a time when there are
 * at least four (compute-bound), one weight row at a time otherwise (memory-bound). */
__attribute__((target("avx512f,avx512bw"))) static void
gemv_block_bf16(const float *xp, const uint16_t *wb, int64_t M, int64_t N, int64_t K, int64_t K32,
                int64_t n0, float *acc) {
    if (M < 4) {
        switch (M) {
        case 3:
            gemv_rows_bf16(xp, wb, N, K, K32, n0, acc, 3);
            break;
        case 2:
            gemv_rows_bf16(xp, wb, N, K, K32, n0, acc, 2);
            break;
        default:
            gemv_rows_bf16(xp, wb, N, K, K32, n0, acc, 1);
            break;
        }
        return;
    }
    int64_t m0 = 0;
    for (; m0 + 4 <= M; m0 += 4)
        gemv_tile_bf16(xp, wb, N, K, K32, n0, m0, acc, 4);
    switch (M - m0) {
    case 3:
        gemv_tile_bf16(xp, wb, N, K, K32, n0, m0, acc, 3);
        break;
    case 2:
        gemv_tile_bf16(xp, wb, N, K, K32, n0, m0, acc, 2);
        break;
    case 1:
        gemv_tile_bf16(xp, wb, N, K, K32, n0, m0, acc, 1);
        break;
    default:
        break;
    }
}

/* xp (M, K32): each block of 32 elements of x's rows as its 16 even then its 16 odd ones. */
static void split_even_odd(float *xp, const float *x, int64_t M, int64_t K, int64_t K32) {
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * K;
        float *o = xp + m * K32;
        for (int64_t k = 0; k < K32; k += 32)
            for (int64_t i = 0; i < 16; i++) {
                o[k + i] = k + 2 * i < K ? xr[k + 2 * i] : 0.0f;
                o[k + 16 + i] = k + 2 * i + 1 < K ? xr[k + 2 * i + 1] : 0.0f;
            }
    }
}

bool kern_gemv(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t N,
               int64_t K, bool accumulate) {
    if (M > KERN_GEMV_BF16_MAX_M || !gemv_on || !have_avx512()) return false;
    const uint16_t *wb = find_bf16(w, N * K);
    if (!wb && M > KERN_GEMV_MAX_M) return false;
    int64_t K32 = (K + 31) / 32 * 32;
    float *xp = NULL;
    if (wb) {
        xp = mart_aligned_alloc((size_t)(M * K32) * sizeof(float));
        split_even_odd(xp, x, M, K, K32);
    }
    int64_t n_blocks = (N + GEMV_ROWS - 1) / GEMV_ROWS;
#pragma omp parallel for schedule(static) if (N * K > 32768)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        float acc[KERN_GEMV_BF16_MAX_M * GEMV_ROWS];
        int64_t n0 = blk * GEMV_ROWS, nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
        if (wb)
            gemv_block_bf16(xp, wb, M, N, K, K32, n0, acc);
        else
            gemv_block_f32(x, w, M, N, K, n0, acc);
        for (int64_t m = 0; m < M; m++)
            for (int64_t r = 0; r < nr; r++) {
                float v = acc[m * GEMV_ROWS + r] + (b ? b[n0 + r] : 0.0f);
                float *o = y + m * N + n0 + r;
                *o = accumulate ? *o + v : v;
            }
    }
    mart_aligned_free(xp);
    return true;
}
