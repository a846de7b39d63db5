/* kern_gemv: kern_linear for the few rows of a decoding step. At M = 1 the product is bound
 * by reading the weights once from memory, which OpenBLAS's sgemm does poorly (3-14 GFLOP/s
 * on the development machine: it repacks the weights every call) while a plain AVX-512 loop
 * streams them at the memory's speed. Each thread takes a block of output columns (rows of
 * w) and reads each weight once for all M rows of x (kept in cache).
 *
 * Weights with a BF16 copy (kern_bf16_copy: their values are all exactly bfloat16, as in a
 * model loaded from a BF16 checkpoint) are read from the copy instead: half the bytes, and,
 * widened back to float32 exactly, the same products. From such copies this path also takes
 * decoding batches up to KERN_GEMV_BF16_MAX_M rows (4 x 4 tiles), where it beats sgemm on
 * the float32 weights.
 *
 * With BF16 products asked for (the generation engine's default, where the CPU has
 * AVX512_BF16), x is rounded to bfloat16 instead and multiplied with the copy by the CPU's
 * BF16 dot products, for any M: twice the multiply-adds per instruction, so large batches
 * run twice as fast. */
#include "model/kern_gemv.h"

#include "mart/core.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The first `left` (at most 32) of 32 lanes. */
static inline __mmask32 mask32(int64_t left) {
    return left >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1ull << left) - 1);
}

/* Rows of w handled together: their dot products with one x row share the loads of x. */
#define GEMV_ROWS 4
/* Software prefetch distance, in rows of the 4-row tiles (in units of 256 weights for the
 * sequential loop): the hardware prefetcher alone left a core at about half its read
 * bandwidth. */
#ifndef GEMV_PREFETCH_ROWS
#define GEMV_PREFETCH_ROWS 16
#endif
#ifndef GEMV_K_PART
#define GEMV_K_PART 1024
#endif

static bool have_avx512(void) {
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    return ok == 1;
}

/* ---- BF16 copies ---- */

bool kern_bf16_products_supported(void) {
    static int ok = -1;
    if (ok < 0) ok = have_avx512() && __builtin_cpu_supports("avx512bf16");
    return ok == 1;
}

uint16_t *kern_bf16_copy(const float *w, int64_t n) {
    if (!have_avx512() || n <= 0) return NULL;
    bool exact = true;
    for (int64_t i = 0; i < n && i < 4096 && exact; i++) { /* trained weights fail fast */
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        exact = (u & 0xffffu) == 0;
    }
    if (!exact) return NULL;
#pragma omp parallel for schedule(static) reduction(&& : exact)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        exact = exact && (u & 0xffffu) == 0;
    }
    if (!exact) return NULL;
    uint16_t *b = mart_aligned_alloc((size_t)n * sizeof(uint16_t));
    /* Huge pages where the system allows them: decoding streams the copy, and with 4 KB pages
     * every 2,048 weights cost a TLB miss (batch 1 is up to 1.3x faster on the LM head). */
    uintptr_t lo = ((uintptr_t)b + 4095) & ~(uintptr_t)4095,
              hi = ((uintptr_t)(b + n)) & ~(uintptr_t)4095;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        b[i] = (uint16_t)(u >> 16);
    }
    return b;
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
        __mmask32 mk = mask32(K - k);
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
            __mmask32 mk = mask32(K - k);
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

/* ---- BF16 products (vdpbf16ps) ----
 *
 * x is rounded to bfloat16 once per call and each instruction does 32 multiply-adds of
 * BF16 pairs into 16 float32 sums: twice the work of a float32 FMA. The weights' BF16 copy
 * is already in the layout the instruction wants (consecutive pairs of K).
 *
 * Every dot product y[m, n] is computed the same way whatever M is and whichever path
 * computes it: one 16-lane accumulator running over K in order, 32 elements at a time, then
 * reduced by reduce16's fixed tree. So a row of y does not depend on the other rows of x
 * (a sequence's log-probs do not depend on what else is in the batch). */

/* out[4 i + r] = the sum of the 16 lanes of v[4 r + i] (i, r < 4), always by the same tree
 * (lane j + lane j+8, then j + j+4, j + j+2, j + j+1) whatever the other vectors hold. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
reduce16(const __m512 v[16]) {
    __m512 s[8], u[4], t[2];
    for (int p = 0; p < 8; p++)
        s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xee));
    for (int p = 0; p < 4; p++)
        u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * p], s[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(s[2 * p], s[2 * p + 1], 0xdd));
    for (int p = 0; p < 2; p++)
        t[p] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0x44),
                             _mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0xee));
    return _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], 0x88), _mm512_shuffle_ps(t[0], t[1], 0xdd));
}

/* Writes the sums of the MR x GEMV_ROWS accumulators v[4 r + i] to acc (MR, GEMV_ROWS). */
__attribute__((target("avx512f"), always_inline)) static inline void
store_sums(float *acc, const __m512 v[16], const int MR) {
    float out[16];
    _mm512_storeu_ps(out, reduce16(v));
    memcpy(acc, out, (size_t)MR * GEMV_ROWS * sizeof(float));
}

