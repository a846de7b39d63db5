/* plot: SVG and PNG line charts, learning curves from metrics.jsonl, and `mart plot`. The
 * SVG is parsed loosely: data lines are the <path> elements stroked with PLOT_LINE_WIDTH,
 * one colour per series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mart/plot.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mart_test_plot_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    mart_err err;
    mart_remove_tree(tmpdir, &err);
    return 0;
}

static char *read_all(const char *path, size_t *len) {
    char *d = NULL;
    mart_err err;
    assert_int_equal(mart_read_file(path, &d, len, &err), MART_OK);
    return d;
}

/* Number of data lines: <path> elements stroked with the data-line width (one per series).
 * *colours receives the number of distinct colours among them, *subpaths the number of "M"
 * (move-to) commands in them (either may be NULL). */
static int count_lines(const char *svg, int *n_colours, int *subpaths) {
    char colours[32][64];
    int n = 0, nc = 0, moves = 0;
    char width[32];
    snprintf(width, sizeof width, "stroke-width:%g;", PLOT_LINE_WIDTH);
    for (const char *p = strstr(svg, "<path"); p; p = strstr(p + 1, "<path")) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        char *el = strndup(p, (size_t)(end - p));
        const char *st = strstr(el, "stroke:rgb(");
        if (strstr(el, width) && st) {
            n++;
            char c[64];
            snprintf(c, sizeof c, "%.*s", (int)strcspn(st, ");"), st);
            bool seen = false;
            for (int i = 0; i < nc; i++)
                seen |= !strcmp(colours[i], c);
            if (!seen && nc < 32) snprintf(colours[nc++], sizeof colours[0], "%s", c);
            const char *d = strstr(el, " d=\"");
            if (d)
                for (const char *q = d + 4; *q && *q != '"'; q++)
                    moves += *q == 'M';
        }
        free(el);
    }
    if (n_colours) *n_colours = nc;
    if (subpaths) *subpaths = moves;
    return n;
}

static void check_png(const char *path, int w, int h) {
    size_t len = 0;
    unsigned char *d = (unsigned char *)read_all(path, &len);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(len > 1000);
    assert_memory_equal(d, sig, 8);
    assert_memory_equal(d + 12, "IHDR", 4);
    int pw = (d[16] << 24) | (d[17] << 16) | (d[18] << 8) | d[19];
    int ph = (d[20] << 24) | (d[21] << 16) | (d[22] << 8) | d[23];
    assert_int_equal(pw, w);
    assert_int_equal(ph, h);
    free(d);
}

static void test_svg_has_one_data_line_per_series(void **state) {
    (void)state;
    double x[4] = {1, 2, 3, 4}, a[4] = {.1, .2, .3, .4}, b[4] = {.2, .2, .25, .3},
           c[4] = {.05, .1, .1, .12};
    plot_series s[3] = {{"a", x, a, 4}, {"b", x, b, 4}, {"c", x, c, 4}};
    plot_spec spec;
    plot_spec_default(&spec);
    spec.title = "three";
    spec.xlabel = "k";
    spec.ylabel = "accuracy";
    spec.x_integer = true;
    spec.y_percent = true;
    char base[512], path[600];
    snprintf(base, sizeof base, "%s/three", tmpdir);
    mart_err err;
    assert_int_equal(plot_write_svg_png(&spec, s, 3, base, &err), MART_OK);
    snprintf(path, sizeof path, "%s.svg", base);
    size_t len;
    char *svg = read_all(path, &len);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "</svg>"));
    int moves = 0, colours = 0;
    assert_int_equal(count_lines(svg, &colours, &moves), 3);
    assert_int_equal(colours, 3);
    assert_int_equal(moves, 3);
    free(svg);
    snprintf(path, sizeof path, "%s.png", base);
    check_png(path, spec.width, spec.height);
}

static void test_png_has_the_requested_size(void **state) {
    (void)state;
    double x[2] = {0, 1}, y[2] = {0, 1};
    plot_series s = {"line", x, y, 2};
    plot_spec spec;
    plot_spec_default(&spec);
    spec.width = 320;
    spec.height = 200;
    char path[512];
    snprintf(path, sizeof path, "%s/small.png", tmpdir);
    mart_err err;
    assert_int_equal(plot_write(&spec, &s, 1, path, &err), MART_OK);
    check_png(path, 320, 200);
}

static void test_nan_points_leave_a_gap_in_the_line(void **state) {
    (void)state;
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {1, 2, NAN, 4, 5};
    plot_series s = {"gap", x, y, 5};
    plot_spec spec;
    plot_spec_default(&spec);
    char path[512];
    snprintf(path, sizeof path, "%s/gap.svg", tmpdir);
    mart_err err;
    assert_int_equal(plot_write(&spec, &s, 1, path, &err), MART_OK);
    size_t len;
    char *svg = read_all(path, &len);
    int moves = 0;
    assert_int_equal(count_lines(svg, NULL, &moves), 1);
    assert_int_equal(moves, 2);
    free(svg);
}

static void test_bad_extension_and_empty_data_are_errors(void **state) {
    (void)state;
    double x[1] = {1}, y[1] = {NAN};
    plot_series s = {"none", x, y, 1};
    plot_spec spec;
    plot_spec_default(&spec);
    char path[512];
    mart_err err = {0};
    snprintf(path, sizeof path, "%s/empty.svg", tmpdir);
    assert_int_equal(plot_write(&spec, &s, 1, path, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "nothing to plot"));
    y[0] = 1;
    snprintf(path, sizeof path, "%s/chart.gif", tmpdir);
    assert_int_equal(plot_write(&spec, &s, 1, path, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "chart.gif"));
    assert_false(mart_path_exists(path));
}

