/* libFuzzer target for the JSONL reader every command shares: any bytes give records or
 * refused lines (never a crash, never a string cut at an escaped NUL), and every string of
 * every record, written back with mart_json_quote, is valid UTF-8 that cJSON parses to the
 * repaired string. Error messages are checked the same way. Built only with clang (see
 * tests/fuzz.cmake). */
#include "fuzz_util.h"
#include "mart/core.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void assert_valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        bool valid;
        i += mart_utf8_next(s + i, n - i, &valid);
        FUZZ_CHECK(valid);
    }
}

/* Quotes s, checks the JSON text, and parses it back. */
static void check_quote(const char *s, size_t n) {
    mart_buf q = {0}, want = {0};
    mart_json_quote(&q, s, n);
    assert_valid_utf8(q.data, q.len);
    mart_utf8_repair(&want, s, n);
    mart_buf_append(&q, "", 1);
    cJSON *back = cJSON_Parse(q.data);
    FUZZ_CHECK(cJSON_IsString(back));
    if (!memchr(want.data ? want.data : "", 0, want.len)) {
        FUZZ_CHECK(strlen(back->valuestring) == want.len);
        FUZZ_CHECK(want.len == 0 || !memcmp(back->valuestring, want.data, want.len));
    }
    cJSON_Delete(back);
    mart_buf_free(&q);
    mart_buf_free(&want);
}

static void check_strings(const cJSON *j) {
    if (cJSON_IsString(j)) check_quote(j->valuestring, strlen(j->valuestring));
    if (j->string) check_quote(j->string, strlen(j->string));
    for (const cJSON *c = j->child; c; c = c->next)
        check_strings(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    mart_jsonl r;
    mart_err err = {{0}};
    if (mart_jsonl_open(&r, path, &err) != MART_OK) {
        close(fd);
        return 0;
    }
    for (;;) {
        cJSON *o = NULL;
        int rc = mart_jsonl_next(&r, &o, &err);
        if (rc == 0) break;
        if (rc < 0) {
            FUZZ_CHECK(!r.io_error && err.msg[0] != 0);
            check_quote(err.msg, strlen(err.msg));
            continue;
        }
        check_strings(o);
        cJSON_Delete(o);
    }
    mart_jsonl_close(&r);
    close(fd);
    return 0;
}
