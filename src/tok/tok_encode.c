/* tok: encoding. Text -> sections split at added tokens -> normalizer (NFC, Prepend, Replace)
 * -> pre-tokenizer pieces (PCRE2, Metaspace) -> BPE per piece (merge heap, shared cache) ->
 * ids. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t *v;
    int64_t n, cap;
} ivec;

static void ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = mart_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* ---- BPE on one piece ------------------------------------------------------------------ */

typedef struct {
    int32_t rank, left, right;
} heap_ent;

static bool heap_less(heap_ent a, heap_ent b) {
    return a.rank != b.rank ? a.rank < b.rank : a.left < b.left;
}

static void heap_push(heap_ent *h, int32_t *n, heap_ent e) {
    int32_t i = (*n)++;
    while (i > 0) {
        int32_t p = (i - 1) / 2;
        if (!heap_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, int32_t *n) {
    heap_ent top = h[0], last = h[--(*n)];
    int32_t i = 0;
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static void push_pair(const tok_tokenizer *t, const int32_t *id, heap_ent *h, int32_t *nh,
                      int32_t left, int32_t right) {
    const tok_merge_slot *m = tok_merge_find(t, id[left], id[right]);
    if (m) heap_push(h, nh, (heap_ent){m->rank, left, right});
}

/* ByteLevel symbols: one per byte, the single-byte tokens. */
static int byte_symbols(const tok_tokenizer *t, const unsigned char *s, size_t n, int32_t *id,
                        int32_t *m, mart_err *err) {
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[s[i]];
        if (id[i] < 0) return mart_fail(err, "byte 0x%02x has no token in the vocabulary", s[i]);
    }
    *m = (int32_t)n;
    return MART_OK;
}

/* SentencePiece-style symbols: one per character found in model.vocab; any other character
 * (or invalid byte) becomes its bytes' <0xXX> tokens when byte_fallback has them all, else
 * unk (a run of unks is one with fuse_unk). At most one symbol per byte. */
static int char_symbols(const tok_tokenizer *t, const unsigned char *s, size_t n, int32_t *id,
                        int32_t *m, mart_err *err) {
    int32_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = (size_t)tok_utf8_get((const char *)s + i, n - i, &cp);
        if (!l) l = 1;
        int32_t v = tok_strmap_get(&t->vocab_map, (const char *)s + i, (uint32_t)l);
        bool bytes = v < 0 && t->byte_fallback;
        for (size_t j = 0; bytes && j < l; j++)
            bytes = t->byte_tok[s[i + j]] >= 0;
        if (v >= 0) {
            id[k++] = v;
        } else if (bytes) {
            for (size_t j = 0; j < l; j++)
                id[k++] = t->byte_tok[s[i + j]];
        } else if (t->unk_id >= 0) {
            if (!(t->fuse_unk && k > 0 && id[k - 1] == t->unk_id)) id[k++] = t->unk_id;
        } else {
            return mart_fail(err,
                             "the character at byte %zu of a piece (first byte 0x%02x) is not in "
                             "the vocabulary, and there is no byte fallback or unk token",
                             i, s[i]);
        }
        i += l;
    }
    *m = k;
    return MART_OK;
}

/* Applies merges by rank (ties: leftmost first, as Hugging Face) to the bytes of one piece.
 * Appends the resulting ids. O(n log n) in the piece length, so very long words are fine. */
static int bpe_piece(const tok_tokenizer *t, const unsigned char *s, size_t n, ivec *out,
                     mart_err *err) {
    enum { SMALL = 64 };
    int32_t id_s[SMALL], nx_s[SMALL], pv_s[SMALL];
    heap_ent h_s[2 * SMALL];
    bool big = n > SMALL;
    int32_t *id = big ? mart_xmalloc(n * sizeof *id) : id_s;
    int32_t *nx = big ? mart_xmalloc(n * sizeof *nx) : nx_s;
    int32_t *pv = big ? mart_xmalloc(n * sizeof *pv) : pv_s;
    heap_ent *h = big ? mart_xmalloc(2 * n * sizeof *h) : h_s;
    int32_t m = 0; /* symbols before merging */
    int rc =
        t->char_level ? char_symbols(t, s, n, id, &m, err) : byte_symbols(t, s, n, id, &m, err);
    if (rc != MART_OK) goto done;
    for (int32_t i = 0; i < m; i++) {
        nx[i] = i + 1;
        pv[i] = i - 1;
    }
    int32_t nh = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        push_pair(t, id, h, &nh, i, i + 1);
    /* The heap never holds more than 2n entries (m <= n symbols): m-1 at the start, at most 2 per
     * merge, and there are at most m-1 merges, each preceded by a pop. */
    while (nh > 0) {
        heap_ent e = heap_pop(h, &nh);
        if (id[e.left] < 0 || nx[e.left] != e.right || id[e.right] < 0) continue;
        const tok_merge_slot *mg = tok_merge_find(t, id[e.left], id[e.right]);
        if (!mg || mg->rank != e.rank) continue;
        id[e.left] = mg->merged;
        id[e.right] = -1;
        nx[e.left] = nx[e.right];
        if (nx[e.left] < m) pv[nx[e.left]] = e.left;
        if (pv[e.left] >= 0) push_pair(t, id, h, &nh, pv[e.left], e.left);
        if (nx[e.left] < m) push_pair(t, id, h, &nh, e.left, nx[e.left]);
    }
    for (int32_t i = 0; i < m; i = nx[i])
        ivec_push(out, id[i]);
done:
    if (big) {
        free(id);
        free(nx);
        free(pv);
        free(h);
    }
    return rc;
}

/* ---- the shared cache of piece -> ids -------------------------------------------------- */

static bool cache_get(tok_tokenizer *tm, uint64_t hash, const char *s, size_t n, ivec *out) {
    tok_cache_shard *c = &tm->cache[hash & (TOK_CACHE_SHARDS - 1)];
    bool found = false;
    pthread_mutex_lock(&c->lock);
    if (c->hash) {
        uint32_t i = (uint32_t)(hash >> 20) & (TOK_CACHE_SLOTS - 1);
        while (c->hash[i]) {
            if (c->hash[i] == hash) {
                const char *e = c->arena + c->off[i];
                uint16_t kl, ni;
                memcpy(&kl, e, 2);
                memcpy(&ni, e + 2, 2);
                if (kl == n && !memcmp(e + 4, s, n)) {
                    for (uint16_t k = 0; k < ni; k++) {
                        int32_t v;
                        memcpy(&v, e + 4 + kl + 4 * k, 4);
                        ivec_push(out, v);
                    }
                    found = true;
                    break;
                }
            }
            i = (i + 1) & (TOK_CACHE_SLOTS - 1);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static void cache_put(tok_tokenizer *tm, uint64_t hash, const char *s, size_t n, const int32_t *ids,
                      int64_t ni) {
    tok_cache_shard *c = &tm->cache[hash & (TOK_CACHE_SHARDS - 1)];
    size_t need = 4 + n + 4 * (size_t)ni;
    pthread_mutex_lock(&c->lock);
    if (!c->hash) {
        c->hash = mart_xcalloc(TOK_CACHE_SLOTS, sizeof *c->hash);
        c->off = mart_xmalloc(TOK_CACHE_SLOTS * sizeof *c->off);
    }
    if (c->n * 10 >= TOK_CACHE_SLOTS * 7) { /* full: start over rather than evict one by one */
        memset(c->hash, 0, TOK_CACHE_SLOTS * sizeof *c->hash);
        c->n = 0;
        c->arena_len = 0;
    }
    if (c->arena_len + need > c->arena_cap) {
        c->arena_cap = (c->arena_len + need) * 2;
        c->arena = mart_xrealloc(c->arena, c->arena_cap);
    }
    uint32_t i = (uint32_t)(hash >> 20) & (TOK_CACHE_SLOTS - 1);
    while (c->hash[i])
        i = (i + 1) & (TOK_CACHE_SLOTS - 1);
    char *e = c->arena + c->arena_len;
    uint16_t kl = (uint16_t)n, nn = (uint16_t)ni;
    memcpy(e, &kl, 2);
    memcpy(e + 2, &nn, 2);
    memcpy(e + 4, s, n);
    memcpy(e + 4 + n, ids, 4 * (size_t)ni);
    c->hash[i] = hash;
    c->off[i] = (uint32_t)c->arena_len;
    c->arena_len += need;
    c->n++;
    pthread_mutex_unlock(&c->lock);
}

static int encode_piece(const tok_tokenizer *t, const char *s, size_t n, ivec *out, mart_err *err) {
    if (n == 0) return MART_OK;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab_map, s, (uint32_t)n);
        if (id >= 0) {
            ivec_push(out, id);
            return MART_OK;
        }
    }
    /* The cache is logically const: it only remembers results, so it lives behind the const
     * pointer that makes tok_encode's contract (and is guarded by its own locks). */
    tok_tokenizer *tm = (tok_tokenizer *)t;
    uint64_t hash = 0;
    if (n <= TOK_CACHE_MAX_PIECE) {
        hash = tok_hash_bytes(s, n);
        if (cache_get(tm, hash, s, n, out)) return MART_OK;
    }
    int64_t start = out->n;
    if (bpe_piece(t, (const unsigned char *)s, n, out, err) != MART_OK) return MART_ERR;
    if (n <= TOK_CACHE_MAX_PIECE) cache_put(tm, hash, s, n, out->v + start, out->n - start);
    return MART_OK;
}

/* ---- pre-tokenization ------------------------------------------------------------------ */

typedef struct {
    const char *p;
    size_t n;
} piece;

typedef struct {
    piece *v;
    int64_t n, cap;
} pvec;

static void pvec_push(pvec *a, const char *p, size_t n) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = mart_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = (piece){p, n};
}

typedef struct {
    size_t a, b;
    bool match;
} span;

typedef struct {
    span *v;
    int64_t n, cap;
} svec;

static void svec_push(svec *a, size_t x, size_t y, bool m) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = mart_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = (span){x, y, m};
}

