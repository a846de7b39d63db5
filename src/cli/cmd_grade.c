/* mart grade: grades answers against gold answers (see include/mart/grade.h). The output
 * format is a stable contract used by tools outside the project: one JSON line per input
 * line, in order, always valid UTF-8. */
#include "cli/cli.h"
#include "mart/grade.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Input text may hold any bytes; JSON output must be valid UTF-8, so each byte that does not
 * start a well-formed UTF-8 character becomes U+FFFD. Returns a malloc'd string. */
static char *utf8_clean(const char *s) {
    size_t n = strlen(s);
    mart_buf b = {0};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = u[i + k] >= (k == 1 ? lo : 0x80) && u[i + k] <= (k == 1 ? hi : 0xBF);
        if (ok) {
            mart_buf_append(&b, s + i, len);
            i += len;
        } else {
            mart_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    mart_buf_append(&b, "", 1);
    return b.data;
}

static void add_clean_string(cJSON *o, const char *key, const char *s) {
    char *c = utf8_clean(s);
    cJSON_AddStringToObject(o, key, c);
    free(c);
}

/* {"equal":..,"pred":..}, then "verdict" and "reason" when undecided, "details" when the
 * verdict needed an assumption, "found" when the answer came from a fallback. */
static void print_result(const grade_result *r, const char *pred, grade_found found) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "equal", r->verdict == GRADE_EQUAL);
    add_clean_string(o, "pred", pred ? pred : "");
    if (r->verdict == GRADE_UNDECIDED) {
        cJSON_AddStringToObject(o, "verdict", grade_verdict_name(r->verdict));
        cJSON_AddStringToObject(o, "reason", r->reason ? r->reason : "");
    } else if (r->reason)
        cJSON_AddStringToObject(o, "details", r->reason);
    if (found == GRADE_FOUND_PHRASE) cJSON_AddStringToObject(o, "found", "phrase");
    if (found == GRADE_FOUND_LAST_NUMBER) cJSON_AddStringToObject(o, "found", "last_number");
    mart_json_print_line(stdout, o);
    cJSON_Delete(o);
}

/* The error line that stands for input line `line`: {"line":N,"error":"FILE:N: ..."}. */
static void print_error(int64_t line, const mart_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)line);
    add_clean_string(o, "error", err->msg);
    mart_json_print_line(stdout, o);
    cJSON_Delete(o);
}

/* One JSONL record: {"gold": ..., "pred": ...} or {"gold": ..., "response": ...}. */
static int grade_record(const cJSON *rec, const grade_config *cfg, mart_err *err) {
    char *gold = NULL;
    if (grade_gold_answer(rec, NULL, "gold", &gold, err) != MART_OK) return MART_ERR;
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(rec, "pred");
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(rec, "response");
    char *answer = NULL;
    grade_found found = GRADE_FOUND_BOX;
    if (cJSON_IsString(pred))
        answer = mart_xstrdup(pred->valuestring);
    else if (cJSON_IsNumber(pred)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", pred->valuedouble);
        answer = mart_xstrdup(buf);
    } else if (cJSON_IsString(resp))
        answer = grade_extract_found(resp->valuestring, strlen(resp->valuestring), cfg, &found);
    else {
        free(gold);
        return mart_fail(err, "needs a string field \"pred\" or \"response\"");
    }
    grade_result r = {GRADE_UNEQUAL, NULL};
    if (answer) r = grade_compare(answer, gold, cfg);
    print_result(&r, answer, found);
    free(answer);
    free(gold);
    return MART_OK;
}

/* Grades one input line (without its newline); on a bad line, err names it. */
static int grade_line(const char *s, const grade_config *cfg, mart_err *err) {
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s) return mart_fail(err, "empty line");
    const char *end = NULL;
    cJSON *rec = cJSON_ParseWithOpts(s, &end, 1);
    if (!rec)
        return mart_fail(err, "malformed JSON (or an invalid \\u escape) near column %ld",
                         end ? (long)(end - s) + 1 : 1L);
    int rc = cJSON_IsObject(rec) ? grade_record(rec, cfg, err)
                                 : mart_fail(err, "record is not a JSON object");
    cJSON_Delete(rec);
    return rc;
}

/* Every line of `input` gets exactly one output line, a verdict or an error naming the line;
 * returns the number of lines in error (a summary naming the first goes to stderr). */
static int grade_batch(const char *input, const grade_config *cfg, mart_err *err) {
    FILE *f = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!f) return mart_fail(err, "%s: cannot open: %s", input, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    int64_t line = 0, bad = 0;
    mart_err first = {{0}};
    for (ssize_t n; (n = getline(&buf, &cap, f)) >= 0;) {
        line++;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = 0;
        mart_err e = {{0}};
        if ((size_t)n != strlen(buf))
            mart_fail(&e, "a NUL byte inside the line");
        else if (grade_line(buf, cfg, &e) == MART_OK)
            continue;
        mart_fail_wrap(&e, "%s:%lld", input, (long long)line);
        print_error(line, &e);
        if (!bad++) first = e;
    }
    free(buf);
    if (f != stdin) fclose(f);
    if (!bad) return MART_OK;
    return mart_fail(err,
                     "%lld of %lld lines are not gradable (error lines in the output); first: %s",
                     (long long)bad, (long long)line, first.msg);
}

int cmd_grade(int argc, char **argv) {
    const char *input = NULL, *pred = NULL, *gold = NULL;
    grade_config cfg;
    grade_config_default(&cfg);
    bool fallback = false;
    cli_opt opts[] = {
        {"input", CLI_STR, &input,
         "JSONL file with \"gold\" and \"pred\" or \"response\" per line "
         "(- for stdin)"},
        {"pred", CLI_STR, &pred, "one predicted answer (with --gold)"},
        {"gold", CLI_STR, &gold, "one gold answer (with --pred)"},
        {"rel-tol", CLI_DOUBLE, &cfg.rel_tol,
         "relative tolerance of numeric comparison with a decimal gold"},
        {"work-limit", CLI_INT64, &cfg.work_limit, "bound on parse/eval steps per comparison"},
        {"fallback", CLI_FLAG, &fallback,
         "without a box, take a final-answer phrase, then the last number (evaluation only)"},
    };
    int rc = cli_parse(
        "grade", "(--input FILE.jsonl | --pred A --gold B)",
        "Prints {\"equal\":true|false,\"pred\":\"<answer>\"} per input line, in order; "
        "\"verdict\":\"undecided\" and \"reason\" when a bound was reached, \"found\" when the "
        "answer came from the fallback, {\"line\":N,\"error\":\"...\"} for a line that is not a "
        "record (then the exit status is 1).",
        opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    cfg.fallback_extract = fallback;
    mart_err err = {{0}};
    if (pred || gold) {
        if (!pred || !gold || input) {
            mart_fail(&err, "give either --input, or both --pred and --gold");
            return cli_error("grade", &err);
        }
        grade_result r = grade_compare(pred, gold, &cfg);
        print_result(&r, pred, GRADE_FOUND_BOX);
        return 0;
    }
    if (!input) {
        mart_fail(&err, "give --input FILE.jsonl or --pred A --gold B (see --help)");
        return cli_error("grade", &err);
    }
    if (grade_batch(input, &cfg, &err) != MART_OK) {
        fflush(stdout);
        cli_error("grade", &err);
        return 1;
    }
    return 0;
}
