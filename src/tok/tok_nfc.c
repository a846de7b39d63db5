/* tok: Unicode NFC normalization (the "NFC" normalizer of Qwen's tokenizer.json), on UTF-8
 * with invalid bytes passed through untouched (they act as boundaries). Tables are generated
 * by tests/ref/tok/gen_nfc_tables.py. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "tok/tok_nfc_tables.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Hangul syllables compose and decompose algorithmically (Unicode ch. 3.12). */
enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    NCOUNT = VCOUNT * TCOUNT,
    SCOUNT = LCOUNT * NCOUNT
};

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = N_OF(nfc_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_ccc[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < N_OF(nfc_ccc) && nfc_ccc[lo][0] == cp ? (int)nfc_ccc[lo][1] : 0;
}

static bool not_yes(uint32_t cp) {
    size_t lo = 0, hi = N_OF(nfc_not_yes);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_not_yes[mid][1] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < N_OF(nfc_not_yes) && nfc_not_yes[lo][0] <= cp;
}

bool tok_nfc_quick(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = tok_utf8_get(str + i, n - i, &cp);
        if (!l) {
            i++; /* invalid bytes are left as they are */
            continue;
        }
        if (not_yes(cp)) return false;
        i += (size_t)l;
    }
    return true;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpvec;

static void cp_push(cpvec *a, uint32_t cp) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = mart_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = cp;
}

static void decompose(uint32_t cp, cpvec *out) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        cp_push(out, LBASE + s / NCOUNT);
        cp_push(out, VBASE + (s % NCOUNT) / TCOUNT);
        if (s % TCOUNT) cp_push(out, TBASE + s % TCOUNT);
        return;
    }
    size_t lo = 0, hi = N_OF(nfc_decomp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_decomp[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < N_OF(nfc_decomp) && nfc_decomp[lo][0] == cp) {
        for (uint32_t k = 0; k < nfc_decomp[lo][2]; k++)
            cp_push(out, nfc_decomp_data[nfc_decomp[lo][1] + k]);
        return;
    }
    cp_push(out, cp);
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = N_OF(nfc_comp_key);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nfc_comp_key[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < N_OF(nfc_comp_key) && nfc_comp_key[lo] == key ? nfc_comp_val[lo] : 0;
}

/* NFC of one run of valid code points, appended as UTF-8. */
static void nfc_run(cpvec *d, mart_buf *out) {
    /* Canonical ordering: stable insertion sort of each run of non-starters by class. */
    for (size_t i = 1; i < d->n; i++) {
        int c = ccc_of(d->v[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t x = d->v[i];
        while (j > 0 && ccc_of(d->v[j - 1]) > c) {
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
    /* Canonical composition (the sample algorithm of UAX #15). */
    if (d->n > 0) {
        size_t starter = 0, w = 1;
        int last = ccc_of(d->v[0]) ? 256 : 0;
        for (size_t i = 1; i < d->n; i++) {
            uint32_t ch = d->v[i];
            int c = ccc_of(ch);
            uint32_t comp = last != 256 ? compose(d->v[starter], ch) : 0;
            if (comp && (last < c || last == 0)) {
                d->v[starter] = comp;
                continue;
            }
            if (c == 0) starter = w;
            last = c;
            d->v[w++] = ch;
        }
        d->n = w;
    }
    char u[4];
    for (size_t i = 0; i < d->n; i++)
        mart_buf_append(out, u, (size_t)tok_utf8_put(d->v[i], u));
    d->n = 0;
}

void tok_nfc(const char *s, size_t n, mart_buf *out) {
    cpvec d = {0};
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = tok_utf8_get(s + i, n - i, &cp);
        if (!l) {
            nfc_run(&d, out);
            mart_buf_append(out, s + i, 1);
            i++;
            continue;
        }
        decompose(cp, &d);
        i += (size_t)l;
    }
    nfc_run(&d, out);
    free(d.v);
}