/* Scratch memory of one encode call (normalized and prefixed copies); freed at the end. */
typedef struct {
    char **v;
    int64_t n;
} scratch;

/* Splits one piece with a step's regex following Hugging Face's Split semantics. Fails only
 * if PCRE2 gives up (match or JIT stack limit), which these patterns do not reach in practice. */
static int split_piece(const tok_pre_step *st, pcre2_match_data *md, piece in, pvec *out, svec *sp,
                       mart_err *err) {
    sp->n = 0;
    size_t pos = 0, prev = 0, L = in.n;
    while (pos <= L) {
        int rc = st->jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)in.p, L, pos, 0, md, NULL)
                         : pcre2_match(st->re, (PCRE2_SPTR)in.p, L, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            char msg[256];
            pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
            return mart_fail(err, "pre-tokenizer regex failed on a %zu-byte piece: %s", L, msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) { /* empty match: step over one character */
            uint32_t cp;
            int l = tok_utf8_get(in.p + m0, L - m0, &cp);
            pos = m0 + (size_t)(l ? l : 1);
            continue;
        }
        if (m0 > prev) svec_push(sp, prev, m0, false);
        svec_push(sp, m0, m1, true);
        prev = pos = m1;
    }
    if (prev < L) svec_push(sp, prev, L, false);
    if (st->invert)
        for (int64_t i = 0; i < sp->n; i++)
            sp->v[i].match = !sp->v[i].match;
    /* Reduce the spans by the behavior, in place (the same folds as tokenizers' Rust code). */
    int64_t k = 0;
    bool prev_match = false;
    switch (st->behavior) {
    case TOK_SPLIT_ISOLATED:
        k = sp->n;
        break;
    case TOK_SPLIT_REMOVED:
        for (int64_t i = 0; i < sp->n; i++)
            if (!sp->v[i].match) sp->v[k++] = sp->v[i];
        break;
    case TOK_SPLIT_MERGED_WITH_PREVIOUS:
        for (int64_t i = 0; i < sp->n; i++) {
            if (sp->v[i].match && !prev_match && k > 0)
                sp->v[k - 1].b = sp->v[i].b;
            else
                sp->v[k++] = sp->v[i];
            prev_match = sp->v[i].match;
        }
        break;
    case TOK_SPLIT_MERGED_WITH_NEXT: {
        /* Right to left: a match is glued to the piece after it. */
        int64_t w = sp->n;
        for (int64_t i = sp->n - 1; i >= 0; i--) {
            span cur = sp->v[i];
            if (cur.match && !prev_match && w < sp->n)
                sp->v[w].a = cur.a;
            else
                sp->v[--w] = cur;
            prev_match = cur.match;
        }
        memmove(sp->v, sp->v + w, (size_t)(sp->n - w) * sizeof *sp->v);
        k = sp->n - w;
        break;
    }
    case TOK_SPLIT_CONTIGUOUS:
        for (int64_t i = 0; i < sp->n; i++) {
            if (k > 0 && sp->v[i].match == prev_match)
                sp->v[k - 1].b = sp->v[i].b;
            else
                sp->v[k++] = sp->v[i];
            prev_match = sp->v[i].match;
        }
        break;
    }
    for (int64_t i = 0; i < k; i++)
        if (sp->v[i].b > sp->v[i].a) pvec_push(out, in.p + sp->v[i].a, sp->v[i].b - sp->v[i].a);
    return MART_OK;
}

