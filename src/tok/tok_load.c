/* tok: reading Hugging Face tokenizer.json (byte-level or SentencePiece-style BPE) with the
 * tokenizer_config.json beside it, and freeing tokenizers. */
#include "tok/tok_internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The pre-tokenizer regex of Qwen2/2.5/3 (as in their tokenizer.json). */
const char tok_qwen_pattern[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* ByteLevel's built-in regex (GPT-2), used when a ByteLevel step has use_regex = true. */
const char tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char *const tok_chatml_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
const int tok_n_chatml_specials = 3;

void tok_init_common(tok_tokenizer *t) {
    for (int i = 0; i < TOK_CACHE_SHARDS; i++)
        pthread_mutex_init(&t->cache[i].lock, NULL);
    t->unk_id = t->bos_id = t->eos_id = -1;
}

int tok_compile_pre(tok_tokenizer *t, mart_err *err) {
    for (int32_t i = 0; i < t->n_pre; i++) {
        tok_pre_step *s = &t->pre[i];
        if (!s->pattern) continue;
        /* UTF mode with Unicode properties; invalid UTF-8 in the text is allowed and simply
         * never matches, so arbitrary bytes still tokenize (and round-trip). */
        uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
        opts |= s->pattern_literal ? PCRE2_LITERAL : PCRE2_UCP; /* LITERAL refuses UCP */
        int code;
        PCRE2_SIZE off;
        s->re =
            pcre2_compile((PCRE2_SPTR)s->pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
        if (!s->re) {
            char msg[256];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
            return mart_fail(err, "pre_tokenizer step %d: regex does not compile at offset %zu: %s",
                             (int)i, (size_t)off, msg);
        }
        /* Without JIT (unsupported CPU) the interpreter is used. */
        s->jit = pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE) == 0;
    }
    return MART_OK;
}

/* ByteLevel decoder: every character maps back to one byte; a token with a character outside
 * the mapping is taken as its UTF-8 text (as Hugging Face does). */
static void append_byte_level_token(const char *s, mart_buf *b) {
    size_t n = strlen(s), start = b->len;
    for (size_t k = 0; k < n;) {
        uint32_t cp;
        int l = tok_utf8_get(s + k, n - k, &cp);
        int byte = l ? tok_cp_to_byte(cp) : -1;
        if (byte < 0) {
            b->len = start;
            mart_buf_append(b, s, n);
            return;
        }
        char c = (char)byte;
        mart_buf_append(b, &c, 1);
        k += (size_t)l;
    }
}

/* The byte a "<0xXX>" token stands for, or -1 for any other string. */
static int byte_token_value(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    if (strlen(s) != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!s[3] || !s[4] || !hi || !lo) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

/* SentencePiece-style decoder of one token: <0xXX> is its byte (with ByteFallback), other
 * tokens are their text with dec_from replaced by dec_to. */
static void append_char_level_token(const tok_tokenizer *t, const char *s, mart_buf *b) {
    int byte = t->dec_byte_fallback ? byte_token_value(s) : -1;
    if (byte >= 0) {
        char c = (char)byte;
        mart_buf_append(b, &c, 1);
        return;
    }
    size_t from_len = t->dec_from ? strlen(t->dec_from) : 0;
    while (*s) {
        if (from_len && !strncmp(s, t->dec_from, from_len)) {
            mart_buf_append(b, t->dec_to, strlen(t->dec_to));
            s += from_len;
        } else {
            mart_buf_append(b, s++, 1);
        }
    }
}

void tok_build_bytes_table(tok_tokenizer *t) {
    int32_t V = t->vocab_size;
    mart_buf b = {0};
    t->bytes_off = mart_xmalloc(((size_t)V + 1) * sizeof *t->bytes_off);
    const char **added_of = mart_xcalloc((size_t)V, sizeof *added_of);
    uint32_t *added_len = mart_xcalloc((size_t)V, sizeof *added_len);
    for (int32_t i = 0; i < t->n_added; i++) {
        added_of[t->added[i].id] = t->added[i].content;
        added_len[t->added[i].id] = t->added[i].len;
    }
    for (int32_t id = 0; id < V; id++) {
        t->bytes_off[id] = b.len;
        if (added_of[id]) {
            /* Added tokens decode to exactly the text that encodes to them. */
            mart_buf_append(&b, added_of[id], added_len[id]);
            continue;
        }
        const char *s = t->vocab_str[id];
        if (!s) continue;
        if (t->char_level)
            append_char_level_token(t, s, &b);
        else
            append_byte_level_token(s, &b);
    }
    t->bytes_off[V] = b.len;
    mart_buf_append(&b, "", 1);
    t->bytes_arena = b.data;
    free(added_of);
    free(added_len);
    for (int b8 = 0; b8 < 256; b8++)
        t->byte_id[b8] = t->byte_tok[b8] = -1;
    memset(t->added_first, 0, sizeof t->added_first);
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].len) t->added_first[(unsigned char)t->added[i].content[0]] = 1;
    if (t->char_level) {
        tok_strmap_init(&t->vocab_map, (uint64_t)V);
        for (int32_t id = 0; id < V; id++) {
            if (!t->vocab_str[id]) continue;
            tok_strmap_put(&t->vocab_map, t->vocab_str[id], (uint32_t)strlen(t->vocab_str[id]), id);
            int byte = byte_token_value(t->vocab_str[id]);
            if (byte >= 0 && t->byte_tok[byte] < 0) t->byte_tok[byte] = id;
        }
        return;
    }
    /* Single-byte tokens of model.vocab (not added tokens) are the BPE alphabet. */
    bool *is_added = mart_xcalloc((size_t)V, sizeof *is_added);
    for (int32_t i = 0; i < t->n_added; i++)
        is_added[t->added[i].id] = true;
    for (int32_t id = V - 1; id >= 0; id--)
        if (t->vocab_str[id] && !is_added[id] && t->bytes_off[id + 1] - t->bytes_off[id] == 1)
            t->byte_id[(unsigned char)t->bytes_arena[t->bytes_off[id]]] = id;
    free(is_added);
    if (!t->ignore_merges) return;
    tok_strmap_init(&t->vocab_map, (uint64_t)V);
    for (int32_t id = 0; id < V; id++)
        if (t->vocab_str[id])
            tok_strmap_put(&t->vocab_map, t->bytes_arena + t->bytes_off[id],
                           (uint32_t)(t->bytes_off[id + 1] - t->bytes_off[id]), id);
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    free(t->vocab_str);
    free(t->vocab_block);
    free(t->valid);
    free(t->bytes_arena);
    free(t->bytes_off);
    free(t->merges);
    free(t->merge_list);
    for (int32_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    for (int32_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].text);
        free(t->norm[i].with);
    }
    free(t->norm);
    free(t->dec_from);
    free(t->dec_to);
    free(t->source_json);
    free(t->chat_template);
    for (int32_t i = 0; i < t->n_pre; i++) {
        free(t->pre[i].replacement);
        free(t->pre[i].pattern);
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
    }
    free(t->pre);
    tok_strmap_free(&t->vocab_map);
    for (int i = 0; i < TOK_CACHE_SHARDS; i++) {
        pthread_mutex_destroy(&t->cache[i].lock);
        free(t->cache[i].hash);
        free(t->cache[i].off);
        free(t->cache[i].arena);
    }
    free(t);
}

