/* core: RNG streams, atomic file writes, JSONL errors, buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
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

static void jsonl_reports_malformed_and_empty_lines_with_line_numbers(void **state) {
    (void)state;
    char path[] = "/tmp/mart_jsonl_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "{\"a\":1}\n{\"a\":2}\n{\"a\":\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mart_err err = {0};
    cJSON **objs = NULL;
    int64_t n = 0;
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_ERR);
    assert_non_null(strstr(err.msg, ":3:"));
    mart_jsonl r;
    assert_int_equal(mart_jsonl_open(&r, path, &err), MART_OK);
    cJSON *o;
    assert_int_equal(mart_jsonl_next(&r, &o, &err), 1);
    assert_int_equal(cJSON_GetObjectItem(o, "a")->valueint, 1);
    cJSON_Delete(o);
    mart_jsonl_close(&r);
    FILE *f = fopen(path, "w");
    fputs("{\"a\":1}\n\n", f);
    fclose(f);
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_ERR);
    assert_non_null(strstr(err.msg, ":2: empty line"));
    unlink(path);
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
        cmocka_unit_test(jsonl_reports_malformed_and_empty_lines_with_line_numbers),
        cmocka_unit_test(buffer_grows_and_formats_and_strings_concatenate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
