/* mart detokenize: JSONL {"ids": [...]} -> {"text": "..."}, the reverse of mart tokenize. */
#include "cli/cli.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

/* JSON string body: quotes, backslashes and control characters escaped; other bytes (UTF-8,
 * or invalid bytes a model produced) written as they are, so the bytes round-trip. */
static void json_escape(mart_buf *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            mart_buf_append(o, e, 2);
        } else if (c == '\n') {
            mart_buf_append(o, "\\n", 2);
        } else if (c == '\t') {
            mart_buf_append(o, "\\t", 2);
        } else if (c == '\r') {
            mart_buf_append(o, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            mart_buf_printf(o, "\\u%04x", c);
        } else {
            mart_buf_append(o, s + i, 1);
        }
    }
}

int cmd_detokenize(int argc, char **argv) {
    const char *tokenizer = NULL, *input = NULL;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &tokenizer,
         "tokenizer.json, or a model directory holding one (required)"},
        {"input", CLI_STR, &input, "JSONL file of {\"ids\": [...]} lines (default: stdin)"},
    };
    int pr = cli_parse("detokenize", "--tokenizer PATH [--input FILE.jsonl]",
                       "Decodes each {\"ids\": [...]} line to {\"text\": \"...\"} on stdout "
                       "(special tokens included as their text).",
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
        if (rc < 0) {
            status = cli_error("detokenize", &err);
            break;
        }
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "ids");
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
        if (!ok) {
            mart_fail(&err, "%s:%lld: field \"ids\" missing or not an array of integers", r.path,
                      (long long)r.line);
            status = cli_error("detokenize", &err);
            break;
        }
        text.len = 0;
        if (tok_decode(tok, ids, n, &text, &err) != MART_OK) {
            mart_fail_wrap(&err, "%s:%lld", r.path, (long long)r.line);
            status = cli_error("detokenize", &err);
            break;
        }
        line.len = 0;
        mart_buf_append(&line, "{\"text\":\"", 9);
        json_escape(&line, text.data ? text.data : "", text.len);
        mart_buf_append(&line, "\"}\n", 3);
        fwrite(line.data, 1, line.len, stdout);
    }
    free(ids);
    mart_buf_free(&text);
    mart_buf_free(&line);
    mart_jsonl_close(&r);
    tok_free(tok);
    if (fflush(stdout) != 0 && !status) {
        mart_fail(&err, "cannot write to stdout");
        status = cli_error("detokenize", &err);
    }
    return status;
}
