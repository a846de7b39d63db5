/* grade extraction: the final answer of a model response (last complete \boxed{...}) and the
 * gold answer of a benchmark record. */
#include "grade/grade_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <string.h>

/* Box commands, longest first where one is a prefix of another. */
static const char *const box_names[] = {"\\boxed", "\\fbox", "\\framebox"};

/* If a box command starts at text[i], the [start, end) of its content and the index after
 * it; false when it is not one or it is not closed. `\boxed 5` takes the next word. */
static bool box_at(const char *text, size_t len, size_t i, bool final, size_t *start, size_t *end,
                   size_t *after) {
    size_t j = 0;
    for (size_t k = 0; k < sizeof box_names / sizeof box_names[0] && !j; k++) {
        size_t n = strlen(box_names[k]);
        if (i + n <= len && !memcmp(text + i, box_names[k], n) &&
            !(i + n < len && isalpha((unsigned char)text[i + n])))
            j = i + n;
    }
    if (!j) return false;
    if (j < len && text[j] == '{') {
        int depth = 0;
        for (size_t q = j; q < len; q++) {
            if (text[q] == '\\' && q + 1 < len) {
                q++;
                continue;
            }
            if (text[q] == '{')
                depth++;
            else if (text[q] == '}' && --depth == 0) {
                *start = j + 1;
                *end = q;
                *after = q + 1;
                return true;
            }
        }
        return false; /* unclosed: no answer */
    }
    if (j >= len || text[j] != ' ') return false;
    while (j < len && text[j] == ' ')
        j++;
    size_t q = j;
    while (q < len && !isspace((unsigned char)text[q]) && text[q] != '$')
        q++;
    /* while generating, the word is complete only once something follows it */
    if (q == j || (q == len && !final)) return false;
    while (q > j && (text[q - 1] == '.' || text[q - 1] == ','))
        q--;
    *start = j;
    *end = q;
    *after = q;
    return q > j;
}

bool grade_has_boxed(const char *text, size_t len) {
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *b = memchr(p, '\\', (size_t)(end - p));
        if (!b) return false;
        size_t st, en, after;
        if (box_at(text, len, (size_t)(b - text), false, &st, &en, &after)) return true;
        p = b + 1;
    }
    return false;
}

/* Length of the joining word or command at s[i] ("and", "or", "\quad", "\text", "\,"), or 0. */
static size_t joiner_len(const char *s, size_t i, size_t end) {
    static const char *const words[] = {"and", "or", "\\qquad", "\\quad", "\\text", "\\,"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t n = strlen(words[k]);
        if (i + n <= end && !memcmp(s + i, words[k], n) &&
            (i + n == end || !isalpha((unsigned char)s[i + n])))
            return n;
    }
    return 0;
}

/* Whether text[from, to) only joins two boxes of one closing sentence: spaces, '$', ',', ';',
 * braces, "and" / "or" (bare or in \text{}), \quad, and "x =" / "y_1 =" naming the next value.
 * Any other word ("Wait", "then") or a full stop makes the earlier box a superseded draft. */
static bool joins_boxes(const char *s, size_t from, size_t to) {
    for (size_t i = from; i < to;) {
        unsigned char ch = (unsigned char)s[i];
        size_t n = joiner_len(s, i, to);
        if (n) {
            i += n;
        } else if (isspace(ch) || strchr("$,;=&{}", ch)) {
            i++;
        } else if (isalpha(ch) && (i + 1 == to || !isalpha((unsigned char)s[i + 1]))) {
            size_t j = i + 1; /* a variable naming the next value: x =, y_1 =, a_{n} = */
            if (j < to && s[j] == '_') {
                j++;
                if (j < to && s[j] == '{')
                    while (j < to && s[j] != '}')
                        j++;
                if (j < to) j++;
            }
            while (j < to && s[j] == ' ')
                j++;
            if (j >= to || s[j] != '=') return false;
            i = j + 1;
        } else
            return false;
    }
    return true;
}

typedef struct {
    size_t start, end; /* content [start, end) of one box */
} box_span;

/* The answer boxes: the last complete box and the boxes before it that join it (see
 * joins_boxes), as a malloc'd array; *n their count (0: no box). */
