/* mart detokenize: JSONL {"ids": [...]} -> {"text": "..."}, the reverse of mart tokenize. */
#include "cli/cli.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

int cmd_detokenize(int argc, char **argv) {
    const char *tokenizer = NULL, *input = NULL;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &tokenizer,
         "tokenizer.json, or a model directory holding one (required)"},
        {"input", CLI_STR, &input, "JSONL file of {\"ids\": [...]} lines (default: stdin)"},
    };
    int pr = cli_parse("detokenize", "--tokenizer PATH [--input FILE.jsonl]",
                       "Decodes each {\"ids\": [...]} line to {\"text\": \"...\"} on stdout "
                       "(special tokens included as their text). Bytes that are not valid UTF-8 (a "
                       "character cut by the last id) become U+FFFD, one per maximal invalid "
                       "sequence. A bad line is answered with {\"line\": N, \"error\": ...} and "
                       "the exit status is 1 once all lines are answered.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!tokenizer) {
        mart_fail(&err, "--tokenizer is required");
        return cli_error("detokenize", &err);
    }
    tok_tokenizer *tok;
    if (tok_load(tokenizer, &tok, &err) != MART_OK) return cli_error("detokenize", &err);
    mart_jsonl r;
    if (mart_jsonl_open(&r, input, &err) != MART_OK) {
        tok_free(tok);
        return cli_error("detokenize", &err);
    }
    int status = 0;
    mart_buf text = {0}, line = {0};
    int32_t *ids = NULL;
    int64_t cap = 0;
    for (;;) {
        cJSON *o;
        int rc = mart_jsonl_next(&r, &o, &err);
        if (rc == 0) break;
        if (rc < 0 && r.io_error) {
            status = cli_error("detokenize", &err);
            break;
        }
        const cJSON *arr = rc > 0 ? cJSON_GetObjectItemCaseSensitive(o, "ids") : NULL;
        int64_t n = 0;
        bool ok = cJSON_IsArray(arr);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble)
                ok = false;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                ids = mart_xrealloc(ids, (size_t)cap * sizeof *ids);
            }
            ids[n++] = ok ? (int32_t)it->valuedouble : -1;
        }
        cJSON_Delete(o);
        text.len = 0;
        if (rc > 0 && !ok)
            rc = mart_fail(&err, "%s:%lld: field \"ids\" missing or not an array of integers",
                           r.path, (long long)r.line);
        else if (rc > 0 && tok_decode(tok, ids, n, &text, &err) != MART_OK)
            rc = mart_fail_wrap(&err, "%s:%lld", r.path, (long long)r.line);
        if (rc < 0) {
            mart_jsonl_answer_error(&r, stdout, "detokenize", r.line, &err);
            continue;
        }
        line.len = 0;
        mart_buf_append(&line, "{\"text\":", 8);
        mart_json_quote(&line, text.data ? text.data : "", text.len);
        mart_buf_append(&line, "}\n", 2);
        fwrite(line.data, 1, line.len, stdout);
    }
    if (!status) status = cli_batch_status("detokenize", &r);
    free(ids);
    mart_buf_free(&text);
    mart_buf_free(&line);
    mart_jsonl_close(&r);
    tok_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mart_fail(&err, "cannot write to stdout");
        status = cli_error("detokenize", &err);
    }
    return status;
}