static void write_metrics(const char *dir, int steps, bool with_eval) {
    mart_err err;
    assert_int_equal(mart_mkdirs(dir, &err), MART_OK);
    mart_buf b = {0};
    for (int s = 0; s < steps; s++) {
        mart_buf_printf(&b, "{\"step\":%d,\"reward_mean\":%g,\"accuracy\":%g,\"kl\":0.01", s,
                        -1 + 0.1 * s, 0.05 * s);
        if (with_eval && s % 5 == 0) mart_buf_printf(&b, ",\"eval_accuracy\":%g", 0.04 * s);
        mart_buf_printf(&b, "}\n");
    }
    char path[600];
    assert_int_equal(mart_write_file_atomic(mart_path_join(path, sizeof path, dir, "metrics.jsonl"),
                                            b.data, b.len, &err),
                     MART_OK);
    mart_buf_free(&b);
}

static int series_in(const char *svg_path, int *colours) {
    size_t len;
    char *svg = read_all(svg_path, &len);
    int n = count_lines(svg, colours, NULL);
    free(svg);
    return n;
}

static void test_learning_curves_draw_each_metric_that_has_points(void **state) {
    (void)state;
    char run1[512], run2[512], base[600], svg[700];
    snprintf(run1, sizeof run1, "%s/run1", tmpdir);
    snprintf(run2, sizeof run2, "%s/run2", tmpdir);
    write_metrics(run1, 12, true);
    write_metrics(run2, 8, false);
    mart_err err;
    const char *one[1] = {run1}, *both[2] = {run1, run2};
    snprintf(base, sizeof base, "%s/curves", run1);
    assert_int_equal(plot_learning_curves(one, 1, base, &err), MART_OK);
    snprintf(svg, sizeof svg, "%s.svg", base);
    assert_int_equal(series_in(svg, NULL), 3);
    snprintf(base, sizeof base, "%s/curves", run2);
    const char *two[1] = {run2};
    assert_int_equal(plot_learning_curves(two, 1, base, &err), MART_OK);
    snprintf(svg, sizeof svg, "%s.svg", base);
    assert_int_equal(series_in(svg, NULL), 2); /* no eval_accuracy in run2 */
    snprintf(base, sizeof base, "%s/both", tmpdir);
    assert_int_equal(plot_learning_curves(both, 2, base, &err), MART_OK);
    snprintf(svg, sizeof svg, "%s.svg", base);
    int colours = 0;
    assert_int_equal(series_in(svg, &colours), 5);
    assert_int_equal(colours, 3); /* one colour per metric across runs */
}

static void test_learning_curves_name_the_bad_line(void **state) {
    (void)state;
    char dir[512], path[600], base[600];
    snprintf(dir, sizeof dir, "%s/badrun", tmpdir);
    mart_err err = {0};
    mart_mkdirs(dir, &err);
    const char bad[] = "{\"step\":0,\"reward_mean\":1}\n{\"reward_mean\":2}\n";
    mart_write_file_atomic(mart_path_join(path, sizeof path, dir, "metrics.jsonl"), bad,
                           strlen(bad), &err);
    snprintf(base, sizeof base, "%s/curves", dir);
    const char *runs[1] = {dir};
    assert_int_equal(plot_learning_curves(runs, 1, base, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "metrics.jsonl:2"));
}

static void test_mart_plot_overlays_results_files_one_line_per_model(void **state) {
    (void)state;
    const char *bin = getenv("MART_BIN");
    if (!bin) skip();
    static const char *const json[2] = {
        "{\"model\":\"multi\",\"benchmarks\":{\"math500\":{\"n\":500,\"accuracy\":{\"1\":0.45,"
        "\"2\":0.52}}},\"average\":{\"1\":0.45,\"2\":0.52}}\n",
        "{\"model\":\"single\",\"benchmarks\":{\"math500\":{\"n\":500,\"accuracy\":{\"1\":0.42,"
        "\"2\":0.43}}},\"average\":{\"1\":0.42,\"2\":0.43}}\n"};
    char a[512], b[512], out[512], cmd[2048], svg[600];
    mart_err err;
    snprintf(a, sizeof a, "%s/a.json", tmpdir);
    snprintf(b, sizeof b, "%s/b.json", tmpdir);
    mart_write_file_atomic(a, json[0], strlen(json[0]), &err);
    mart_write_file_atomic(b, json[1], strlen(json[1]), &err);
    snprintf(out, sizeof out, "%s/cmp", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' plot --results '%s,%s' --out '%s' >/dev/null", bin, a, b, out);
    assert_int_equal(system(cmd), 0);
    snprintf(svg, sizeof svg, "%s.svg", out);
    assert_int_equal(series_in(svg, NULL), 2);
    snprintf(svg, sizeof svg, "%s.png", out);
    check_png(svg, 760, 480);
    snprintf(cmd, sizeof cmd, "'%s' plot --results '%s' --bench nope --out '%s' 2>/dev/null", bin,
             a, out);
    assert_int_not_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_has_one_data_line_per_series),
        cmocka_unit_test(test_png_has_the_requested_size),
        cmocka_unit_test(test_nan_points_leave_a_gap_in_the_line),
        cmocka_unit_test(test_bad_extension_and_empty_data_are_errors),
        cmocka_unit_test(test_learning_curves_draw_each_metric_that_has_points),
        cmocka_unit_test(test_learning_curves_name_the_bad_line),
        cmocka_unit_test(test_mart_plot_overlays_results_files_one_line_per_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