/* ---- tokenizer.json -------------------------------------------------------------------- */

static bool json_flag(const cJSON *o, const char *name, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *json_type(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static tok_pre_step *pre_push(tok_tokenizer *t) {
    t->pre = mart_xrealloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *t->pre);
    tok_pre_step *s = &t->pre[t->n_pre++];
    memset(s, 0, sizeof *s);
    return s;
}

/* Reads a Metaspace pre-tokenizer's or decoder's replacement and prepend scheme (the
 * current "prepend_scheme", or the older "add_prefix_space" flag). */
static int metaspace_config(const cJSON *p, const char *field, char **replacement,
                            tok_prepend_scheme *prepend, mart_err *err) {
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(p, "replacement");
    if (!cJSON_IsString(rep) || !rep->valuestring[0])
        return mart_fail(err, "%s.replacement: missing or not a non-empty string", field);
    const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
    if (cJSON_IsString(scheme)) {
        static const char *const names[] = {"always", "first", "never"};
        int k = 0;
        while (k < 3 && strcmp(scheme->valuestring, names[k]))
            k++;
        if (k == 3)
            return mart_fail(err, "%s.prepend_scheme: unknown value \"%s\"", field,
                             scheme->valuestring);
        *prepend = (tok_prepend_scheme)k;
    } else {
        *prepend = json_flag(p, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    }
    *replacement = mart_xstrdup(rep->valuestring);
    return MART_OK;
}

/* Reads one pre-tokenizer (recursing into Sequence). `field` names it in messages. */
static int load_pre(tok_tokenizer *t, const cJSON *p, const char *field, bool *has_byte_level,
                    mart_err *err) {
    const char *type = json_type(p);
    if (!type) return mart_fail(err, "%s.type: missing or not a string", field);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return mart_fail(err, "%s.pretokenizers: missing or not an array", field);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, i++);
            if (load_pre(t, it, sub, has_byte_level, err) != MART_OK) return MART_ERR;
        }
        return MART_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        *has_byte_level = true;
        tok_pre_step *s = pre_push(t);
        s->byte_level = true;
        s->add_prefix_space = json_flag(p, "add_prefix_space", true);
        if (json_flag(p, "use_regex", true)) s->pattern = mart_xstrdup(tok_gpt2_pattern);
        s->behavior = TOK_SPLIT_ISOLATED;
        return MART_OK;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (!cJSON_IsString(re) && !cJSON_IsString(str))
            return mart_fail(err, "%s.pattern: needs a \"Regex\" or \"String\" string", field);
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!cJSON_IsString(beh))
            return mart_fail(err, "%s.behavior: missing or not a string", field);
        static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
        int b = -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(beh->valuestring, names[k])) b = k;
        if (b < 0)
            return mart_fail(err, "%s.behavior: unknown value \"%s\"", field, beh->valuestring);
        tok_pre_step *s = pre_push(t);
        s->pattern = mart_xstrdup(cJSON_IsString(re) ? re->valuestring : str->valuestring);
        s->pattern_literal = !cJSON_IsString(re);
        s->behavior = (tok_split_behavior)b;
        s->invert = json_flag(p, "invert", false);
        return MART_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        tok_pre_step *s = pre_push(t);
        if (metaspace_config(p, field, &s->replacement, &s->prepend, err) != MART_OK)
            return MART_ERR;
        if (json_flag(p, "split", false)) {
            s->pattern = mart_xstrdup(s->replacement);
            s->pattern_literal = true;
            s->behavior = TOK_SPLIT_MERGED_WITH_NEXT;
        }
        return MART_OK;
    }
    return mart_fail(err,
                     "%s.type: pre-tokenizer \"%s\" is not supported (mart reads BPE "
                     "tokenizers: Sequence, Split, ByteLevel, Metaspace)",
                     field, type);
}

