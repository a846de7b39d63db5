/* mart tokenize: JSONL {"text": "..."} -> {"ids": [...]} with a tokenizer.json (stable
 * contract used by tools outside the project). */
#include "cli/cli.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
    const char *tokenizer = NULL, *input = NULL;
    bool specials = false;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &tokenizer,
         "tokenizer.json, or a model directory holding one (required)"},
        {"input", CLI_STR, &input, "JSONL file of {\"text\": ...} lines (default: stdin)"},
        {"specials", CLI_FLAG, &specials,
         "add BOS/EOS where tokenizer_config.json asks for them (add_bos_token, "
         "add_eos_token)"},
    };
    int pr = cli_parse(
        "tokenize", "--tokenizer PATH [--input FILE.jsonl]",
        "Encodes each {\"text\": \"...\"} line to {\"ids\": [...]} on stdout. No BOS/EOS "
        "is added unless --specials; special-token strings in the text (e.g. <|im_end|>) "
        "become their single ids. A bad line is answered with {\"line\": N, \"error\": ...} "
        "and the exit status is 1 once all lines are answered.",
        opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!tokenizer) {
        mart_fail(&err, "--tokenizer is required");
        return cli_error("tokenize", &err);
    }
    tok_tokenizer *tok;
    if (tok_load(tokenizer, &tok, &err) != MART_OK) return cli_error("tokenize", &err);
    mart_jsonl r;
    if (mart_jsonl_open(&r, input, &err) != MART_OK) {
        tok_free(tok);
        return cli_error("tokenize", &err);
    }
    int status = 0;
    mart_buf line = {0};
    int32_t *ids = NULL;
    for (;;) {
        cJSON *o;
        int rc = mart_jsonl_next(&r, &o, &err);
        if (rc == 0) break;
        if (rc < 0 && r.io_error) {
            status = cli_error("tokenize", &err);
            break;
        }
        const cJSON *text = rc > 0 ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
        int64_t n = 0;
        if (rc > 0 && !cJSON_IsString(text))
            rc = mart_fail(&err, "%s:%lld: field \"text\" missing or not a string", r.path,
                           (long long)r.line);
        else if (rc > 0 && (specials ? tok_encode_specials : tok_encode)(
                               tok, text->valuestring, strlen(text->valuestring), &ids, &n,
                               &err) != MART_OK)
            rc = mart_fail_wrap(&err, "%s:%lld", r.path, (long long)r.line);
        cJSON_Delete(o);
        if (rc < 0) {
            mart_jsonl_answer_error(&r, stdout, "tokenize", r.line, &err);
            continue;
        }
        line.len = 0;
        mart_buf_append(&line, "{\"ids\":[", 8);
        for (int64_t i = 0; i < n; i++)
            mart_buf_printf(&line, i ? ",%d" : "%d", (int)ids[i]);
        mart_buf_append(&line, "]}\n", 3);
        fwrite(line.data, 1, line.len, stdout);
    }
    if (!status) status = cli_batch_status("tokenize", &r);
    free(ids);
    mart_buf_free(&line);
    mart_jsonl_close(&r);
    tok_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mart_fail(&err, "cannot write to stdout");
        status = cli_error("tokenize", &err);
    }
    return status;
}
