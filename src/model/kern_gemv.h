/* kern_gemv: the small-M path of kern_linear (decoding), and the registry of BF16 copies of
 * weights it can read instead of the float32 ones. Private to src/model and src/gen. */
#ifndef MART_MODEL_KERN_GEMV_H
#define MART_MODEL_KERN_GEMV_H

#include <stdbool.h>
#include <stdint.h>

/* Largest M (rows of x) the small-M path takes from float32 weights; above it sgemm is as
 * fast. From BF16 copies with exact products it takes up to KERN_GEMV_BF16_MAX_M rows (a
 * decoding step of a large batch): reading half the bytes and never repacking the weights, it
 * beats sgemm. With BF16 products (see kern_gemv_bf16_products) it takes any M, in chunks of
 * KERN_GEMV_BF16_MAX_M rows: twice sgemm's arithmetic rate, and the same sums for a row
 * whatever M is (a prefill's products are a decoding step's). */
#define KERN_GEMV_MAX_M 4
#define KERN_GEMV_BF16_MAX_M 64

/* y (M, N) = x (M, K) · w (N, K)^T + b (N) (or += with accumulate), as kern_linear. Returns
 * false, doing nothing, when M is above the limits above or the CPU lacks AVX-512 (the
 * caller then uses sgemm). Reads w's BF16 copy when one is registered. */
bool kern_gemv(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t N,
               int64_t K, bool accumulate);

/* Makes a BF16 copy of the n weights at w when every one of them is exactly a bfloat16 value
 * (as after loading a BF16 checkpoint), so that kern_gemv reads half the bytes with the same
 * results. Returns whether a copy exists now. The copy is stale once w changes: whoever
 * registers must unregister before the weights are updated. Not thread-safe (call outside
 * parallel regions). */
bool kern_gemv_register_bf16(const float *w, int64_t n);
/* Drops one registration of w; the copy goes with the last one. */
void kern_gemv_unregister(const float *w);
/* Turns the small-M path on (default) or off (benchmarks compare it with sgemm). */
void kern_gemv_enable(bool on);
/* Turns BF16 products on or off (off by default: the generation engine turns them on around
 * its forward passes, as gen_config.bf16_products says); returns the previous setting. On,
 * products with a BF16 copy round x to bfloat16 (to nearest even) and use the CPU's BF16
 * dot products (AVX512_BF16, twice the multiply-adds of float32 FMAs), keeping float32 sums,
 * like BF16 inference engines: results differ from the float32 product by about 1e-3
 * relative. Off, x stays float32 and the results are the float32 product's. On, a row of y
 * does not depend on the other rows of x (bitwise: every dot product is summed in the same
 * order whatever M is). Without AVX512_BF16 the setting has no effect (off). Not
 * thread-safe: set it outside parallel regions. */
bool kern_gemv_bf16_products(bool on);
/* Whether this CPU has the BF16 dot products (AVX512_BF16). */
bool kern_gemv_bf16_products_supported(void);

#endif
