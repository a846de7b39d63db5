/* core: UTF-8 repair, JSON text output and the JSONL reader (see include/mart/core.h). */
#include "mart/core.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- UTF-8 ---- */

size_t mart_utf8_next(const char *s, size_t n, bool *valid) {
    assert(n >= 1);
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    if (c < 0x80) {
        *valid = true;
        return 1;
    }
    /* Table 3-7 of the Unicode standard: the second byte's range depends on the first, which
     * excludes overlong forms, surrogates and code points past U+10FFFF. */
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *valid = false;
        return 1;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned char b = u[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) break;
    }
    *valid = i == len;
    return i;
}

size_t mart_utf8_repair(mart_buf *out, const char *s, size_t n) {
    size_t replaced = 0;
    for (size_t i = 0; i < n;) {
        bool valid;
        size_t len = mart_utf8_next(s + i, n - i, &valid);
        if (valid) {
            mart_buf_append(out, s + i, len);
        } else {
            mart_buf_append(out, "\xEF\xBF\xBD", 3);
            replaced++;
        }
        i += len;
    }
    return replaced;
}

/* ---- JSON text ---- */

void mart_json_quote(mart_buf *out, const char *s, size_t n) {
    mart_buf_append(out, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            bool valid;
            size_t len = mart_utf8_next(s + i, n - i, &valid);
            if (valid)
                mart_buf_append(out, s + i, len);
            else
                mart_buf_append(out, "\xEF\xBF\xBD", 3);
            i += len;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            mart_buf_append(out, e, 2);
        } else if (c == '\n') {
            mart_buf_append(out, "\\n", 2);
        } else if (c == '\t') {
            mart_buf_append(out, "\\t", 2);
        } else if (c == '\r') {
            mart_buf_append(out, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            mart_buf_printf(out, "\\u%04x", c);
        } else {
            mart_buf_append(out, s + i, 1);
        }
        i++;
    }
    mart_buf_append(out, "\"", 1);
}

bool mart_json_number(mart_buf *out, double x, int digits) {
    if (!isfinite(x)) {
        mart_buf_append(out, "null", 4);
        return false;
    }
    mart_buf_printf(out, "%.*g", digits, x);
    return true;
}

void mart_json_add_string(cJSON *obj, const char *key, const char *s) {
    mart_buf b = {0};
    mart_utf8_repair(&b, s, strlen(s));
    mart_buf_append(&b, "", 1);
    cJSON_AddStringToObject(obj, key, b.data);
    mart_buf_free(&b);
}

void mart_json_print_line(FILE *f, const cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) {
        fprintf(stderr, "mart: out of memory printing JSON\n");
        abort();
    }
    fputs(s, f);
    fputc('\n', f);
    cJSON_free(s);
}

/* ---- escapes cJSON cannot carry ---- */

/* Containers deeper than this still scan; their fields are named by the deepest key kept. */
#define ESCAPE_SCAN_DEPTH 64

/* The first \u0000 or lone surrogate escape of a line, and where it is. */
typedef struct {
    enum { ESCAPE_NONE, ESCAPE_NUL, ESCAPE_LONE_SURROGATE } kind;
    unsigned code;  /* the escaped code unit */
    size_t column;  /* 1-based byte column of its backslash */
    bool in_key;    /* inside an object key rather than a value */
    char field[64]; /* key of the innermost member holding it; "" at top level */
} escape_finding;

static int hex4(const char *s, size_t n, size_t i) {
    if (i + 4 > n) return -1;
    int v = 0;
    for (size_t k = i; k < i + 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Scans the strings of a JSON line for \u0000 and lone surrogates, tracking the member key of
 * each container so that a finding names its field. Tolerates malformed JSON (it only runs
 * to explain a line, never to accept one). */
static void scan_escapes(const char *s, size_t n, escape_finding *f) {
    char keys[ESCAPE_SCAN_DEPTH][sizeof f->field];
    bool is_obj[ESCAPE_SCAN_DEPTH];
    size_t depth = 0;
    bool expect_key = false;
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth < ESCAPE_SCAN_DEPTH) {
                is_obj[depth] = c == '{';
                keys[depth][0] = 0;
            }
            depth++;
            expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
            expect_key = false;
        } else if (c == ',') {
            expect_key = depth > 0 && depth <= ESCAPE_SCAN_DEPTH && is_obj[depth - 1];
        } else if (c == ':') {
            expect_key = false;
        } else if (c == '"') {
            bool key = expect_key;
            size_t start = ++i;
            for (; i < n && s[i] != '"'; i++) {
                if (s[i] != '\\') continue;
                size_t at = i++;
                if (i >= n || s[i] != 'u') continue;
                int code = hex4(s, n, i + 1);
                if (code < 0) continue;
                i += 4;
                bool lone = false;
                if (code >= 0xD800 && code <= 0xDBFF) {
                    int low =
                        i + 2 < n && s[i + 1] == '\\' && s[i + 2] == 'u' ? hex4(s, n, i + 3) : -1;
                    if (low >= 0xDC00 && low <= 0xDFFF)
                        i += 6;
                    else
                        lone = true;
                } else if (code >= 0xDC00 && code <= 0xDFFF) {
                    lone = true;
                }
                if (f->kind == ESCAPE_NONE && (lone || code == 0)) {
                    f->kind = lone ? ESCAPE_LONE_SURROGATE : ESCAPE_NUL;
                    f->code = (unsigned)code;
                    f->column = at + 1;
                    f->in_key = key;
                    for (size_t d = depth < ESCAPE_SCAN_DEPTH ? depth : ESCAPE_SCAN_DEPTH; d > 0;
                         d--)
                        if (keys[d - 1][0]) {
                            memcpy(f->field, keys[d - 1], sizeof f->field);
                            break;
                        }
                }
            }
            if (key && depth > 0 && depth <= ESCAPE_SCAN_DEPTH) {
                size_t len = i - start < sizeof f->field - 1 ? i - start : sizeof f->field - 1;
                memcpy(keys[depth - 1], s + start, len);
                keys[depth - 1][len] = 0;
            }
            expect_key = false;
        }
    }
}

