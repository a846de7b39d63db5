/* tok: the built-in byte-level tokenizer (with a small BPE trainer) and writing any
 * tokenizer back as a standard Hugging Face tokenizer.json. */
#include "tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ---- BPE trainer ----------------------------------------------------------------------- */

typedef struct {
    int32_t *sym; /* current symbol ids of this distinct word */
    int32_t n;
    int64_t freq;
} train_word;

typedef struct {
    tok_strmap index; /* word bytes -> index in words */
    train_word *words;
    char **keys; /* owned copies of the word bytes */
    int64_t n, cap;
} train_corpus;

static void collect_piece(void *ctx, const char *p, size_t n) {
    train_corpus *c = ctx;
    if (n == 0 || n > 1u << 20) return;
    int32_t k = tok_strmap_get(&c->index, p, (uint32_t)n);
    if (k >= 0) {
        c->words[k].freq++;
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->words = mart_xrealloc(c->words, (size_t)c->cap * sizeof *c->words);
        c->keys = mart_xrealloc(c->keys, (size_t)c->cap * sizeof *c->keys);
    }
    char *key = mart_xmalloc(n);
    memcpy(key, p, n);
    c->keys[c->n] = key;
    train_word *w = &c->words[c->n];
    w->sym = mart_xmalloc(n * sizeof *w->sym);
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (unsigned char)p[i]; /* byte b has id b */
    w->n = (int32_t)n;
    w->freq = 1;
    tok_strmap_put(&c->index, key, (uint32_t)n, (int32_t)c->n);
    c->n++;
}

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    int64_t count;
} pair_count;

/* Counts adjacent pairs over all words (weighted by frequency) and returns the most frequent
 * (ties: the smallest pair, so training is deterministic). Returns false if none occurs twice. */
static bool best_pair(const train_corpus *c, pair_count **tab, uint64_t *cap, int32_t *l,
                      int32_t *r) {
    int64_t total = 0;
    for (int64_t i = 0; i < c->n; i++)
        total += c->words[i].n;
    uint64_t want = 64;
    while (want < (uint64_t)total * 2)
        want <<= 1;
    if (want > *cap) {
        *tab = mart_xrealloc(*tab, want * sizeof **tab);
        *cap = want;
    }
    for (uint64_t i = 0; i < *cap; i++)
        (*tab)[i] = (pair_count){UINT64_MAX, 0};
    uint64_t best = UINT64_MAX;
    int64_t best_n = 1;
    for (int64_t i = 0; i < c->n; i++) {
        const train_word *w = &c->words[i];
        for (int32_t k = 0; k + 1 < w->n; k++) {
            uint64_t key = ((uint64_t)(uint32_t)w->sym[k] << 32) | (uint32_t)w->sym[k + 1];
            uint64_t h = (key * 0x9e3779b97f4a7c15ULL) >> 20 & (*cap - 1);
            while ((*tab)[h].key != UINT64_MAX && (*tab)[h].key != key)
                h = (h + 1) & (*cap - 1);
            (*tab)[h].key = key;
            int64_t cnt = ((*tab)[h].count += w->freq);
            if (cnt > best_n || (cnt == best_n && key < best)) {
                best = key;
                best_n = cnt;
            }
        }
    }
    if (best == UINT64_MAX) return false;
    *l = (int32_t)(best >> 32);
    *r = (int32_t)(best & 0xffffffffu);
    return true;
}

