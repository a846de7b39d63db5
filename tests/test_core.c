/* core: RNG streams, atomic file writes, the JSONL policy, UTF-8 repair, JSON text, buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <math.h>

#include "mart/core.h"

static void rng_same_seed_and_stream_gives_same_sequence(void **state) {
    (void)state;
    mart_rng a, b, c;
    mart_rng_seed(&a, 42, 7);
    mart_rng_seed(&b, 42, 7);
    mart_rng_seed(&c, 42, 8);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = mart_rng_u64(&a), y = mart_rng_u64(&b), z = mart_rng_u64(&c);
        assert_true(x == y);
        differ += x != z;
    }
    assert_true(differ > 90);
}

static void rng_uniform_and_normal_have_expected_moments(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 1, 0);
    double s = 0, s2 = 0, u = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = mart_rng_normal(&r);
        s += x;
        s2 += x * x;
        double v = mart_rng_uniform(&r);
        assert_true(v >= 0 && v < 1);
        u += v;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1) < 0.02);
    assert_true(fabs(u / n - 0.5) < 0.005);
    for (int i = 0; i < 1000; i++) {
        int64_t k = mart_rng_range(&r, -3, 3);
        assert_true(k >= -3 && k <= 3);
    }
}

static void atomic_write_replaces_file_and_leaves_no_temporary(void **state) {
    (void)state;
    char dir[] = "/tmp/mart_core_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    mart_path_join(path, sizeof path, dir, "f.txt");
    mart_err err = {0};
    assert_int_equal(mart_write_file_atomic(path, "old", 3, &err), MART_OK);
    assert_int_equal(mart_write_file_atomic(path, "new!", 4, &err), MART_OK);
    char *data;
    size_t len;
    assert_int_equal(mart_read_file(path, &data, &len, &err), MART_OK);
    assert_int_equal(len, 4);
    assert_string_equal(data, "new!");
    free(data);
    /* A write into a missing directory fails with the path in the message. */
    char bad[300];
    mart_path_join(bad, sizeof bad, dir, "missing/f.txt");
    assert_int_equal(mart_write_file_atomic(bad, "x", 1, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "missing/f.txt"));
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
    assert_false(mart_path_exists(dir));
}

static void write_text(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void jsonl_reports_malformed_lines_and_skips_blank_ones(void **state) {
    (void)state;
    char path[] = "/tmp/mart_jsonl_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *text = "{\"a\":1}\n{\"a\":2}\n{\"a\":\n";
    write_text(path, text, strlen(text));
    mart_err err = {0};
    cJSON **objs = NULL;
    int64_t n = 0;
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_ERR);
    assert_non_null(strstr(err.msg, ":3: malformed JSON"));
    mart_jsonl r;
    assert_int_equal(mart_jsonl_open(&r, path, &err), MART_OK);
    cJSON *o;
    assert_int_equal(mart_jsonl_next(&r, &o, &err), 1);
    assert_int_equal(cJSON_GetObjectItem(o, "a")->valueint, 1);
    cJSON_Delete(o);
    mart_jsonl_close(&r);
    /* Blank lines (CRLF ones included) are not records; a trailing one changes nothing. */
    text = "\r\n{\"a\":1}\r\n  \t\n\n{\"a\":2}\n\n";
    write_text(path, text, strlen(text));
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cJSON_GetObjectItem(objs[1], "a")->valueint, 2);
    mart_jsonl_free(objs, n);
    unlink(path);
}

/* Reads every record of `text`; returns how many were refused and keeps the last message. */
static int count_refused(const char *text, size_t len, int *n_ok, mart_err *err) {
    char path[] = "/tmp/mart_jsonl_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_text(path, text, len);
    mart_jsonl r;
    assert_int_equal(mart_jsonl_open(&r, path, err), MART_OK);
    int bad = 0, rc;
    mart_err e = {0};
    *n_ok = 0;
    cJSON *o;
    while ((rc = mart_jsonl_next(&r, &o, &e)) != 0) {
        if (rc < 0) {
            bad++;
            *err = e;
        } else {
            (*n_ok)++;
        }
        cJSON_Delete(o);
    }
    mart_jsonl_close(&r);
    unlink(path);
    return bad;
}

