/* tok: decoding ids to bytes, whole or incrementally (for streaming generation). */
#include "tok/tok_internal.h"

#include <string.h>

/* The decoder's Strip: drops the spaces at the start of the text, up to t->dec_strip of them
 * counted over the whole sequence (s carries the count from token to token). Returns how many
 * of the len bytes at b to skip. */
static size_t strip_leading(const tok_tokenizer *t, tok_stream *s, const char *b, size_t len) {
    size_t k = 0;
    while (!s->started && k < len) {
        if (s->n_stripped < t->dec_strip && b[k] == ' ') {
            s->n_stripped++;
            k++;
        } else {
            s->started = true;
        }
    }
    return k;
}

int tok_decode(const tok_tokenizer *t, const int32_t *ids, int64_t n, mart_buf *out,
               mart_err *err) {
    tok_stream s;
    tok_stream_init(&s);
    for (int64_t i = 0; i < n; i++) {
        size_t len;
        const char *b = tok_token_bytes(t, ids[i], &len);
        if (!b)
            return mart_fail(err, "ids[%lld] = %d: not a token id (vocabulary size %d)",
                             (long long)i, (int)ids[i], (int)t->vocab_size);
        size_t skip = strip_leading(t, &s, b, len);
        mart_buf_append(out, b + skip, len - skip);
    }
    return MART_OK;
}

void tok_stream_init(tok_stream *s) {
    memset(s, 0, sizeof *s);
}

/* Length of the UTF-8 character a lead byte announces; 0 when c cannot start one. */
static int utf8_lead_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

/* How many bytes at the end of s[0..n) are the start of a character that may still be
 * completed by later bytes (0..3). Everything before that can be printed now. */
static size_t incomplete_tail(const unsigned char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation: look further back for the lead */
        int need = utf8_lead_len(c);
        if (need <= 1 || (size_t)need <= back) return 0; /* complete, or not a lead byte */
        /* A lead with too few bytes after it: incomplete if some continuation bytes could
         * still make it valid (only the second byte is range-restricted, so trying all 0x80
         * and all 0xbf covers every lead). */
        unsigned char probe[4];
        uint32_t cp;
        memcpy(probe, s + n - back, back);
        for (int fill = 0; fill < 2; fill++) {
            for (size_t k = back; k < (size_t)need; k++)
                probe[k] = fill ? 0xbf : 0x80;
            if (tok_utf8_get((const char *)probe, (size_t)need, &cp)) return back;
        }
        return 0;
    }
    return 0;
}

void tok_stream_push(tok_stream *s, const tok_tokenizer *t, int32_t id, mart_buf *out) {
    size_t len;
    const char *b = tok_token_bytes(t, id, &len);
    if (!b) return;
    size_t skip = strip_leading(t, s, b, len);
    b += skip;
    len -= skip;
    if (len == 0) return;
    /* pending (<= 3 bytes) + this token's bytes; print all but an incomplete tail. */
    if ((size_t)s->n_pending + len <= 64) {
        unsigned char tmp[72];
        memcpy(tmp, s->pending, (size_t)s->n_pending);
        memcpy(tmp + s->n_pending, b, len);
        size_t all = (size_t)s->n_pending + len, tail = incomplete_tail(tmp, all);
        mart_buf_append(out, tmp, all - tail);
        memcpy(s->pending, tmp + all - tail, tail);
        s->n_pending = (int32_t)tail;
        return;
    }
    mart_buf_append(out, s->pending, (size_t)s->n_pending);
    size_t tail = incomplete_tail((const unsigned char *)b, len);
    mart_buf_append(out, b, len - tail);
    memcpy(s->pending, b + len - tail, tail);
    s->n_pending = (int32_t)tail;
}

void tok_stream_flush(tok_stream *s, mart_buf *out) {
    mart_buf_append(out, s->pending, (size_t)s->n_pending);
    s->n_pending = 0;
}
