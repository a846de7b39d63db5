/* tok: small pieces shared by loading, encoding and training: the string map, the merge
 * table, UTF-8 and ByteLevel's byte <-> code point mapping. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

uint64_t tok_hash_bytes(const void *p, size_t n) {
    /* FNV-1a over 8-byte words, then a final mix: fast on the short keys tokens are. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 32;
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    return h ? h : 1;
}

void tok_strmap_init(tok_strmap *m, uint64_t expected) {
    uint64_t cap = 16;
    while (cap < expected * 2)
        cap <<= 1;
    m->cap = cap;
    m->n = 0;
    m->slot = mart_xmalloc(cap * sizeof *m->slot);
    for (uint64_t i = 0; i < cap; i++)
        m->slot[i] = (tok_strmap_slot){NULL, 0, -1};
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    memset(m, 0, sizeof *m);
}

int32_t tok_strmap_put(tok_strmap *m, const char *key, uint32_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        tok_strmap g;
        tok_strmap_init(&g, m->cap);
        for (uint64_t i = 0; i < m->cap; i++)
            if (m->slot[i].val >= 0)
                tok_strmap_put(&g, m->slot[i].key, m->slot[i].len, m->slot[i].val);
        tok_strmap_free(m);
        *m = g;
    }
    uint64_t i = tok_hash_bytes(key, len) & (m->cap - 1);
    for (tok_strmap_slot *s; (s = &m->slot[i])->val >= 0; i = (i + 1) & (m->cap - 1))
        if (s->len == len && !memcmp(s->key, key, len)) return s->val;
    m->slot[i] = (tok_strmap_slot){key, len, val};
    m->n++;
    return val;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint64_t i = tok_hash_bytes(key, len) & (m->cap - 1);
    for (const tok_strmap_slot *s; (s = &m->slot[i])->val >= 0; i = (i + 1) & (m->cap - 1))
        if (s->len == len && !memcmp(s->key, key, len)) return s->val;
    return -1;
}

/* ---- merges ---------------------------------------------------------------------------- */

static uint64_t merge_slot_of(uint64_t key, uint64_t cap) {
    uint64_t h = key * 0x9e3779b97f4a7c15ULL;
    return (h ^ (h >> 31)) & (cap - 1);
}

void tok_merges_reserve(tok_tokenizer *t, int64_t n) {
    uint64_t cap = 64;
    while (cap < (uint64_t)n * 2 + 2)
        cap <<= 1;
    if (cap <= t->merge_cap) return;
    tok_merge_slot *old = t->merges;
    uint64_t old_cap = t->merge_cap;
    t->merges = mart_xmalloc(cap * sizeof *t->merges);
    for (uint64_t i = 0; i < cap; i++)
        t->merges[i].key = UINT64_MAX;
    t->merge_cap = cap;
    for (uint64_t i = 0; i < old_cap; i++) {
        if (old[i].key == UINT64_MAX) continue;
        uint64_t j = merge_slot_of(old[i].key, cap);
        while (t->merges[j].key != UINT64_MAX)
            j = (j + 1) & (cap - 1);
        t->merges[j] = old[i];
    }
    free(old);
    t->merge_list = mart_xrealloc(t->merge_list, (size_t)(cap / 2) * sizeof *t->merge_list);
}

void tok_merge_add(tok_tokenizer *t, int32_t left, int32_t right, int32_t merged) {
    if ((uint64_t)(t->n_merges + 1) * 2 + 2 > t->merge_cap)
        tok_merges_reserve(t, (int64_t)t->n_merges * 2 + 16);
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t j = merge_slot_of(key, t->merge_cap);
    while (t->merges[j].key != UINT64_MAX) {
        if (t->merges[j].key == key) return; /* a repeated merge keeps its first (lower) rank */
        j = (j + 1) & (t->merge_cap - 1);
    }
    t->merges[j] = (tok_merge_slot){key, t->n_merges, merged};
    t->merge_list[t->n_merges][0] = left;
    t->merge_list[t->n_merges][1] = right;
    t->n_merges++;
}

const tok_merge_slot *tok_merge_find(const tok_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t j = merge_slot_of(key, t->merge_cap);
    for (;;) {
        const tok_merge_slot *s = &t->merges[j];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        j = (j + 1) & (t->merge_cap - 1);
    }
}

/* ---- UTF-8 and ByteLevel --------------------------------------------------------------- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so every byte has a visible character. */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/* The 68 non-printable bytes are 0x00-0x20, 0x7f-0xa0 and 0xad, mapped in that order. */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xa0) return 256u + 33u + (b - 0x7fu);
    return 256u + 67u; /* 0xad */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7f + k - 33);
    return k == 67 ? 0xad : -1;
}

int tok_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

int tok_utf8_get(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < (size_t)len) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}
