/* tok internals shared by the files of src/tok (not a public header). The tokenizer works on
 * raw bytes end to end: ByteLevel's byte-to-unicode mapping is undone once at load time, so
 * BPE merges are looked up by (left id, right id) and decoding is a table lookup per id. */
#ifndef MART_TOK_INTERNAL_H
#define MART_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "mart/tok.h"

/* Open-addressing map from a byte string to an int32 (token string -> id). Keys point into
 * memory owned elsewhere (the tokenizer's arenas). */
typedef struct {
    const char *key;
    uint32_t len;
    int32_t val; /* -1 marks an empty slot */
} tok_strmap_slot;
typedef struct {
    tok_strmap_slot *slot; /* (cap), one cache line holds 4 slots */
    uint64_t cap, n;       /* cap is a power of two */
} tok_strmap;

void tok_strmap_init(tok_strmap *m, uint64_t expected);
void tok_strmap_free(tok_strmap *m);
/* Inserts key -> val unless key is present; returns the value stored for key. */
int32_t tok_strmap_put(tok_strmap *m, const char *key, uint32_t len, int32_t val);
int32_t tok_strmap_get(const tok_strmap *m, const char *key, uint32_t len); /* -1 if absent */
uint64_t tok_hash_bytes(const void *p, size_t n);

/* One BPE merge: the pair (left, right) of ids becomes id `merged`; lower rank merges first. */
typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX marks an empty slot */
    int32_t rank;
    int32_t merged;
} tok_merge_slot;

typedef enum {
    TOK_SPLIT_ISOLATED,             /* matches and the text between them become pieces */
    TOK_SPLIT_REMOVED,              /* matches are dropped */
    TOK_SPLIT_MERGED_WITH_PREVIOUS, /* each match is glued to the piece before it */
    TOK_SPLIT_MERGED_WITH_NEXT,     /* each match is glued to the piece after it */
    TOK_SPLIT_CONTIGUOUS,           /* runs of adjacent matches become one piece */
} tok_split_behavior;

/* When Metaspace prepends its replacement: to every section, to the section at the start of
 * the text only, or never. */
typedef enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok_prepend_scheme;

/* One pre-tokenizer step, in order. ByteLevel needs no work on raw bytes except its optional
 * regex (the GPT-2 pattern) and prefix space, so it is a Split step with those flags. */
typedef struct {
    char *pattern;        /* regex source as written in tokenizer.json (NULL: none) */
    bool pattern_literal; /* pattern is a plain String, not a Regex */
    pcre2_code *re;       /* compiled; NULL when pattern is NULL */
    bool jit;             /* re is JIT-compiled: matched with pcre2_jit_match (fewer checks) */
    tok_split_behavior behavior;
    bool invert;
    bool byte_level;       /* this is a ByteLevel step */
    bool add_prefix_space; /* ByteLevel: prepend ' ' to a piece not starting with one */
    /* Metaspace: spaces become `replacement` (also the split pattern when it splits), and
     * the replacement is prepended to a piece not starting with it (per prepend). */
    char *replacement;
    tok_prepend_scheme prepend;
} tok_pre_step;

/* One normalizer step, in order: NFC, Prepend (`text` before a non-empty section) or Replace
 * (every occurrence of the literal `text` becomes `with`). */
typedef enum { TOK_NORM_NFC, TOK_NORM_PREPEND, TOK_NORM_REPLACE } tok_norm_kind;
typedef struct {
    tok_norm_kind kind;
    char *text, *with; /* owned; NULL where the kind has none */
} tok_norm_step;