/* 32 elements (k.., mk the ones inside K) of the dot products of a tile: the accumulator
 * a[4 r + i] of x row xr[i] and weight row w[r]. */
__attribute__((target("avx512f,avx512bw,avx512bf16"), always_inline)) static inline void
tile_step(__m512 *a, const uint16_t *const *w, const uint16_t *const *xr, int64_t k,
          int64_t prefetch, __mmask32 mk, const int MR) {
    __m512i wv[GEMV_ROWS];
    for (int r = 0; r < GEMV_ROWS; r++) {
        _mm_prefetch((const char *)(w[r] + k + prefetch), _MM_HINT_T0);
        wv[r] = _mm512_maskz_loadu_epi16(mk, w[r] + k);
    }
    for (int i = 0; i < MR; i++) {
        __m512i xv = _mm512_load_si512(xr[i] + k);
        __asm__("" : "+v"(xv)); /* in a register, not folded into (and reloaded by) each dp */
        for (int r = 0; r < GEMV_ROWS; r++)
            a[4 * r + i] = _mm512_dpbf16_ps(a[4 * r + i], (__m512bh)xv, (__m512bh)wv[r]);
    }
}

/* Part k0..k1 of a tile of MR x GEMV_ROWS dot products: rows m0.. of xb against rows n0.. of
 * the weights, each weight vector loaded once per MR rows of x (compute-bound batches). A
 * tile runs over K in parts (so that the weights' part stays in cache while every row of x
 * goes by): its accumulators a[4 r + i] start from acc_v unless k0 is 0, and go back there
 * unless k1 is K, where their sums go to acc (MR, GEMV_ROWS) instead. */
__attribute__((target("avx512f,avx512bw,avx512bf16"), always_inline)) static inline void
dot_tile_bf16(const uint16_t *xb, const uint16_t *wb, int64_t N, int64_t K, int64_t K32, int64_t n0,
              int64_t m0, int64_t k0, int64_t k1, __m512 *acc_v, float *acc, const int MR) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    const uint16_t *w[GEMV_ROWS];
    for (int r = 0; r < GEMV_ROWS; r++)
        w[r] = wb + (n0 + (r < nr ? r : 0)) * K;
    const uint16_t *xr[4];
    for (int i = 0; i < MR; i++)
        xr[i] = xb + (m0 + i) * K32;
    __m512 a[16];
    for (int i = 0; i < 16; i++)
        a[i] = k0 == 0 ? _mm512_setzero_ps() : acc_v[i];
    int64_t k = k0;
    for (; k + 32 <= k1; k += 32) /* the hot loop */
        tile_step(a, w, xr, k, GEMV_PREFETCH_ROWS * K, (__mmask32)0xffffffffu, MR);
    if (k < k1) tile_step(a, w, xr, k, GEMV_PREFETCH_ROWS * K, mask32(K - k), MR);
    if (k1 == K)
        store_sums(acc + m0 * GEMV_ROWS, a, MR);
    else
        for (int i = 0; i < 16; i++)
            acc_v[i] = a[i];
}

/* MR < 4 rows of x (memory-bound decoding): the weight rows are read one after the other,
 * one sequential stream, prefetched ahead as in gemv_rows_bf16. */
__attribute__((target("avx512f,avx512bw,avx512bf16"), always_inline)) static inline void
dot_rows_bf16(const uint16_t *xb, const uint16_t *wb, int64_t N, int64_t K, int64_t K32, int64_t n0,
              float *acc, const int MR) {
    int64_t nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
    __m512 a[16];
    for (int i = 0; i < 16; i++)
        a[i] = _mm512_setzero_ps();
    for (int64_t r = 0; r < nr; r++) {
        const uint16_t *wr = wb + (n0 + r) * K;
        __m512 s[3];
        for (int i = 0; i < MR; i++)
            s[i] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k += 32) {
            _mm_prefetch((const char *)(wr + k + GEMV_PREFETCH_ROWS * 256), _MM_HINT_T0);
            __m512i wv = _mm512_maskz_loadu_epi16(mask32(K - k), wr + k);
            for (int i = 0; i < MR; i++)
                s[i] = _mm512_dpbf16_ps(s[i], (__m512bh)_mm512_load_si512(xb + i * K32 + k),
                                        (__m512bh)wv);
        }
        for (int i = 0; i < MR; i++)
            a[4 * r + i] = s[i];
    }
    store_sums(acc, a, MR);
}