/* Scratch state of one encode call. */
typedef struct {
    pcre2_match_data *md;
    pvec a, b;   /* pieces before and after a step */
    svec sp;     /* spans of one split */
    scratch scr; /* normalized and prefixed copies */
} enc_state;

static void enc_init(enc_state *e) {
    memset(e, 0, sizeof *e);
    e->md = pcre2_match_data_create(4, NULL);
}

static void enc_free(enc_state *e) {
    pcre2_match_data_free(e->md);
    free(e->a.v);
    free(e->b.v);
    free(e->sp.v);
    for (int64_t k = 0; k < e->scr.n; k++)
        free(e->scr.v[k]);
    free(e->scr.v);
}

/* Keeps a copy made for one encode call alive until enc_free. */
static char *scratch_keep(scratch *scr, mart_buf *b) {
    scr->v = mart_xrealloc(scr->v, (size_t)(scr->n + 1) * sizeof *scr->v);
    scr->v[scr->n++] = b->data;
    char *p = b->data;
    memset(b, 0, sizeof *b);
    return p;
}

/* Appends s with every occurrence of from replaced by to. */
static void replace_all(const char *s, size_t n, const char *from, const char *to, mart_buf *out) {
    size_t fl = strlen(from), tl = strlen(to), last = 0;
    for (size_t i = 0; i + fl <= n;) {
        if (!memcmp(s + i, from, fl)) {
            mart_buf_append(out, s + last, i - last);
            mart_buf_append(out, to, tl);
            i += fl;
            last = i;
        } else {
            i++;
        }
    }
    mart_buf_append(out, s + last, n - last);
}