int tok_build_bytes(const char *const *corpus, int64_t n_corpus, int32_t merges,
                    tok_tokenizer **out, mart_err *err) {
    *out = NULL;
    if (merges < 0) return mart_fail(err, "tok_build_bytes: merges = %d is negative", (int)merges);
    tok_tokenizer *t = mart_xcalloc(1, sizeof *t);
    tok_init_common(t);
    /* Qwen2's pre-tokenizer; no normalizer, so decode(encode(s)) == s for every byte string. */
    t->pre = mart_xcalloc(2, sizeof *t->pre);
    t->n_pre = 2;
    t->pre[0].pattern = mart_xstrdup(tok_qwen_pattern);
    t->pre[0].behavior = TOK_SPLIT_ISOLATED;
    t->pre[1].byte_level = true;
    if (tok_compile_pre(t, err) != MART_OK) {
        tok_free(t);
        return MART_ERR;
    }
    int32_t cap = 256 + merges + tok_n_chatml_specials;
    char **strs = mart_xcalloc((size_t)cap, sizeof *strs);
    for (int b = 0; b < 256; b++) {
        char u[5] = {0};
        tok_utf8_put(tok_byte_to_cp((uint8_t)b), u);
        strs[b] = mart_xstrdup(u);
    }
    int32_t n_tok = 256;
    tok_strmap by_str;
    tok_strmap_init(&by_str, (uint64_t)cap);
    for (int32_t i = 0; i < 256; i++)
        tok_strmap_put(&by_str, strs[i], (uint32_t)strlen(strs[i]), i);
    tok_merges_reserve(t, merges);

    train_corpus c = {0};
    tok_strmap_init(&c.index, 1024);
    int rc = MART_OK;
    for (int64_t i = 0; i < n_corpus && merges > 0 && rc == MART_OK; i++)
        rc = tok_pretokenize(t, corpus[i], strlen(corpus[i]), collect_piece, &c, err);
    pair_count *tab = NULL;
    uint64_t tab_cap = 0;
    for (int32_t m = 0; m < merges && rc == MART_OK; m++) {
        int32_t l, r;
        if (!best_pair(&c, &tab, &tab_cap, &l, &r)) break; /* no pair occurs twice: stop early */
        char *s = mart_xstrcat(strs[l], strs[r]);
        int32_t id = tok_strmap_get(&by_str, s, (uint32_t)strlen(s));
        if (id < 0) {
            id = n_tok++;
            strs[id] = s;
            tok_strmap_put(&by_str, s, (uint32_t)strlen(s), id);
        } else {
            free(s);
        }
        tok_merge_add(t, l, r, id);
        for (int64_t i = 0; i < c.n; i++) { /* apply the merge left to right in every word */
            train_word *w = &c.words[i];
            int32_t k = 0;
            for (int32_t j = 0; j < w->n; j++) {
                if (j + 1 < w->n && w->sym[j] == l && w->sym[j + 1] == r) {
                    w->sym[k++] = id;
                    j++;
                } else {
                    w->sym[k++] = w->sym[j];
                }
            }
            w->n = k;
        }
    }
    free(tab);
    for (int64_t i = 0; i < c.n; i++) {
        free(c.words[i].sym);
        free(c.keys[i]);
    }
    free(c.words);
    free(c.keys);
    tok_strmap_free(&c.index);
    tok_strmap_free(&by_str);
    if (rc != MART_OK) {
        for (int32_t i = 0; i < n_tok; i++)
            free(strs[i]);
        free(strs);
        tok_free(t);
        return mart_fail_wrap(err, "tok_build_bytes: corpus");
    }

    t->vocab_size = n_tok + tok_n_chatml_specials;
    t->n_model_vocab = n_tok;
    t->vocab_str = mart_xcalloc((size_t)t->vocab_size, sizeof *t->vocab_str);
    t->valid = mart_xcalloc((size_t)t->vocab_size, sizeof *t->valid);
    size_t block = 0;
    for (int32_t i = 0; i < n_tok; i++)
        block += strlen(strs[i]) + 1;
    t->vocab_block = mart_xmalloc(block);
    char *w = t->vocab_block;
    for (int32_t i = 0; i < n_tok; i++) {
        size_t l = strlen(strs[i]);
        memcpy(w, strs[i], l + 1);
        t->vocab_str[i] = w;
        w += l + 1;
        t->valid[i] = true;
        free(strs[i]);
    }
    free(strs);
    t->n_added = tok_n_chatml_specials;
    t->added = mart_xcalloc((size_t)t->n_added, sizeof *t->added);
    for (int32_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        a->content = mart_xstrdup(tok_chatml_specials[i]);
        a->len = (uint32_t)strlen(a->content);
        a->id = n_tok + i;
        a->special = true;
        t->valid[a->id] = true;
    }
    tok_build_bytes_table(t);
    *out = t;
    return MART_OK;
}

/* ---- tokenizer.json writer ------------------------------------------------------------- */

static cJSON *byte_level_json(bool add_prefix_space, bool use_regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", false);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

int tok_save(const tok_tokenizer *t, const char *path, mart_err *err) {
    if (t->source_json)
        return mart_write_file_atomic(path, t->source_json, strlen(t->source_json), err);
    static const char *const behaviors[] = {"Isolated", "Removed", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", a->id);
        cJSON_AddStringToObject(o, "content", a->content);
        cJSON_AddBoolToObject(o, "single_word", a->single_word);
        cJSON_AddBoolToObject(o, "lstrip", a->lstrip);
        cJSON_AddBoolToObject(o, "rstrip", a->rstrip);
        cJSON_AddBoolToObject(o, "normalized", a->normalized);
        cJSON_AddBoolToObject(o, "special", a->special);
        cJSON_AddItemToArray(added, o);
    }
    if (t->nfc) {
        cJSON *n = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(n, "type", "NFC");
    } else {
        cJSON_AddNullToObject(root, "normalizer");
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *steps = cJSON_AddArrayToObject(pre, "pretokenizers");
    for (int32_t i = 0; i < t->n_pre; i++) {
        const tok_pre_step *s = &t->pre[i];
        if (s->byte_level) {
            cJSON_AddItemToArray(steps, byte_level_json(s->add_prefix_space, s->pattern != NULL));
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "Split");
        cJSON *p = cJSON_AddObjectToObject(o, "pattern");
        cJSON_AddStringToObject(p, s->pattern_literal ? "String" : "Regex", s->pattern);
        cJSON_AddStringToObject(o, "behavior", behaviors[s->behavior]);
        cJSON_AddBoolToObject(o, "invert", s->invert);
        cJSON_AddItemToArray(steps, o);
    }
    cJSON_AddItemToObject(root, "post_processor", byte_level_json(false, false));
    cJSON_AddItemToObject(root, "decoder", byte_level_json(false, false));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int32_t id = 0; id < t->vocab_size; id++)
        if (t->vocab_str[id])
            cJSON_AddItemToObject(vocab, t->vocab_str[id], cJSON_CreateNumber(id));
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int32_t i = 0; i < t->n_merges; i++) {
        const char *pair[2] = {t->vocab_str[t->merge_list[i][0]],
                               t->vocab_str[t->merge_list[i][1]]};
        cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return mart_fail(err, "%s: cannot serialize the tokenizer", path);
    int rc = mart_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}