static box_span *final_boxes(const char *text, size_t len, int32_t *n) {
    box_span *run = NULL;
    int32_t cnt = 0, cap = 0;
    size_t prev_after = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *b = memchr(p, '\\', (size_t)(end - p));
        if (!b) break;
        size_t i = (size_t)(b - text), st, en, after;
        if (b + 1 < end && (b[1] == 'b' || b[1] == 'f') &&
            box_at(text, len, i, true, &st, &en, &after)) {
            if (cnt && !joins_boxes(text, prev_after, i)) cnt = 0;
            if (cnt == cap) {
                cap = cap ? cap * 2 : 4;
                run = mart_xrealloc(run, sizeof *run * (size_t)cap);
            }
            while (st < en && isspace((unsigned char)text[st]))
                st++;
            while (en > st && isspace((unsigned char)text[en - 1]))
                en--;
            run[cnt++] = (box_span){st, en};
            prev_after = after;
            p = text + after;
        } else
            p = b + 1;
    }
    *n = cnt;
    return run;
}

/* The boxes' contents joined by ", " (a list answer); one box when all hold the same text. */
static char *join_boxes(const char *text, const box_span *b, int32_t n) {
    bool same = true;
    for (int32_t i = 1; i < n && same; i++)
        same = b[i].end - b[i].start == b[0].end - b[0].start &&
               !memcmp(text + b[i].start, text + b[0].start, b[0].end - b[0].start);
    if (same) n = 1;
    mart_buf out = {0};
    for (int32_t i = 0; i < n; i++) {
        if (b[i].end == b[i].start) continue;
        if (out.len) mart_buf_append(&out, ", ", 2);
        mart_buf_append(&out, text + b[i].start, b[i].end - b[i].start);
    }
    if (!out.len) {
        mart_buf_free(&out);
        return NULL;
    }
    mart_buf_append(&out, "", 1);
    return out.data;
}

static char *copy_span(const char *st, const char *en) {
    while (st < en && isspace((unsigned char)*st))
        st++;
    while (en > st && isspace((unsigned char)en[-1]))
        en--;
    if (en == st) return NULL;
    char *out = mart_xmalloc((size_t)(en - st) + 1);
    memcpy(out, st, (size_t)(en - st));
    out[en - st] = 0;
    return out;
}

/* "The final answer is X." / "Answer: X" — X up to the end of its sentence, after the last
 * such phrase. */
static char *phrase_answer(const char *text, size_t len) {
    static const char *const cues[] = {"answer is", "Answer:", "answer:"};
    const char *best = NULL;
    for (size_t k = 0; k < sizeof cues / sizeof cues[0]; k++) {
        const char *p = text, *end = text + len;
        size_t n = strlen(cues[k]);
        while (p < end) {
            const char *hit = memmem(p, (size_t)(end - p), cues[k], n);
            if (!hit) break;
            if (!best || hit + n > best) best = hit + n;
            p = hit + 1;
        }
    }
    if (!best) return NULL;
    const char *end = text + len, *q = best;
    while (q < end && (*q == ' ' || *q == ':'))
        q++;
    const char *st = q;
    bool in_math = false;
    while (q < end && *q != '\n') {
        if (*q == '$') in_math = !in_math;
        if (!in_math && *q == '.' && (q + 1 == end || isspace((unsigned char)q[1]))) break;
        q++;
    }
    return copy_span(st, q);
}

/* The last number of the last sentence ("so $m+n=116$." → 116): in mathematics, the value
 * after its last '='; NULL when the last sentence has no number. */
static char *last_number(const char *text, size_t len) {
    const char *end = text + len;
    while (end > text && (isspace((unsigned char)end[-1]) || end[-1] == '.'))
        end--;
    const char *q = end;
    while (q > text && !isdigit((unsigned char)q[-1])) {
        q--;
        if (*q == '\n' || (*q == '.' && q + 1 < end && isspace((unsigned char)q[1])))
            return NULL; /* the last sentence has no number */
    }
    if (q == text) return NULL;
    int dollars = 0;
    for (const char *r = text; r < q; r++)
        dollars += *r == '$';
    if (dollars % 2 == 1) { /* inside $...$: the value after its last '=' */
        const char *open = q, *close = q;
        while (open > text && open[-1] != '$')
            open--;
        while (close < end && *close != '$')
            close++;
        const char *eq = close;
        while (eq > open && eq[-1] != '=')
            eq--;
        return copy_span(eq > open ? eq : open, close);
    }
    const char *st = q;
    while (st > text && (isdigit((unsigned char)st[-1]) || st[-1] == '.' || st[-1] == ','))
        st--;
    while (st < q && !isdigit((unsigned char)*st))
        st++;
    if (st > text && st[-1] == '-') st--;
    return copy_span(st, q);
}