static tok_norm_step *norm_push(tok_tokenizer *t, tok_norm_kind kind) {
    t->norm = mart_xrealloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *t->norm);
    tok_norm_step *s = &t->norm[t->n_norm++];
    *s = (tok_norm_step){kind, NULL, NULL};
    return s;
}

/* The literal string of a {"String": "..."} pattern; NULL (with a message) otherwise. */
static const char *string_pattern(const cJSON *o, const char *field, mart_err *err) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
    if (cJSON_IsString(str) && str->valuestring[0]) return str->valuestring;
    mart_fail(err, "%s.pattern: only a non-empty {\"String\": ...} pattern is supported", field);
    return NULL;
}

static int load_normalizer(tok_tokenizer *t, const cJSON *n, const char *field, mart_err *err) {
    if (!n || cJSON_IsNull(n)) return MART_OK;
    const char *type = json_type(n);
    if (!type) return mart_fail(err, "%s.type: missing or not a string", field);
    if (!strcmp(type, "NFC")) {
        norm_push(t, TOK_NORM_NFC);
        return MART_OK;
    }
    if (!strcmp(type, "Prepend")) {
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(n, "prepend");
        if (!cJSON_IsString(pre))
            return mart_fail(err, "%s.prepend: missing or not a string", field);
        norm_push(t, TOK_NORM_PREPEND)->text = mart_xstrdup(pre->valuestring);
        return MART_OK;
    }
    if (!strcmp(type, "Replace")) {
        const char *from = string_pattern(n, field, err);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(n, "content");
        if (!from) return MART_ERR;
        if (!cJSON_IsString(content))
            return mart_fail(err, "%s.content: missing or not a string", field);
        tok_norm_step *s = norm_push(t, TOK_NORM_REPLACE);
        s->text = mart_xstrdup(from);
        s->with = mart_xstrdup(content->valuestring);
        return MART_OK;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return mart_fail(err, "%s.normalizers: missing or not an array", field);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", field, i++);
            if (load_normalizer(t, it, sub, err) != MART_OK) return MART_ERR;
        }
        return MART_OK;
    }
    return mart_fail(err,
                     "%s.type: normalizer \"%s\" is not supported (NFC, Prepend, Replace, "
                     "Sequence)",
                     field, type);
}

