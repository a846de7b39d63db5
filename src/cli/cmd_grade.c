/* mart grade: grades answers against gold answers (see include/mart/grade.h). The output
 * format is a stable contract used by tools outside the project: one JSON line per record
 * (blank lines skipped), in order, always valid UTF-8. */
#include "cli/cli.h"
#include "mart/grade.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* {"equal":..,"pred":..}, then "verdict" and "reason" when undecided, "details" when the
 * verdict needed an assumption, "found" when the answer came from a fallback. */
static void print_result(const grade_result *r, const char *pred, grade_found found) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "equal", r->verdict == GRADE_EQUAL);
    mart_json_add_string(o, "pred", pred ? pred : "");
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

/* Grades every record of `input` under the JSONL policy (include/mart/core.h): one output
 * line per record, a verdict or an error object naming the line; blank lines are skipped.
 * Returns the exit status. */
static int grade_batch(const char *input, const grade_config *cfg) {
    mart_err err = {{0}};
    mart_jsonl r;
    if (mart_jsonl_open(&r, input, &err) != MART_OK) return cli_error("grade", &err);
    int status = 0;
    for (;;) {
        cJSON *rec = NULL;
        int got = mart_jsonl_next(&r, &rec, &err);
        if (got == 0) break;
        if (got < 0 && r.io_error) {
            status = cli_error("grade", &err);
            break;
        }
        if (got > 0 && !cJSON_IsObject(rec)) got = mart_fail(&err, "record is not a JSON object");
        else if (got > 0) got = grade_record(rec, cfg, &err);
        if (got < 0) {
            if (rec) mart_fail_wrap(&err, "%s:%lld", r.path, (long long)r.line);
            mart_jsonl_answer_error(&r, stdout, "grade", r.line, &err);
        }
        cJSON_Delete(rec);
    }
    if (!status) status = cli_batch_status("grade", &r);
    mart_jsonl_close(&r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mart_fail(&err, "cannot write to stdout");
        status = cli_error("grade", &err);
    }
    return status;
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
        "gradable record (then the exit status is 1 once all are answered); blank lines are "
        "skipped.",
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
    return grade_batch(input, &cfg);
}