/* Fills err with what the finding means for line `line` of `path`. */
static int escape_error(const escape_finding *f, const char *path, int64_t line, mart_err *err) {
    char where[96];
    if (f->in_key)
        snprintf(where, sizeof where, "a key");
    else if (f->field[0])
        snprintf(where, sizeof where, "field '%s'", f->field);
    else
        snprintf(where, sizeof where, "a string");
    if (f->kind == ESCAPE_NUL)
        return mart_fail(err, "%s:%lld: %s contains U+0000 (column %zu), which mart cannot carry",
                         path, (long long)line, where, f->column);
    return mart_fail(err,
                     "%s:%lld: %s holds a lone surrogate escape \\u%04X (column %zu), which is "
                     "not a character",
                     path, (long long)line, where, f->code, f->column);
}

/* ---- JSONL ---- */

int mart_jsonl_open(mart_jsonl *r, const char *path, mart_err *err) {
    memset(r, 0, sizeof *r);
    if (!path || !strcmp(path, "-")) {
        r->f = stdin;
        r->path = "<stdin>";
        return MART_OK;
    }
    r->f = fopen(path, "rb");
    if (!r->f) return mart_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(r->f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(r->f);
        r->f = NULL;
        return mart_fail(err, "%s: is a directory, not a JSONL file", path);
    }
    r->path = path;
    r->owns = true;
    return MART_OK;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Parses the line in r->buf (n bytes, NUL-terminated) under the policy in core.h. */
static int parse_record(mart_jsonl *r, size_t n, cJSON **obj, mart_err *err) {
    const char *nul = memchr(r->buf, 0, n);
    if (nul)
        return mart_fail(err, "%s:%lld: raw NUL byte at column %zu (JSON text cannot hold one)",
                         r->path, (long long)r->line, (size_t)(nul - r->buf) + 1);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(r->buf, &end, 1);
    escape_finding f = {0};
    if (!j || memmem(r->buf, n, "\\u", 2)) scan_escapes(r->buf, n, &f);
    if (f.kind != ESCAPE_NONE) {
        cJSON_Delete(j);
        return escape_error(&f, r->path, r->line, err);
    }
    if (!j) {
        long col = end ? (long)(end - r->buf) + 1 : 1;
        return mart_fail(err, "%s:%lld: malformed JSON near column %ld", r->path,
                         (long long)r->line, col);
    }
    *obj = j;
    return 1;
}

int mart_jsonl_next(mart_jsonl *r, cJSON **obj, mart_err *err) {
    *obj = NULL;
    for (;;) {
        ssize_t got = getline(&r->buf, &r->cap, r->f);
        if (got < 0) {
            if (!ferror(r->f)) return 0;
            r->io_error = true;
            return mart_fail(err, "%s: reading failed after line %lld: %s", r->path,
                             (long long)r->line, strerror(errno));
        }
        r->line++;
        size_t n = (size_t)got;
        if (n > 0 && r->buf[n - 1] == '\n') r->buf[--n] = 0;
        if (n > 0 && r->buf[n - 1] == '\r') r->buf[--n] = 0;
        if (!is_blank(r->buf, n)) return parse_record(r, n, obj, err);
    }
}

void mart_jsonl_close(mart_jsonl *r) {
    if (r->owns && r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

void mart_jsonl_answer_error(mart_jsonl *r, FILE *out, const char *command, int64_t line,
                             const mart_err *err) {
    mart_buf b = {0};
    mart_buf_printf(&b, "{\"line\":%lld,\"error\":", (long long)line);
    mart_json_quote(&b, err->msg, strlen(err->msg));
    mart_buf_append(&b, "}\n", 2);
    fwrite(b.data, 1, b.len, out);
    mart_buf_free(&b);
    fprintf(stderr, "mart %s: %s\n", command, err->msg);
    r->n_failed++;
}

int mart_jsonl_load(const char *path, cJSON ***objs, int64_t *n, mart_err *err) {
    mart_jsonl r;
    if (mart_jsonl_open(&r, path, err) != MART_OK) return MART_ERR;
    cJSON **a = NULL;
    int64_t cnt = 0, cap = 0;
    for (;;) {
        cJSON *o;
        int rc = mart_jsonl_next(&r, &o, err);
        if (rc == 0) break;
        if (rc < 0) {
            mart_jsonl_free(a, cnt);
            mart_jsonl_close(&r);
            return MART_ERR;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            a = mart_xrealloc(a, (size_t)cap * sizeof *a);
        }
        a[cnt++] = o;
    }
    mart_jsonl_close(&r);
    *objs = a;
    *n = cnt;
    return MART_OK;
}

void mart_jsonl_free(cJSON **objs, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        cJSON_Delete(objs[i]);
    free(objs);
}
