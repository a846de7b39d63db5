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

/* Finds the last complete box; returns its [start, end) or false. */
static bool last_box(const char *text, size_t len, bool final, size_t *s, size_t *e) {
    bool found = false;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *b = memchr(p, '\\', (size_t)(end - p));
        if (!b) break;
        size_t i = (size_t)(b - text), st, en, after;
        if (b + 1 < end && (b[1] == 'b' || b[1] == 'f') &&
            box_at(text, len, i, final, &st, &en, &after)) {
            *s = st;
            *e = en;
            found = true;
            p = text + after;
        } else
            p = b + 1;
    }
    return found;
}

bool grade_has_boxed(const char *text, size_t len) {
    size_t s, e;
    return last_box(text, len, false, &s, &e);
}

/* "The answer is X." — the evaluation-only fallback: X up to the end of its sentence. */
static char *fallback_answer(const char *text, size_t len) {
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
    while (q > st && isspace((unsigned char)q[-1]))
        q--;
    if (q == st) return NULL;
    char *out = mart_xmalloc((size_t)(q - st) + 1);
    memcpy(out, st, (size_t)(q - st));
    out[q - st] = 0;
    return out;
}

char *grade_extract(const char *text, size_t len, const grade_config *c) {
    if (!text) return NULL;
    size_t s, e;
    if (last_box(text, len, true, &s, &e)) {
        while (s < e && isspace((unsigned char)text[s]))
            s++;
        while (e > s && isspace((unsigned char)text[e - 1]))
            e--;
        if (e == s) return NULL;
        char *out = mart_xmalloc(e - s + 1);
        memcpy(out, text + s, e - s);
        out[e - s] = 0;
        return out;
    }
    if (c && c->fallback_extract) return fallback_answer(text, len);
    return NULL;
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