/* Reads a SentencePiece-style decoder: Metaspace, or a Sequence of Replace, ByteFallback,
 * Fuse and Strip (Llama's), into t->dec_*. */
static int load_char_decoder(tok_tokenizer *t, const cJSON *d, const char *field, bool *fused,
                             mart_err *err) {
    const char *type = json_type(d);
    if (!type) return mart_fail(err, "%s.type: missing or not a string", field);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list))
            return mart_fail(err, "%s.decoders: missing or not an array", field);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.decoders[%d]", field, i++);
            if (load_char_decoder(t, it, sub, fused, err) != MART_OK) return MART_ERR;
        }
        return MART_OK;
    }
    bool metaspace = !strcmp(type, "Metaspace");
    if (metaspace || !strcmp(type, "Replace")) {
        if (t->dec_from) return mart_fail(err, "%s: a second replacement is not supported", field);
        if (metaspace) {
            tok_prepend_scheme scheme;
            if (metaspace_config(d, field, &t->dec_from, &scheme, err) != MART_OK) return MART_ERR;
            t->dec_to = mart_xstrdup(" ");
            if (scheme != TOK_PREPEND_NEVER) t->dec_strip = 1;
            return MART_OK;
        }
        const char *from = string_pattern(d, field, err);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (!from) return MART_ERR;
        if (!cJSON_IsString(content))
            return mart_fail(err, "%s.content: missing or not a string", field);
        t->dec_from = mart_xstrdup(from);
        t->dec_to = mart_xstrdup(content->valuestring);
        return MART_OK;
    }
    if (!strcmp(type, "ByteFallback")) {
        t->dec_byte_fallback = true;
        return MART_OK;
    }
    if (!strcmp(type, "Fuse")) {
        *fused = true;
        return MART_OK;
    }
    if (!strcmp(type, "Strip")) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!cJSON_IsString(content) || strcmp(content->valuestring, " "))
            return mart_fail(err, "%s.content: only \" \" is supported", field);
        if (!cJSON_IsNumber(start) || start->valuedouble < 0 || start->valuedouble > 64)
            return mart_fail(err, "%s.start: missing or not an integer in [0, 64]", field);
        if (cJSON_IsNumber(stop) && stop->valuedouble != 0)
            return mart_fail(err, "%s.stop: only 0 is supported", field);
        /* Before Fuse, Strip would act on every token, not on the text. */
        if (!*fused) return mart_fail(err, "%s: Strip is supported after Fuse only", field);
        t->dec_strip = (int32_t)start->valuedouble;
        return MART_OK;
    }
    return mart_fail(err,
                     "%s.type: decoder \"%s\" is not supported with a SentencePiece-style BPE "
                     "(Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)",
                     field, type);
}

/* Splits a merge into its two halves: "a b" or ["a", "b"]. */
static bool merge_parts(const cJSON *m, char *tmp, size_t cap, const char **a, const char **b) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring;
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1]) return false;
        size_t la = (size_t)(sp - s);
        if (la + 1 > cap) return false;
        memcpy(tmp, s, la);
        tmp[la] = 0;
        *a = tmp;
        *b = sp + 1;
        return true;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = m->child, *y = m->child->next;
        if (!cJSON_IsString(x) || !cJSON_IsString(y)) return false;
        *a = x->valuestring;
        *b = y->valuestring;
        return true;
    }
    return false;
}

