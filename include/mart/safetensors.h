/* safetensors: reading (memory-mapped, fully validated header) and atomic writing of the
 * Hugging Face safetensors format. Used for model weights, and for any other named tensors
 * mart keeps on disk (optimizer states in RL checkpoints, parity-test references). */
#ifndef MART_SAFETENSORS_H
#define MART_SAFETENSORS_H

#include "mart/model.h"

/* One tensor: a view into memory (or into the mapped file when read). */
typedef struct {
    const char *name;
    mart_dtype dtype;
    int32_t ndim;
    int64_t shape[4];
    const void *data; /* numel * dtype size bytes, little-endian */
} st_view;

typedef struct st_file st_file;

/* Maps PATH and validates its header: JSON well-formed, every dtype known, offsets inside
 * the file, in order and non-overlapping, sizes matching shapes. Errors name the file and
 * the tensor. */
int st_open(const char *path, st_file **out, mart_err *err);
void st_close(st_file *f);
int32_t st_count(const st_file *f);
const st_view *st_get(const st_file *f, int32_t i);
const st_view *st_find(const st_file *f, const char *name); /* NULL when absent */
/* The "__metadata__" value for key, or NULL. */
const char *st_metadata(const st_file *f, const char *key);

/* Converts a tensor to F32 (F32, BF16 or F16 source) into dst (numel floats). */
void st_to_f32(const st_view *t, float *dst);

/* Writes tensors (each st_view's data in its dtype) to PATH atomically, with optional
 * string metadata (n_meta key/value pairs, may be 0). */
int st_save(const char *path, const st_view *tensors, int32_t n, const char *const *meta_keys,
            const char *const *meta_values, int32_t n_meta, mart_err *err);

/* Bytes per element of a dtype. */
size_t st_dtype_size(mart_dtype d);

/* The path the file was opened with (for error messages). */
const char *st_path(const st_file *f);
/* Drops the mapped pages of tensor t from this process's memory once it has been converted
 * (the view stays valid: touching it again reads the file back). Keeps peak memory of a
 * large checkpoint load near the size of the F32 parameters alone. */
void st_release(const st_file *f, const st_view *t);

/* F32 to BF16 / F16 with round-to-nearest-even (NaN stays NaN, overflow gives infinity). */
uint16_t st_f32_to_bf16(float x);
uint16_t st_f32_to_f16(float x);
/* Converts n floats to dtype d into dst (n * st_dtype_size(d) bytes). */
void st_from_f32(const float *src, int64_t n, mart_dtype d, void *dst);

/* Streaming variant of st_save: tensors[i].data may be NULL; fill(ctx, i, &tensors[i], dst)
 * writes tensor i's bytes (numel * dtype size) into dst just before it is written, so a
 * large checkpoint is converted one tensor at a time instead of all at once. */
typedef void (*st_fill_fn)(void *ctx, int32_t i, const st_view *t, void *dst);
int st_save_with(const char *path, const st_view *tensors, int32_t n,
                 const char *const *meta_keys, const char *const *meta_values, int32_t n_meta,
                 st_fill_fn fill, void *ctx, mart_err *err);

#endif