/* An added/special token, matched in the raw text before anything else. */
typedef struct {
    char *content; /* bytes */
    uint32_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* Cache of pre-token bytes -> ids, shared by all threads. Sharded: each shard has its own
 * lock, so concurrent encodes rarely wait. */
#define TOK_CACHE_SHARDS 64
#define TOK_CACHE_SLOTS 4096   /* per shard; a full shard is cleared */
#define TOK_CACHE_MAX_PIECE 48 /* longer pieces are not cached */
typedef struct {
    pthread_mutex_t lock;
    uint64_t *hash; /* (TOK_CACHE_SLOTS) 0 = empty */
    uint32_t *off;  /* (TOK_CACHE_SLOTS) entry offset in arena */
    char *arena;    /* entries: u16 key_len, u16 n_ids, key bytes, int32 ids (packed) */
    size_t arena_len, arena_cap;
    uint32_t n;
} tok_cache_shard;

struct tok_tokenizer {
    int32_t vocab_size; /* largest id + 1 */
    /* Per id: the raw bytes the token stands for, and the token's string as written in
     * tokenizer.json (ByteLevel form; NULL for ids not in model.vocab). */
    char *bytes_arena;   /* all decoded bytes, back to back */
    uint64_t *bytes_off; /* (vocab_size + 1); bytes of id i are [off[i], off[i+1]) */
    bool *valid;         /* (vocab_size) id is defined */
    char **vocab_str;    /* (vocab_size) model.vocab strings (in vocab_block); NULL where absent */
    char *vocab_block;   /* all model.vocab strings, NUL-terminated, back to back */
    int32_t n_model_vocab; /* entries in model.vocab */
    int32_t byte_id[256];  /* id of the single-byte token of each byte; -1 if missing */

    tok_merge_slot *merges; /* (merge_cap) open addressing */
    uint64_t merge_cap;
    int32_t n_merges;
    int32_t (*merge_list)[2]; /* (n_merges, 2) left and right ids by rank, for saving */

    tok_added *added; /* (n_added) */
    int32_t n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */

    bool nfc;            /* normalizer is exactly NFC (what tok_save writes back) */
    tok_norm_step *norm; /* (n_norm) */
    int32_t n_norm;
    tok_pre_step *pre; /* (n_pre) */
    int32_t n_pre;
    bool ignore_merges;   /* BPE.ignore_merges: a piece that is a vocab token is taken whole */
    /* Token string -> id: the ByteLevel-decoded bytes, or for char_level the string as
     * written. Built when ignore_merges or char_level. */
    tok_strmap vocab_map;

    /* SentencePiece-style BPE (no ByteLevel step): pieces are text, BPE starts from their
     * characters looked up in model.vocab; a character outside it becomes its UTF-8 bytes'
     * <0xXX> tokens (byte_fallback, when all exist) or unk_id (runs fused with fuse_unk). */
    bool char_level;
    bool byte_fallback, fuse_unk;
    int32_t unk_id;        /* -1: none */
    int32_t byte_tok[256]; /* id of "<0xXX>" for each byte; -1 if missing */
    /* Decoder (char_level): per token, `dec_from` becomes `dec_to` and <0xXX> tokens become
     * their byte (dec_byte_fallback); then up to dec_strip leading spaces of the whole text
     * are dropped (Strip after Fuse, or Metaspace's prefix space). */
    char *dec_from, *dec_to; /* NULL: no replacement */
    bool dec_byte_fallback;
    int32_t dec_strip;
    char *source_json; /* the file as read, kept when tok_save could not write the pipeline
                        * (char_level, other normalizers than NFC); NUL-terminated */

    /* From tokenizer_config.json beside tokenizer.json (when there is one). */
    int32_t bos_id, eos_id; /* -1: none named */
    bool add_bos, add_eos;  /* tok_encode_specials adds them */
    char *chat_template;    /* NULL: none */

    tok_cache_shard cache[TOK_CACHE_SHARDS];
};

/* Bytes -> ByteLevel unicode code point (GPT-2's bytes_to_unicode) and its inverse. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the mapping */
/* Encodes one code point as UTF-8 into out (>= 4 bytes); returns its length. */
int tok_utf8_put(uint32_t cp, char *out);
/* Decodes one UTF-8 character at s (n bytes available). Returns its length (1..4) and sets
 * *cp, or 0 if the bytes there are not a valid, complete character. */
int tok_utf8_get(const char *s, size_t n, uint32_t *cp);

/* Allocates the parts common to every tokenizer (cache); compiles pre-tokenizer regexes. */
void tok_init_common(tok_tokenizer *t);
int tok_compile_pre(tok_tokenizer *t, mart_err *err);
/* Builds bytes_arena/bytes_off from vocab_str and added tokens. */
void tok_build_bytes_table(tok_tokenizer *t);
/* Inserts merge (left, right) -> merged at the next rank. */
void tok_merges_reserve(tok_tokenizer *t, int64_t n);
void tok_merge_add(tok_tokenizer *t, int32_t left, int32_t right, int32_t merged);
/* Looks up a merge; returns its slot or NULL. */
const tok_merge_slot *tok_merge_find(const tok_tokenizer *t, int32_t left, int32_t right);

/* The Qwen2 pre-tokenizer regex (also used by the built-in tokenizer). */
extern const char tok_qwen_pattern[];
extern const char tok_gpt2_pattern[];

/* Runs the normalizer and pre-tokenizer over text (no added-token matching) and calls fn on
 * each piece, as BPE would see it. Used by the trainer. */
int tok_pretokenize(const tok_tokenizer *t, const char *text, size_t len,
                    void (*fn)(void *ctx, const char *piece, size_t n), void *ctx, mart_err *err);

/* NFC normalization of UTF-8 text; invalid bytes pass through unchanged. Appends to out. */
void tok_nfc(const char *s, size_t n, mart_buf *out);
/* True when s is certainly already NFC (cheap check); false means "maybe not". */
bool tok_nfc_quick(const char *s, size_t n);

#endif
