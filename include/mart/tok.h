/* tok: byte-level BPE tokenizers read from Hugging Face tokenizer.json (GPT-2, Qwen2/2.5/3,
 * Llama 3 kind), special tokens as single ids, decoding (also incremental, for streaming),
 * and the built-in byte tokenizer of the tiny model. Owns the vocabulary and merge tables. */
#ifndef MART_TOK_H
#define MART_TOK_H

#include "mart/core.h"

typedef struct tok_tokenizer tok_tokenizer;

/* Loads PATH, a tokenizer.json or a model directory holding one. Refuses other model kinds
 * (Unigram, WordPiece) with a message that says so; errors name the field. */
int tok_load(const char *path, tok_tokenizer **out, mart_err *err);
void tok_free(tok_tokenizer *t);

int32_t tok_vocab_size(const tok_tokenizer *t); /* largest id + 1, added tokens included */

/* Encodes text (len bytes, any bytes, not necessarily valid UTF-8). Special/added token
 * strings in the text become their ids; no BOS/EOS is added. Appends to *ids (realloc'd,
 * *n updated). Thread-safe for concurrent calls on one tokenizer. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t **ids,
               int64_t *n, mart_err *err);
/* Appends the bytes of ids to out (decode(encode(s)) == s for every byte string).
 * Errors on an id outside the vocabulary. Exception, as in Hugging Face: a tokenizer.json with
 * an NFC normalizer (Qwen's) encodes NFC(s), so there decode(encode(s)) == NFC(s), which is s
 * for text already in NFC; invalid UTF-8 bytes pass through NFC untouched. The built-in byte
 * tokenizer has no normalizer. */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, int64_t n, mart_buf *out,
               mart_err *err);
/* The raw bytes a token stands for (ByteLevel-decoded); NULL for an invalid id. */
const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len);
/* The id of a special/added token given its exact text (e.g. "<|im_end|>"), or -1. */
int32_t tok_special_id(const tok_tokenizer *t, const char *text);

/* Incremental decoder: emits text only when UTF-8 characters are complete. */
typedef struct {
    char pending[8];
    int32_t n_pending;
} tok_stream;
void tok_stream_init(tok_stream *s);
/* Appends to out what can be printed after token id. */
void tok_stream_push(tok_stream *s, const tok_tokenizer *t, int32_t id, mart_buf *out);
/* Flushes any incomplete bytes at the end. */
void tok_stream_flush(tok_stream *s, mart_buf *out);

/* The special tokens every mart tokenizer has (ChatML): <|endoftext|>, <|im_start|>,
 * <|im_end|>. */
extern const char *const tok_chatml_specials[];
extern const int tok_n_chatml_specials;

/* Builds the built-in byte-level tokenizer: 256 byte tokens, then `merges` BPE merges
 * learned from the corpus texts (0 = none), then the ChatML specials. */
int tok_build_bytes(const char *const *corpus, int64_t n_corpus, int32_t merges,
                    tok_tokenizer **out, mart_err *err);
/* Writes a standard Hugging Face tokenizer.json (atomically). */
int tok_save(const tok_tokenizer *t, const char *path, mart_err *err);

#endif
