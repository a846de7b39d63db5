/* kern_gemv: the small-M path of kern_linear (decoding), and the BF16 copies of weights it can
 * read instead of the float32 ones. Private to src/model (the CPU backend). */
#ifndef MART_MODEL_KERN_GEMV_H
#define MART_MODEL_KERN_GEMV_H

#include <stdbool.h>
#include <stdint.h>

/* Largest M (rows of x) the small-M path takes from float32 weights; above it sgemm is as
 * fast. From BF16 copies with exact products it takes up to KERN_GEMV_BF16_MAX_M rows (a
 * decoding step of a large batch): reading half the bytes and never repacking the weights, it
 * beats sgemm. With BF16 products it takes any M, in chunks of
 * KERN_GEMV_BF16_MAX_M rows: twice sgemm's arithmetic rate, and the same sums for a row
 * whatever M is (a prefill's products are a decoding step's). */
#define KERN_GEMV_MAX_M 4
#define KERN_GEMV_BF16_MAX_M 64

/* y (M, N) = x (M, K) · w (N, K)^T + b (N) (or += with accumulate), as kern_linear. wb: w's
 * BF16 copy (kern_bf16_copy) or NULL. With bf16_products and a copy, x is rounded to bfloat16
 * (to nearest even) and multiplied by the CPU's BF16 dot products (AVX512_BF16, twice the
 * multiply-adds of float32 FMAs), keeping float32 sums, like BF16 inference engines: results
 * differ from the float32 product by about 1e-3 relative, and a row of y does not depend on
 * the other rows of x (every dot product is summed in the same order whatever M is). Without
 * AVX512_BF16, bf16_products has no effect. Returns false, doing nothing, when M is above
 * the limits above or the CPU lacks AVX-512 (the caller then uses sgemm). */
bool kern_gemv(float *y, const float *x, const float *w, const uint16_t *wb, const float *b,
               int64_t M, int64_t N, int64_t K, bool accumulate, bool bf16_products);

/* A BF16 copy of the n weights at w when every one of them is exactly a bfloat16 value (as
 * after loading a BF16 checkpoint) and the CPU has AVX-512 (the kernels that read it); NULL
 * otherwise. kern_gemv reads the copy with the same results as w (exact products), half the
 * bytes. Free with mart_aligned_free. The copy is stale once w changes. */
uint16_t *kern_bf16_copy(const float *w, int64_t n);
/* Whether this CPU has the BF16 dot products (AVX512_BF16). */
bool kern_bf16_products_supported(void);

#endif