/* Runs the normalizer steps over one section; the result stays valid until enc_free. */
static void normalize_section(const tok_tokenizer *t, const char **s, size_t *n, enc_state *e) {
    for (int32_t k = 0; k<t->n_norm && * n> 0; k++) {
        const tok_norm_step *st = &t->norm[k];
        mart_buf b = {0};
        if (st->kind == TOK_NORM_NFC) {
            if (tok_nfc_quick(*s, *n)) continue;
            tok_nfc(*s, *n, &b);
        } else if (st->kind == TOK_NORM_PREPEND) {
            mart_buf_append(&b, st->text, strlen(st->text));
            mart_buf_append(&b, *s, *n);
        } else {
            replace_all(*s, *n, st->text, st->with, &b);
        }
        *n = b.len;
        *s = b.len ? scratch_keep(&e->scr, &b) : "";
        mart_buf_free(&b);
    }
}

/* Metaspace: spaces become the replacement, which is also prepended per the scheme (the
 * first piece of the text's first section only, for "first"). */
static void metaspace_pieces(const tok_pre_step *st, bool at_start, enc_state *e) {
    size_t rl = strlen(st->replacement);
    for (int64_t i = 0; i < e->a.n; i++) {
        piece *p = &e->a.v[i];
        mart_buf b = {0};
        replace_all(p->p, p->n, " ", st->replacement, &b);
        bool want = st->prepend == TOK_PREPEND_ALWAYS ||
                    (st->prepend == TOK_PREPEND_FIRST && at_start && i == 0);
        if (want && (b.len < rl || memcmp(b.data, st->replacement, rl))) {
            mart_buf c = {0};
            mart_buf_append(&c, st->replacement, rl);
            mart_buf_append(&c, b.data, b.len);
            mart_buf_free(&b);
            b = c;
        }
        size_t len = b.len;
        *p = (piece){len ? scratch_keep(&e->scr, &b) : "", len};
        mart_buf_free(&b);
    }
}

/* Normalizes and pre-tokenizes one section (text between added tokens) into e->a. at_start:
 * the section begins the text. */
static int pretokenize_section(const tok_tokenizer *t, const char *s, size_t n, bool at_start,
                               enc_state *e, mart_err *err) {
    e->a.n = 0;
    if (n == 0) return MART_OK;
    normalize_section(t, &s, &n, e);
    if (n == 0) return MART_OK;
    pvec_push(&e->a, s, n);
    for (int32_t k = 0; k < t->n_pre; k++) {
        const tok_pre_step *st = &t->pre[k];
        if (st->replacement) metaspace_pieces(st, at_start, e);
        if (st->byte_level && st->add_prefix_space)
            for (int64_t i = 0; i < e->a.n; i++) {
                piece *p = &e->a.v[i];
                if (p->n > 0 && p->p[0] == ' ') continue;
                mart_buf b = {0};
                mart_buf_append(&b, " ", 1);
                mart_buf_append(&b, p->p, p->n);
                *p = (piece){scratch_keep(&e->scr, &b), p->n + 1};
            }
        if (!st->re) continue;
        e->b.n = 0;
        for (int64_t i = 0; i < e->a.n; i++)
            if (split_piece(st, e->md, e->a.v[i], &e->b, &e->sp, err) != MART_OK) return MART_ERR;
        pvec tmp = e->a;
        e->a = e->b;
        e->b = tmp;
    }
    return MART_OK;
}

