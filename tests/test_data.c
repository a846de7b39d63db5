/* data tests: where the data directory is (flag, then MART_DATA, then the user's cache), the
 * benchmark names and their files, the sha256 of a known string. Downloads and the prepared
 * sets are checked end to end by tests/data_cli.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mart/data.h"

static void data_dir_is_the_flag_then_mart_data_then_the_cache(void **state) {
    (void)state;
    char buf[4096];
    mart_err err;
    setenv("MART_DATA", "/from/env", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(data_dir_resolve("/from/flag", buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/from/flag");
    assert_int_equal(data_dir_resolve(NULL, buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/from/env");
    setenv("MART_DATA", "", 1);
    assert_int_equal(data_dir_resolve(NULL, buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/home/u/.cache/mart/data");
    unsetenv("HOME");
    assert_int_equal(data_dir_resolve(NULL, buf, sizeof buf, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--data-dir"));
    char tiny[8];
    assert_int_equal(data_dir_resolve("/a/long/path", tiny, sizeof tiny, &err), MART_ERR);
}

static void benchmark_names_map_to_their_files(void **state) {
    (void)state;
    char buf[4096];
    mart_err err;
    assert_int_equal(data_bench_path("/d", "math500", buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/d/bench/math500.jsonl");
    assert_int_equal(data_bench_path("/d", "gsm8k", buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/d/bench/gsm8k.jsonl");
    assert_int_equal(data_bench_path("/d", "math", buf, sizeof buf, &err), MART_OK);
    assert_string_equal(buf, "/d/math/test.jsonl");
    assert_int_equal(data_bench_path("/d", "math501", buf, sizeof buf, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "math501"));
    /* Every known set has files with 64-hex-digit hashes and distinct paths. */
    int32_t n;
    const data_set *sets = data_sets(&n);
    assert_true(n >= 7);
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < sets[i].n_files; j++) {
            assert_int_equal(strlen(sets[i].files[j].sha256), 64);
            assert_int_equal(strspn(sets[i].files[j].sha256, "0123456789abcdef"), 64);
        }
}

static void sha256_of_a_file_is_the_standard_one(void **state) {
    (void)state;
    char dir[] = "/tmp/mart_data_XXXXXX", path[4200], hex[65];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/abc", dir);
    mart_err err;
    assert_int_equal(mart_write_file_atomic(path, "abc", 3, &err), MART_OK);
    assert_int_equal(data_sha256_file(path, hex, &err), MART_OK);
    /* FIPS 180-2, appendix B.1 */
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unlink(path);
    rmdir(dir);
    assert_int_equal(data_sha256_file(path, hex, &err), MART_ERR);
    assert_non_null(strstr(err.msg, path));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_dir_is_the_flag_then_mart_data_then_the_cache),
        cmocka_unit_test(benchmark_names_map_to_their_files),
        cmocka_unit_test(sha256_of_a_file_is_the_standard_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