static int load_json(tok_tokenizer *t, const cJSON *root, mart_err *err) {
    if (!cJSON_IsObject(root)) return mart_fail(err, "the top level is not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return mart_fail(err, "missing field \"model\" (or not an object)");
    const char *mtype = json_type(model);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (mtype &&
        (!strcmp(mtype, "Unigram") || !strcmp(mtype, "WordPiece") || !strcmp(mtype, "WordLevel")))
        return mart_fail(err,
                         "model.type: \"%s\" tokenizers are not supported (%s); mart reads "
                         "byte-level BPE tokenizers only",
                         mtype, !strcmp(mtype, "Unigram") ? "SentencePiece Unigram" : "not BPE");
    if (mtype && strcmp(mtype, "BPE"))
        return mart_fail(err, "model.type: unknown model type \"%s\"", mtype);
    if (!mtype && !merges)
        return mart_fail(err,
                         "model.type: missing, and no model.merges: not a BPE model (mart reads "
                         "byte-level BPE tokenizers only)");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return mart_fail(err, "model.vocab: missing or not an object");
    if (!cJSON_IsArray(merges)) return mart_fail(err, "model.merges: missing or not an array");
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *sfx = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if ((cJSON_IsString(pfx) && pfx->valuestring[0]) ||
        (cJSON_IsString(sfx) && sfx->valuestring[0]))
        return mart_fail(err, "model.continuing_subword_prefix/end_of_word_suffix: not supported "
                              "(not a byte-level BPE)");
    t->ignore_merges = json_flag(model, "ignore_merges", false);

    /* Sizes first: the largest id over model.vocab and added_tokens. */
    int64_t max_id = -1;
    size_t block = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        block += strlen(it->string) + 1;
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 16777216.0 ||
            it->valuedouble != (double)(int64_t)it->valuedouble)
            return mart_fail(err, "model.vocab[\"%s\"]: id is not an integer in [0, 2^24]",
                             it->string);
        if ((int64_t)it->valuedouble > max_id) max_id = (int64_t)it->valuedouble;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return mart_fail(err, "added_tokens: not an array");
    int i = 0;
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0)
            return mart_fail(err, "added_tokens[%d].id: missing or not an integer in [0, 2^24]", i);
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return mart_fail(err, "added_tokens[%d].content: missing or empty", i);
        if ((int64_t)id->valuedouble > max_id) max_id = (int64_t)id->valuedouble;
        i++;
    }
    if (max_id < 0) return mart_fail(err, "model.vocab: empty");
    t->vocab_size = (int32_t)(max_id + 1);
    t->vocab_str = mart_xcalloc((size_t)t->vocab_size, sizeof *t->vocab_str);
    t->valid = mart_xcalloc((size_t)t->vocab_size, sizeof *t->valid);
    t->vocab_block = mart_xmalloc(block ? block : 1);
    char *w = t->vocab_block;
    tok_strmap strs;
    tok_strmap_init(&strs, (uint64_t)cJSON_GetArraySize(vocab));
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        if (t->vocab_str[id]) {
            tok_strmap_free(&strs);
            return mart_fail(err, "model.vocab[\"%s\"]: id %d is used twice", it->string, (int)id);
        }
        size_t l = strlen(it->string);
        memcpy(w, it->string, l + 1);
        t->vocab_str[id] = w;
        w += l + 1;
        t->valid[id] = true;
        tok_strmap_put(&strs, t->vocab_str[id], (uint32_t)l, id);
        t->n_model_vocab++;
    }
    t->n_added = cJSON_GetArraySize(added);
    t->added = mart_xcalloc((size_t)(t->n_added ? t->n_added : 1), sizeof *t->added);
    i = 0;
    cJSON_ArrayForEach(it, added) {
        tok_added *a = &t->added[i++];
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        a->content = mart_xstrdup(c);
        a->len = (uint32_t)strlen(c);
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        a->special = json_flag(it, "special", false);
        a->lstrip = json_flag(it, "lstrip", false);
        a->rstrip = json_flag(it, "rstrip", false);
        a->normalized = json_flag(it, "normalized", !a->special);
        a->single_word = json_flag(it, "single_word", false);
        t->valid[a->id] = true;
    }

    tok_merges_reserve(t, cJSON_GetArraySize(merges));
    i = 0;
    char tmp[1024], cat[2048];
    int32_t guess = 0; /* files usually list merges in the order of the merged tokens' ids */
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        if (!merge_parts(it, tmp, sizeof tmp, &a, &b)) {
            tok_strmap_free(&strs);
            return mart_fail(err,
                             "model.merges[%d]: malformed (expected \"a b\" or [\"a\", \"b\"])", i);
        }
        size_t la = strlen(a), lb = strlen(b);
        int32_t ia = tok_strmap_get(&strs, a, (uint32_t)la),
                ib = tok_strmap_get(&strs, b, (uint32_t)lb);
        int32_t im = -1;
        const char *g = guess < t->vocab_size ? t->vocab_str[guess] : NULL;
        if (g && !strncmp(g, a, la) && !strcmp(g + la, b))
            im = guess;
        else if (la + lb < sizeof cat) {
            memcpy(cat, a, la);
            memcpy(cat + la, b, lb);
            im = tok_strmap_get(&strs, cat, (uint32_t)(la + lb));
        }
        if (ia < 0 || ib < 0 || im < 0) {
            tok_strmap_free(&strs);
            return mart_fail(err, "model.merges[%d]: \"%s\" + \"%s\": %s not in model.vocab", i, a,
                             b,
                             ia < 0   ? "left part"
                             : ib < 0 ? "right part"
                                      : "merged token");
        }
        tok_merge_add(t, ia, ib, im);
        guess = im + 1;
        i++;
    }
    tok_strmap_free(&strs);

    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer",
                        err) != MART_OK)
        return MART_ERR;
    t->nfc = t->n_norm == 1 && t->norm[0].kind == TOK_NORM_NFC;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    bool byte_level = false;
    if (pre && !cJSON_IsNull(pre) && load_pre(t, pre, "pre_tokenizer", &byte_level, err) != MART_OK)
        return MART_ERR;
    t->char_level = !byte_level;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dt = dec && !cJSON_IsNull(dec) ? json_type(dec) : NULL;
    if (byte_level) {
        if (dec && !cJSON_IsNull(dec) && (!dt || strcmp(dt, "ByteLevel")))
            return mart_fail(err,
                             "decoder.type: \"%s\" is not supported with a ByteLevel "
                             "pre-tokenizer (only ByteLevel)",
                             dt ? dt : "?");
    } else {
        bool fused = false;
        if (dec && !cJSON_IsNull(dec) &&
            load_char_decoder(t, dec, "decoder", &fused, err) != MART_OK)
            return MART_ERR;
        t->byte_fallback = json_flag(model, "byte_fallback", false);
        t->fuse_unk = json_flag(model, "fuse_unk", false);
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        if (cJSON_IsString(unk)) {
            for (int32_t id = 0; id < t->vocab_size && t->unk_id < 0; id++)
                if (t->vocab_str[id] && !strcmp(t->vocab_str[id], unk->valuestring)) t->unk_id = id;
            if (t->unk_id < 0)
                return mart_fail(err, "model.unk_token: \"%s\" is not in model.vocab",
                                 unk->valuestring);
        }
    }
    if (tok_compile_pre(t, err) != MART_OK) return MART_ERR;
    tok_build_bytes_table(t);
    return MART_OK;
}

