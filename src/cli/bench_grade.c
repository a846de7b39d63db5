/* mart bench grade: grader comparisons per second, single thread, on MATH-500 gold answers
 * against rewritten predictions: \dfrac and spacing, an "x =" prefix, \left( wrappers, and a
 * near miss ("+ 1"), so that both the cheap string path and the parser/evaluator are timed. */
#include "cli/cli.h"
#include "mart/data.h"
#include "mart/grade.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int bench_grade(int argc, char **argv);

/* Replaces every "\frac" by "\dfrac" and puts a space after the commas that separate items. */
static char *rewrite_spelling(const char *g) {
    mart_buf b = {0};
    for (const char *p = g; *p; p++) {
        if (!strncmp(p, "\\frac", 5)) {
            mart_buf_append(&b, "\\dfrac", 6);
            p += 4;
        } else if (*p == ',' && p[1] != '\\' && !(p[1] >= '0' && p[1] <= '9'))
            mart_buf_append(&b, ", ", 2); /* not inside 10,\!000 */
        else
            mart_buf_append(&b, p, 1);
    }
    mart_buf_append(&b, "", 1);
    return b.data;
}

static char *rewrite_printf(const char *fmt, const char *g) {
    mart_buf b = {0};
    mart_buf_printf(&b, fmt, g);
    return b.data;
}

int bench_grade(int argc, char **argv) {
    static char dflt[4096];
    mart_err derr = {{0}};
    char dir[4096];
    if (data_dir_resolve(NULL, dir, sizeof dir, &derr) != MART_OK ||
        data_bench_path(dir, "math500", dflt, sizeof dflt, &derr) != MART_OK)
        return cli_error("bench grade", &derr);
    const char *data = dflt;
    double seconds = 2.0;
    bool verbose = false;
    cli_opt opts[] = {
        {"data", CLI_STR, &data,
         "MATH-500 JSONL (gold answers in \"answer\"; default: the data directory's)"},
        {"seconds", CLI_DOUBLE, &seconds, "minimum measuring time, s"},
        {"verbose", CLI_FLAG, &verbose, "list the pairs judged against their construction"},
    };
    int rc = cli_parse("bench grade", "[--data FILE] [--seconds S]",
                       "Grader comparisons per second, single thread, on gold vs rewritten pairs.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    cJSON **recs;
    int64_t n;
    mart_err err = {{0}};
    if (mart_jsonl_load(data, &recs, &n, &err) != MART_OK) return cli_error("bench grade", &err);
    enum { REWRITES = 4 };
    int64_t n_pairs = n * REWRITES;
    char **pred = mart_xcalloc((size_t)n_pairs, sizeof *pred);
    char **gold = mart_xcalloc((size_t)n_pairs, sizeof *gold);
    for (int64_t i = 0; i < n; i++) {
        char *g;
        if (grade_gold_answer(recs[i], "math500", NULL, &g, &err) != MART_OK) {
            mart_fail_wrap(&err, "%s:%lld", data, (long long)i + 1);
            return cli_error("bench grade", &err);
        }
        pred[i * REWRITES + 0] = rewrite_spelling(g);
        pred[i * REWRITES + 1] = rewrite_printf(g[0] == '('           ? "\\left%s"
                                                : strstr(g, "\\text") ? "%s."
                                                                      : "x = %s",
                                                g);
        pred[i * REWRITES + 2] = rewrite_printf("$%s$.", g);
        pred[i * REWRITES + 3] = rewrite_printf("%s + 1", g);
        for (int r = 0; r < REWRITES; r++)
            gold[i * REWRITES + r] = mart_xstrdup(g);
        free(g);
    }
    mart_jsonl_free(recs, n);

    grade_config cfg;
    grade_config_default(&cfg);
    /* the first three rewrites are equal by construction, the last is a near miss */
    int64_t wrong = 0;
    for (int64_t i = 0; i < n_pairs; i++) {
        bool want = i % REWRITES != REWRITES - 1;
        if (grade_equal(pred[i], gold[i], &cfg) == want) continue;
        wrong++;
        if (verbose)
            printf("judged %s: pred '%s' gold '%s'\n", want ? "unequal" : "equal", pred[i],
                   gold[i]);
    }
    /* per pair, its fastest time over the rounds: the slowest pair without scheduler noise */
    double *best = mart_xmalloc(sizeof(double) * (size_t)n_pairs);
    for (int64_t i = 0; i < n_pairs; i++)
        best[i] = 1e30;
    int64_t done = 0, n_equal = 0, rounds = 0, worst_i = 0;
    double t0 = mart_now(), dt = 0, worst = 0;
    while (dt < seconds) {
        for (int64_t i = 0; i < n_pairs; i++) {
            double ti = mart_now();
            n_equal += grade_equal(pred[i], gold[i], &cfg);
            double d = mart_now() - ti;
            if (d < best[i]) best[i] = d;
        }
        done += n_pairs;
        rounds++;
        dt = mart_now() - t0;
    }
    printf("grade: %lld comparisons (%lld pairs x %lld rounds) in %.2f s, single thread\n",
           (long long)done, (long long)n_pairs, (long long)rounds, dt);
    for (int64_t i = 0; i < n_pairs; i++)
        if (best[i] > worst) worst = best[i], worst_i = i;
    free(best);
    printf("grade: %.0f comparisons/s, %.1f us mean, %.1f us slowest pair ('%s' vs '%s')\n",
           (double)done / dt, 1e6 * dt / (double)done, 1e6 * worst, pred[worst_i], gold[worst_i]);
    printf("grade: %.1f%% judged equal; %lld of %lld pairs judged against their construction\n",
           100.0 * (double)n_equal / (double)done, (long long)wrong, (long long)n_pairs);
    for (int64_t i = 0; i < n_pairs; i++) {
        free(pred[i]);
        free(gold[i]);
    }
    free(pred);
    free(gold);
    return 0;
}