static void jsonl_refuses_nul_escapes_lone_surrogates_and_raw_nul_naming_the_field(void **state) {
    (void)state;
    mart_err err = {0};
    int ok;
    const char *nul = "{\"id\":1,\"text\":\"a\\u0000b\"}\n";
    assert_int_equal(count_refused(nul, strlen(nul), &ok, &err), 1);
    assert_non_null(strstr(err.msg, ":1: field 'text' contains U+0000 (column 18)"));
    const char *nested = "{\"m\":[{\"x\":1},\"\\u0000\"]}\n";
    assert_int_equal(count_refused(nested, strlen(nested), &ok, &err), 1);
    assert_non_null(strstr(err.msg, "field 'm'"));
    const char *key = "{\"a\\u0000\":1}\n";
    assert_int_equal(count_refused(key, strlen(key), &ok, &err), 1);
    assert_non_null(strstr(err.msg, "a key contains U+0000"));
    const char *lone = "{\"t\":\"x\\udc00\"}\n{\"t\":\"\\ud83d x\"}\n{\"t\":\"\\ud83d\\ude00\"}\n";
    assert_int_equal(count_refused(lone, strlen(lone), &ok, &err), 2);
    assert_int_equal(ok, 1);
    assert_non_null(strstr(err.msg, ":2: field 't' holds a lone surrogate escape \\uD83D"));
    /* An escaped backslash before "u0000" is text, not an escape. */
    const char *text = "{\"t\":\"\\\\u0000\"}\n";
    assert_int_equal(count_refused(text, strlen(text), &ok, &err), 0);
    const char raw[] = "{\"t\":\"a\0b\"}\n{\"t\":\"c\"}\n";
    assert_int_equal(count_refused(raw, sizeof raw - 1, &ok, &err), 1);
    assert_int_equal(ok, 1);
    assert_non_null(strstr(err.msg, ":1: raw NUL byte at column 8"));
}

/* Repairs bytes and returns the result as a string of hex/"U" tokens for comparison. */
static void assert_repairs_to(const char *in, size_t n, const char *want, size_t want_n,
                              size_t want_replaced) {
    mart_buf b = {0};
    assert_int_equal(mart_utf8_repair(&b, in, n), want_replaced);
    assert_int_equal(b.len, want_n);
    if (want_n) assert_memory_equal(b.data, want, want_n);
    mart_buf_free(&b);
}

static void utf8_repair_replaces_each_maximal_ill_formed_subpart_by_one_fffd(void **state) {
    (void)state;
#define R "\xEF\xBF\xBD"
    /* The Unicode standard's example (Table 3-8, "U+FFFD for maximal subparts"). */
    const char t38[] = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    const char w38[] = "a" R R R "b" R "c" R R "d";
    assert_repairs_to(t38, sizeof t38 - 1, w38, sizeof w38 - 1, 6);
    /* A character cut by the end of the text is one U+FFFD. */
    assert_repairs_to("ok\xE2\x82", 4, "ok" R, 5, 1);
    assert_repairs_to("\xF0\x9F\x98", 3, R, 3, 1);
    /* Surrogates, overlongs and code points past U+10FFFF: each byte is its own subpart. */
    assert_repairs_to("\xED\xA0\x80", 3, R R R, 9, 3);
    assert_repairs_to("\xC0\xAF", 2, R R, 6, 2);
    assert_repairs_to("\xE0\x80\xAF", 3, R R R, 9, 3);
    assert_repairs_to("\xF4\x90\x80\x80", 4, R R R R, 12, 4);
    assert_repairs_to("\xF8\x88\x80\x80\x80", 5, R R R R R, 15, 5);
    /* A good lead then a bad continuation: the lead alone, then the next byte starts over. */
    assert_repairs_to("\xE2\x82"
                      "A",
                      3, R "A", 4, 1);
#undef R
    /* Valid UTF-8 is left as it is: every code point outside the surrogates, encoded. */
    mart_buf in = {0}, out = {0};
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += cp < 0x800 ? 1 : 61) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        unsigned char e[4];
        size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (len == 1)
            e[0] = (unsigned char)cp;
        else {
            for (size_t k = len - 1; k > 0; k--)
                e[k] = (unsigned char)(0x80 | ((cp >> (6 * (len - 1 - k))) & 0x3F));
            e[0] = (unsigned char)((0xF00 >> len) | (cp >> (6 * (len - 1))));
        }
        mart_buf_append(&in, e, len);
    }
    assert_int_equal(mart_utf8_repair(&out, in.data, in.len), 0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    mart_buf_free(&in);
    mart_buf_free(&out);
    /* Random bytes always come out as valid UTF-8. */
    mart_rng rng;
    mart_rng_seed(&rng, 3, 0);
    for (int trial = 0; trial < 200; trial++) {
        char raw[64];
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (char)(0x70 + mart_rng_range(&rng, 0, 0x8F));
        mart_buf o = {0};
        mart_utf8_repair(&o, raw, sizeof raw);
        for (size_t i = 0; i < o.len;) {
            bool valid;
            i += mart_utf8_next(o.data + i, o.len - i, &valid);
            assert_true(valid);
        }
        mart_buf_free(&o);
    }
}