char *grade_extract_found(const char *text, size_t len, const grade_config *c, grade_found *how) {
    grade_found found = GRADE_FOUND_NONE;
    char *out = NULL;
    if (text) {
        int32_t n;
        box_span *b = final_boxes(text, len, &n);
        if (n) {
            out = join_boxes(text, b, n);
            found = out ? GRADE_FOUND_BOX : GRADE_FOUND_NONE;
        }
        free(b);
        if (!n && c && c->fallback_extract) {
            out = phrase_answer(text, len);
            found = GRADE_FOUND_PHRASE;
            if (!out) {
                out = last_number(text, len);
                found = GRADE_FOUND_LAST_NUMBER;
            }
            if (!out) found = GRADE_FOUND_NONE;
        }
    }
    if (how) *how = found;
    return out;
}

char *grade_extract(const char *text, size_t len, const grade_config *c) {
    return grade_extract_found(text, len, c, NULL);
}

/* ---- gold answers ------------------------------------------------------------------------ */

/* A JSON answer field as text: strings as they are, numbers without a needless ".0". */
static int field_text(const cJSON *v, const char *key, char **out, mart_err *err) {
    if (cJSON_IsString(v)) {
        *out = mart_xstrdup(v->valuestring);
        return MART_OK;
    }
    if (cJSON_IsNumber(v)) {
        char buf[64];
        double x = v->valuedouble;
        if (x == floor(x) && fabs(x) < 1e15)
            snprintf(buf, sizeof buf, "%.0f", x);
        else
            snprintf(buf, sizeof buf, "%.17g", x);
        *out = mart_xstrdup(buf);
        return MART_OK;
    }
    return mart_fail(err, "field \"%s\": expected a string or a number", key);
}

/* Strips surrounding '$' and spaces (olympiadbench writes "$2 n$"). */
static char *strip_math(const char *s) {
    size_t n = strlen(s);
    while (n && (isspace((unsigned char)*s) || *s == '$'))
        s++, n--;
    while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '$'))
        n--;
    char *out = mart_xmalloc(n + 1);
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

int grade_gold_answer(const struct cJSON *rec, const char *bench, const char *answer_key,
                      char **gold, mart_err *err) {
    *gold = NULL;
    if (!cJSON_IsObject(rec)) return mart_fail(err, "record is not a JSON object");
    bench = bench ? bench : "";
    if (!strcmp(bench, "minerva_math") || !strcmp(bench, "math")) {
        const cJSON *sol = cJSON_GetObjectItemCaseSensitive(rec, "solution");
        if (!cJSON_IsString(sol))
            return mart_fail(err, "field \"solution\": missing or not a string");
        *gold = grade_extract(sol->valuestring, strlen(sol->valuestring), NULL);
        if (!*gold) return mart_fail(err, "field \"solution\": no boxed answer");
        return MART_OK;
    }
    if (!strcmp(bench, "olympiadbench")) {
        const cJSON *fa = cJSON_GetObjectItemCaseSensitive(rec, "final_answer");
        if (!cJSON_IsArray(fa) || cJSON_GetArraySize(fa) == 0)
            return mart_fail(err, "field \"final_answer\": missing or not a non-empty list");
        /* several answers are all required: a list answer joining them */
        mart_buf b = {0};
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, fa) {
            char *t;
            if (field_text(it, "final_answer", &t, err) != MART_OK) {
                mart_buf_free(&b);
                return MART_ERR;
            }
            char *s = strip_math(t);
            if (i++) mart_buf_append(&b, ", ", 2);
            mart_buf_append(&b, s, strlen(s));
            free(s);
            free(t);
        }
        mart_buf_append(&b, "", 1);
        *gold = b.data;
        return MART_OK;
    }
    if (!strcmp(bench, "gsm8k")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, "answer");
        if (!cJSON_IsString(a)) return mart_fail(err, "field \"answer\": missing or not a string");
        const char *h = strstr(a->valuestring, "####");
        if (!h) return mart_fail(err, "field \"answer\": no '####' line");
        h += 4;
        while (*h == ' ')
            h++;
        size_t n = strcspn(h, "\n");
        char *out = mart_xmalloc(n + 1);
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (h[i] != ',') out[w++] = h[i]; /* 1,000 */
        while (w && isspace((unsigned char)out[w - 1]))
            w--;
        out[w] = 0;
        *gold = out;
        return MART_OK;
    }
    const char *key = answer_key ? answer_key : "answer";
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!a) return mart_fail(err, "field \"%s\": missing", key);
    char *t;
    if (field_text(a, key, &t, err) != MART_OK) return MART_ERR;
    *gold = strip_math(t);
    free(t);
    return MART_OK;
}