/* The id of a token named in tokenizer_config.json: a string, or an object with "content". */
static int config_token(const tok_tokenizer *t, const cJSON *cfg, const char *field, int32_t *id,
                        mart_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, field);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!v || cJSON_IsNull(v)) return MART_OK;
    if (!cJSON_IsString(v)) return mart_fail(err, "%s: not a string or {\"content\": ...}", field);
    *id = tok_special_id(t, v->valuestring);
    for (int32_t k = 0; k < t->vocab_size && *id < 0; k++)
        if (t->vocab_str[k] && !strcmp(t->vocab_str[k], v->valuestring)) *id = k;
    if (*id < 0) return mart_fail(err, "%s: \"%s\" is not a token", field, v->valuestring);
    return MART_OK;
}

/* Reads BOS/EOS and the chat template from tokenizer_config.json. */
static int load_config(tok_tokenizer *t, const cJSON *cfg, mart_err *err) {
    if (!cJSON_IsObject(cfg)) return mart_fail(err, "the top level is not a JSON object");
    if (config_token(t, cfg, "bos_token", &t->bos_id, err) != MART_OK ||
        config_token(t, cfg, "eos_token", &t->eos_id, err) != MART_OK)
        return MART_ERR;
    t->add_bos = json_flag(cfg, "add_bos_token", false);
    t->add_eos = json_flag(cfg, "add_eos_token", false);
    if (t->add_bos && t->bos_id < 0)
        return mart_fail(err, "add_bos_token: true but no bos_token is named");
    if (t->add_eos && t->eos_id < 0)
        return mart_fail(err, "add_eos_token: true but no eos_token is named");
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsArray(tpl)) { /* named templates: the "default" one */
        const cJSON *it, *found = NULL;
        cJSON_ArrayForEach(it, tpl) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                found = cJSON_GetObjectItemCaseSensitive(it, "template");
        }
        tpl = found;
    }
    if (tpl && !cJSON_IsNull(tpl) && !cJSON_IsString(tpl))
        return mart_fail(err, "chat_template: not a string (or a list with a \"default\")");
    if (cJSON_IsString(tpl)) t->chat_template = mart_xstrdup(tpl->valuestring);
    return MART_OK;
}