static int encode_section(const tok_tokenizer *t, const char *s, size_t n, bool at_start,
                          enc_state *e, ivec *out, mart_err *err) {
    if (pretokenize_section(t, s, n, at_start, e, err) != MART_OK) return MART_ERR;
    for (int64_t i = 0; i < e->a.n; i++)
        if (encode_piece(t, e->a.v[i].p, e->a.v[i].n, out, err) != MART_OK) return MART_ERR;
    return MART_OK;
}

int tok_pretokenize(const tok_tokenizer *t, const char *text, size_t len,
                    void (*fn)(void *ctx, const char *piece, size_t n), void *ctx, mart_err *err) {
    enc_state e;
    enc_init(&e);
    int rc = pretokenize_section(t, text, len, true, &e, err);
    for (int64_t i = 0; rc == MART_OK && i < e.a.n; i++)
        fn(ctx, e.a.v[i].p, e.a.v[i].n);
    enc_free(&e);
    return rc;
}

static bool is_space_at(const char *s, size_t n, size_t *len) {
    uint32_t cp;
    int l = tok_utf8_get(s, n, &cp);
    if (!l) return false;
    *len = (size_t)l;
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

/* Length of whitespace ending at s[n-1] (walking back over UTF-8). */
static size_t space_before(const char *s, size_t n) {
    size_t k = n;
    while (k > 0) {
        size_t j = k - 1, l;
        while (j > 0 && k - j < 4 && ((unsigned char)s[j] & 0xc0) == 0x80)
            j--;
        if (!is_space_at(s + j, k - j, &l) || j + l != k) break;
        k = j;
    }
    return n - k;
}

static bool is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

/* The longest added token starting at s[i], or NULL. */
static const tok_added *added_at(const tok_tokenizer *t, const char *s, size_t n, size_t i) {
    const tok_added *best = NULL;
    for (int32_t k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        if (a->len > n - i || (best && a->len <= best->len) || memcmp(a->content, s + i, a->len))
            continue;
        if (a->single_word && ((i > 0 && is_word_byte((unsigned char)s[i - 1])) ||
                               (i + a->len < n && is_word_byte((unsigned char)s[i + a->len]))))
            continue;
        best = a;
    }
    return best;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int32_t **ids, int64_t *n,
               mart_err *err) {
    ivec out = {0};
    enc_state e;
    enc_init(&e);
    int rc = MART_OK;
    size_t start = 0, i = 0;
    while (i < len && rc == MART_OK) {
        const tok_added *ad =
            t->added_first[(unsigned char)text[i]] ? added_at(t, text, len, i) : NULL;
        if (!ad) {
            i++;
            continue;
        }
        size_t end = i;
        if (ad->lstrip) end -= space_before(text + start, i - start);
        rc = encode_section(t, text + start, end - start, start == 0, &e, &out, err);
        ivec_push(&out, ad->id);
        i += ad->len;
        if (ad->rstrip) {
            size_t l;
            while (i < len && is_space_at(text + i, len - i, &l))
                i += l;
        }
        start = i;
    }
    if (rc == MART_OK) rc = encode_section(t, text + start, len - start, start == 0, &e, &out, err);
    enc_free(&e);
    if (rc == MART_OK && out.n > 0) {
        *ids = mart_xrealloc(*ids, (size_t)(*n + out.n) * sizeof **ids);
        memcpy(*ids + *n, out.v, (size_t)out.n * sizeof *out.v);
        *n += out.n;
    }
    free(out.v);
    return rc;
}

int tok_encode_specials(const tok_tokenizer *t, const char *text, size_t len, int32_t **ids,
                        int64_t *n, mart_err *err) {
    int64_t n0 = *n;
    if (t->add_bos) {
        *ids = mart_xrealloc(*ids, (size_t)(*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = t->bos_id;
    }
    if (tok_encode(t, text, len, ids, n, err) != MART_OK) {
        *n = n0;
        return MART_ERR;
    }
    if (t->add_eos) {
        *ids = mart_xrealloc(*ids, (size_t)(*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = t->eos_id;
    }
    return MART_OK;
}
