/* tok: BPE tokenizers read from Hugging Face tokenizer.json: byte-level (GPT-2, Qwen2/2.5/3,
 * Llama 3 kind) and SentencePiece-style (Llama 2, Mistral, TinyLlama: Metaspace or
 * Prepend/Replace, byte fallback, unk), special tokens as single ids, BOS/EOS and the chat
 * template from tokenizer_config.json, decoding (also incremental, for streaming), and the
 * built-in byte tokenizer of the tiny model. Owns the vocabulary and merge tables. */
#ifndef MART_TOK_H
#define MART_TOK_H

#include "mart/core.h"

typedef struct tok_tokenizer tok_tokenizer;

/* Loads PATH, a tokenizer.json or a model directory holding one, and the tokenizer_config.json
 * beside it when there is one. Refuses other model kinds (Unigram, WordPiece) and pipeline
 * steps it does not implement with a message that says so; errors name the file and field. */
int tok_load(const char *path, tok_tokenizer **out, mart_err *err);
void tok_free(tok_tokenizer *t);

int32_t tok_vocab_size(const tok_tokenizer *t); /* largest id + 1, added tokens included */

/* Encodes text (len bytes, any bytes, not necessarily valid UTF-8). Special/added token
 * strings in the text become their ids; no BOS/EOS is added. Appends to *ids (realloc'd,
 * *n updated). Thread-safe for concurrent calls on one tokenizer. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t **ids,
               int64_t *n, mart_err *err);
/* Encodes like tok_encode, then adds BOS in front and EOS at the end where
 * tokenizer_config.json asks for them (add_bos_token, add_eos_token), as Hugging Face's
 * encode with add_special_tokens does. */
int tok_encode_specials(const tok_tokenizer *t, const char *text, size_t len, int32_t **ids,
                        int64_t *n, mart_err *err);
/* The ids of tokenizer_config.json's bos_token and eos_token, or -1 when it names none. */
int32_t tok_bos_id(const tok_tokenizer *t);
int32_t tok_eos_id(const tok_tokenizer *t);
/* tokenizer_config.json's chat_template (Jinja source, not interpreted by mart), or NULL. */
const char *tok_chat_template(const tok_tokenizer *t);

/* Appends the bytes of ids to out (decode(encode(s)) == s for every byte string).
 * Errors on an id outside the vocabulary. Exception, as in Hugging Face: a tokenizer.json with
 * an NFC normalizer (Qwen's) encodes NFC(s), so there decode(encode(s)) == NFC(s), which is s
 * for text already in NFC; invalid UTF-8 bytes pass through NFC untouched. The built-in byte
 * tokenizer has no normalizer. A SentencePiece-style tokenizer drops the space its
 * normalizer or Metaspace put in front of the text (the decoder's Strip), so there too
 * decode(encode(s)) == s, as in Hugging Face, except where s holds the metaspace U+2581 (it
 * comes back as a space) or special tokens (the text after one gets its own prefix space). */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, int64_t n, mart_buf *out,
               mart_err *err);
/* The raw bytes a token stands for (ByteLevel-decoded, or for SentencePiece-style tokens with
 * the metaspace as a space and <0xXX> as its byte); NULL for an invalid id. */
const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len);
/* The id of a special/added token given its exact text (e.g. "<|im_end|>"), or -1. */
int32_t tok_special_id(const tok_tokenizer *t, const char *text);

/* ---- the vocabulary as written, for exporters (GGUF) ---- */

/* What a token is, in GGUF's terms: an added special token is CONTROL, another added token
 * USER_DEFINED, model.unk_token UNKNOWN, a SentencePiece-style <0xXX> token BYTE, an id
 * without a token UNUSED, the rest NORMAL. */
typedef enum {
    TOK_KIND_NORMAL,
    TOK_KIND_UNKNOWN,
    TOK_KIND_CONTROL,
    TOK_KIND_USER_DEFINED,
    TOK_KIND_UNUSED,
    TOK_KIND_BYTE,
} tok_kind;
tok_kind tok_token_kind(const tok_tokenizer *t, int32_t id);
/* The token's string as tokenizer.json writes it (ByteLevel characters, or text with the
 * metaspace; an added token's content), or NULL for an id without a token. */
const char *tok_token_text(const tok_tokenizer *t, int32_t id);
/* True for a SentencePiece-style tokenizer (Llama 2 family), false for byte-level BPE. */
bool tok_is_sentencepiece(const tok_tokenizer *t);
/* model.unk_token's id, or -1. */
int32_t tok_unk_id(const tok_tokenizer *t);
/* Whether tok_encode_specials adds BOS / EOS. */
bool tok_adds_bos(const tok_tokenizer *t);
bool tok_adds_eos(const tok_tokenizer *t);
/* The BPE merges in rank order: merge `rank` (0 <= rank < tok_n_merges) joins ids *left and
 * *right into *merged. */
int32_t tok_n_merges(const tok_tokenizer *t);
void tok_merge_at(const tok_tokenizer *t, int32_t rank, int32_t *left, int32_t *right,
                  int32_t *merged);

/* Incremental decoder: emits text only when UTF-8 characters are complete; the pushes from
 * tok_stream_init on give the bytes tok_decode gives for the whole sequence. */
typedef struct {
    char pending[8];
    int32_t n_pending;
    int32_t n_stripped; /* leading spaces dropped so far (the decoder's Strip) */
    bool started;       /* some byte other than a stripped space was seen */
} tok_stream;
void tok_stream_init(tok_stream *s);
/* Appends to out what can be printed after token id (nothing for an invalid id). */
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
/* Writes a standard Hugging Face tokenizer.json (atomically). A SentencePiece-style tokenizer
 * is written back as it was read. */
int tok_save(const tok_tokenizer *t, const char *path, mart_err *err);

#endif