static void json_quote_and_number_always_give_valid_json(void **state) {
    (void)state;
    const char in[] = "q\"b\\s/\n\t\r\x01\x7f\0z\xE2\x82";
    mart_buf b = {0};
    mart_json_quote(&b, in, sizeof in - 1);
    const char want[] = "\"q\\\"b\\\\s/\\n\\t\\r\\u0001\\u007f\\u0000z\xEF\xBF\xBD\"";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, b.len);
    b.len = 0;
    assert_true(mart_json_number(&b, -1.5, 6));
    assert_false(mart_json_number(&b, NAN, 6));
    assert_false(mart_json_number(&b, -INFINITY, 6));
    mart_buf_append(&b, "", 1);
    assert_string_equal(b.data, "-1.5nullnull");
    mart_buf_free(&b);
    cJSON *o = cJSON_CreateObject();
    mart_json_add_string(o, "t", "a\xC3");
    char *s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"t\":\"a\xEF\xBF\xBD\"}");
    cJSON_free(s);
    cJSON_Delete(o);
}

static void memory_check_refuses_what_is_not_available_with_the_figure(void **state) {
    (void)state;
    mart_err err = {0};
    /* An address-space limit lowers what is available to what it leaves (in a child, so that
     * the limit does not outlive the check). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1) _exit(2);
        fclose(f);
        rlim_t used = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE), room = 64 << 20;
        struct rlimit rl = {used + room, used + room};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        int64_t avail = mart_mem_available();
        _exit(avail >= 0 && avail <= (int64_t)room && avail > (int64_t)(room / 2) ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(mart_check_memory(1024.0, "a little", &err), MART_OK);
    assert_int_equal(mart_check_memory(1e30, "the moon", &err), MART_ERR);
    assert_non_null(strstr(err.msg, "the moon would need 9.31e+20 GiB of memory"));
}

static void buffer_grows_and_formats_and_strings_concatenate(void **state) {
    (void)state;
    mart_buf b = {0};
    for (int i = 0; i < 1000; i++) mart_buf_printf(&b, "%d,", i % 10);
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    mart_buf_free(&b);
    char *c = mart_xstrcat("system\n", "");
    assert_string_equal(c, "system\n");
    free(c);
    c = mart_xstrcat("", "");
    assert_string_equal(c, "");
    free(c);
    c = mart_xstrcat("ab", "cd");
    assert_string_equal(c, "abcd");
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_same_seed_and_stream_gives_same_sequence),
        cmocka_unit_test(rng_uniform_and_normal_have_expected_moments),
        cmocka_unit_test(atomic_write_replaces_file_and_leaves_no_temporary),
        cmocka_unit_test(jsonl_reports_malformed_lines_and_skips_blank_ones),
        cmocka_unit_test(jsonl_refuses_nul_escapes_lone_surrogates_and_raw_nul_naming_the_field),
        cmocka_unit_test(utf8_repair_replaces_each_maximal_ill_formed_subpart_by_one_fffd),
        cmocka_unit_test(json_quote_and_number_always_give_valid_json),
        cmocka_unit_test(memory_check_refuses_what_is_not_available_with_the_figure),
        cmocka_unit_test(buffer_grows_and_formats_and_strings_concatenate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