/* All M rows of xb against rows n0.. of the BF16 weights. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
dot_block_bf16(const uint16_t *xb, const uint16_t *wb, int64_t M, int64_t N, int64_t K, int64_t K32,
               int64_t n0, float *acc) {
    if (M < 4) {
        switch (M) {
        case 3:
            dot_rows_bf16(xb, wb, N, K, K32, n0, acc, 3);
            break;
        case 2:
            dot_rows_bf16(xb, wb, N, K, K32, n0, acc, 2);
            break;
        default:
            dot_rows_bf16(xb, wb, N, K, K32, n0, acc, 1);
            break;
        }
        return;
    }
    __m512 acc_v[KERN_GEMV_BF16_MAX_M / 4 * 16];
    for (int64_t k0 = 0; k0 < K; k0 += GEMV_K_PART) {
        int64_t k1 = K - k0 < GEMV_K_PART ? K : k0 + GEMV_K_PART, m0 = 0;
        for (; m0 + 4 <= M; m0 += 4)
            dot_tile_bf16(xb, wb, N, K, K32, n0, m0, k0, k1, acc_v + m0 * 4, acc, 4);
        switch (M - m0) {
        case 3:
            dot_tile_bf16(xb, wb, N, K, K32, n0, m0, k0, k1, acc_v + m0 * 4, acc, 3);
            break;
        case 2:
            dot_tile_bf16(xb, wb, N, K, K32, n0, m0, k0, k1, acc_v + m0 * 4, acc, 2);
            break;
        case 1:
            dot_tile_bf16(xb, wb, N, K, K32, n0, m0, k0, k1, acc_v + m0 * 4, acc, 1);
            break;
        default:
            break;
        }
    }
}

static inline __mmask16 mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* xb (K32): a row x (K) rounded to bfloat16 (to nearest, ties to even), zero-padded. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
round_row_bf16(uint16_t *xb, const float *x, int64_t K, int64_t K32) {
    for (int64_t k = 0; k < K32; k += 32) {
        __m512 lo = _mm512_maskz_loadu_ps(mask16(K - k), x + k);
        __m512 hi = _mm512_maskz_loadu_ps(mask16(K - k - 16), x + k + 16);
        _mm512_store_si512(xb + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
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

bool kern_gemv(float *y, const float *x, const float *w, const uint16_t *wb, const float *b,
               int64_t M, int64_t N, int64_t K, bool accumulate, bool bf16_products) {
    if (!have_avx512()) return false;
    bool dp = wb && bf16_products && kern_bf16_products_supported();
    if (!dp && M > (wb ? KERN_GEMV_BF16_MAX_M : KERN_GEMV_MAX_M)) return false;
    int64_t K32 = (K + 31) / 32 * 32;
    float *xp = NULL;
    uint16_t *xb = NULL;
    if (dp) {
        xb = mart_aligned_alloc((size_t)(M * K32) * sizeof(uint16_t));
#pragma omp parallel for schedule(static) if (M * K > 65536)
        for (int64_t m = 0; m < M; m++)
            round_row_bf16(xb + m * K32, x + m * K, K, K32);
    } else if (wb) {
        xp = mart_aligned_alloc((size_t)(M * K32) * sizeof(float));
        split_even_odd(xp, x, M, K, K32);
    }
    int64_t n_blocks = (N + GEMV_ROWS - 1) / GEMV_ROWS;
    /* Rows of x in chunks that stay in cache while the weights go by (BF16 products take
     * any M; the other paths one chunk at most). */
    for (int64_t m0 = 0; m0 < M; m0 += KERN_GEMV_BF16_MAX_M) {
        int64_t mc = M - m0 < KERN_GEMV_BF16_MAX_M ? M - m0 : KERN_GEMV_BF16_MAX_M;
        float *yc = y + m0 * N;
#pragma omp parallel for schedule(static) if (N * K > 32768)
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            float acc[KERN_GEMV_BF16_MAX_M * GEMV_ROWS];
            int64_t n0 = blk * GEMV_ROWS, nr = N - n0 < GEMV_ROWS ? N - n0 : GEMV_ROWS;
            if (dp)
                dot_block_bf16(xb + m0 * K32, wb, mc, N, K, K32, n0, acc);
            else if (wb)
                gemv_block_bf16(xp, wb, mc, N, K, K32, n0, acc);
            else
                gemv_block_f32(x, w, mc, N, K, n0, acc);
            for (int64_t m = 0; m < mc; m++)
                for (int64_t r = 0; r < nr; r++) {
                    float v = acc[m * GEMV_ROWS + r] + (b ? b[n0 + r] : 0.0f);
                    float *o = yc + m * N + n0 + r;
                    *o = accumulate ? *o + v : v;
                }
        }
    }
    mart_aligned_free(xp);
    mart_aligned_free(xb);
    return true;
}