static cJSON *parse_json_file(const char *file, char **text, size_t *len, mart_err *err) {
    if (mart_read_file(file, text, len, err) != MART_OK) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(*text, *len, &end, 0);
    if (!root) {
        mart_fail(err, "%s: malformed JSON near byte %ld", file, end ? (long)(end - *text) : 0L);
        free(*text);
        *text = NULL;
    }
    return root;
}

int tok_load(const char *path, tok_tokenizer **out, mart_err *err) {
    *out = NULL;
    char file[4096], dir[4096], cfg_file[4096];
    if (mart_is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        mart_path_join(file, sizeof file, path, "tokenizer.json");
    } else {
        snprintf(file, sizeof file, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    mart_path_join(cfg_file, sizeof cfg_file, dir, "tokenizer_config.json");
    char *data;
    size_t len;
    cJSON *root = parse_json_file(file, &data, &len, err);
    if (!root) return MART_ERR;
    tok_tokenizer *t = mart_xcalloc(1, sizeof *t);
    tok_init_common(t);
    int rc = load_json(t, root, err);
    cJSON_Delete(root);
    if (rc == MART_OK && (t->char_level || (t->n_norm > 0 && !t->nfc))) {
        t->source_json = data;
        data = NULL;
    }
    free(data);
    if (rc != MART_OK) {
        mart_fail_wrap(err, "%s", file);
        tok_free(t);
        return MART_ERR;
    }
    if (access(cfg_file, F_OK) == 0) {
        cJSON *cfg = parse_json_file(cfg_file, &data, &len, err);
        rc = cfg ? load_config(t, cfg, err) : MART_ERR;
        if (cfg && rc != MART_OK) mart_fail_wrap(err, "%s", cfg_file);
        cJSON_Delete(cfg);
        free(data);
        if (rc != MART_OK) {
            tok_free(t);
            return MART_ERR;
        }
    }
    *out = t;
    return MART_OK;
}

int32_t tok_vocab_size(const tok_tokenizer *t) {
    return t->vocab_size;
}

const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->valid[id]) return NULL;
    if (len) *len = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes_arena + t->bytes_off[id];
}

int32_t tok_special_id(const tok_tokenizer *t, const char *text) {
    size_t n = strlen(text);
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, text, n)) return t->added[i].id;
    return -1;
}

int32_t tok_bos_id(const tok_tokenizer *t) {
    return t->bos_id;
}

int32_t tok_eos_id(const tok_tokenizer *t) {
    return t->eos_id;
}

const char *tok_chat_template(const tok_tokenizer *t) {
    return t->chat_template;
}

static const tok_added *added_of(const tok_tokenizer *t, int32_t id) {
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

tok_kind tok_token_kind(const tok_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab_size || !t->valid[id]) return TOK_KIND_UNUSED;
    const tok_added *a = added_of(t, id);
    if (a) return a->special ? TOK_KIND_CONTROL : TOK_KIND_USER_DEFINED;
    if (id == t->unk_id) return TOK_KIND_UNKNOWN;
    for (int b = 0; t->char_level && b < 256; b++)
        if (t->byte_tok[b] == id) return TOK_KIND_BYTE;
    return TOK_KIND_NORMAL;
}

const char *tok_token_text(const tok_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab_size || !t->valid[id]) return NULL;
    const tok_added *a = added_of(t, id);
    return a ? a->content : t->vocab_str[id];
}

bool tok_is_sentencepiece(const tok_tokenizer *t) {
    return t->char_level;
}

int32_t tok_unk_id(const tok_tokenizer *t) {
    return t->unk_id;
}

bool tok_adds_bos(const tok_tokenizer *t) {
    return t->add_bos;
}

bool tok_adds_eos(const tok_tokenizer *t) {
    return t->add_eos;
}

int32_t tok_n_merges(const tok_tokenizer *t) {
    return t->n_merges;
}

void tok_merge_at(const tok_tokenizer *t, int32_t rank, int32_t *left, int32_t *right,
                  int32_t *merged) {
    assert(rank >= 0 && rank < t->n_merges);
    *left = t->merge_list[rank][0];
    *right = t->merge_list[rank][1];
    const tok_merge_slot *m = tok_merge_find(t, *left, *right);
    assert(m);
    *merged = m->merged;
}
