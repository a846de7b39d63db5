/* mart grade: grades answers against gold answers (see include/mart/grade.h). The output
 * format is a stable contract used by tools outside the project. */
#include "cli/cli.h"
#include "mart/grade.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void print_result(bool equal, const char *pred) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "equal", equal);
    mart_json_add_string(o, "pred", pred ? pred : "");
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
    if (cJSON_IsString(pred))
        answer = mart_xstrdup(pred->valuestring);
    else if (cJSON_IsNumber(pred)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", pred->valuedouble);
        answer = mart_xstrdup(buf);
    } else if (cJSON_IsString(resp))
        answer = grade_extract(resp->valuestring, strlen(resp->valuestring), cfg);
    else {
        free(gold);
        return mart_fail(err, "needs a string field \"pred\" or \"response\"");
    }
    print_result(answer && grade_equal(answer, gold, cfg), answer);
    free(answer);
    free(gold);
    return MART_OK;
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
        {"rel-tol", CLI_DOUBLE, &cfg.rel_tol, "relative tolerance of numeric comparison"},
        {"work-limit", CLI_INT64, &cfg.work_limit, "bound on parse/eval steps per comparison"},
        {"fallback", CLI_FLAG, &fallback,
         "without a box, take \"the answer is ...\" (evaluation only)"},
    };
    int rc = cli_parse("grade", "(--input FILE.jsonl | --pred A --gold B)",
                       "Prints {\"equal\":true|false,\"pred\":\"<answer>\"} per pair, in order.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    cfg.fallback_extract = fallback;
    mart_err err = {{0}};
    if (pred || gold) {
        if (!pred || !gold || input) {
            mart_fail(&err, "give either --input, or both --pred and --gold");
            return cli_error("grade", &err);
        }
        print_result(grade_equal(pred, gold, &cfg), pred);
        return 0;
    }
    if (!input) {
        mart_fail(&err, "give --input FILE.jsonl or --pred A --gold B (see --help)");
        return cli_error("grade", &err);
    }
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
        if (got < 0 || grade_record(rec, &cfg, &err) != MART_OK) {
            if (got >= 0) mart_fail_wrap(&err, "%s:%lld", input, (long long)r.line);
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
