/* gguf: llama.cpp's GGUF format (version 3) for mart's models: export with the metadata and
 * tokenizer a loader needs (architectures qwen2 and llama), tensors under GGUF's names in
 * F32, BF16 or Q8_0; and import of such a file back into a model. */
#ifndef MART_GGUF_H
#define MART_GGUF_H

#include "mart/model.h"
#include "mart/tok.h"

/* Data alignment of the tensor section (GGUF's default, written as general.alignment). */
#define GGUF_ALIGNMENT 32
/* Q8_0: blocks of 32 weights, one F16 scale and 32 int8 (ggml's block_q8_0). */
#define GGUF_Q8_0_BLOCK 32

typedef enum { GGUF_F32, GGUF_BF16, GGUF_Q8_0 } gguf_dtype;

/* Writes model m (not modified) with tokenizer t to path, atomically. Weight matrices are
 * stored in dtype; norms and biases stay F32, and with Q8_0 a matrix whose rows are not a
 * multiple of 32 long stays F32 (as llama.cpp's converter keeps what it cannot quantize).
 * For llama the q/k rows are permuted to GGML's rotary layout, as llama.cpp's converter does.
 * tokenizer.ggml.model is "llama" for a SentencePiece-style tokenizer (tokens, scores = minus
 * the rank of the merge making the token, types) and "gpt2" for byte-level BPE (tokens,
 * types, merges); ids past the tokenizer's vocabulary are "[PADn]" tokens of type UNUSED.
 * name: general.name. Errors: a tokenizer larger than the model's vocabulary, I/O. */
int gguf_export(const model *m, const tok_tokenizer *t, const char *name, gguf_dtype dtype,
                const char *path, mart_err *err);

/* Reads a GGUF file of architecture qwen2 or llama (tensors F32, F16, BF16 or Q8_0) into a
 * new frozen model (cfg.dtype F32, which holds every value read exactly). Every
 * offset, size and count is checked against the file; errors name the key or tensor. */
int gguf_import(const char *path, model **out, mart_err *err);

#endif
