/* mart plot: accuracy-vs-attempts overlays of several results.json files (one line per
 * model) and learning curves of training runs (metrics.jsonl). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mart/eval.h"
#include "mart/plot.h"

static char **split_list(const char *s, int32_t *n) {
    char **a = NULL;
    *n = 0;
    char *copy = mart_xstrdup(s ? s : "");
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
        if (!*t) continue;
        a = mart_xrealloc(a, (size_t)(*n + 1) * sizeof *a);
        a[(*n)++] = mart_xstrdup(t);
    }
    free(copy);
    return a;
}

static void free_list(char **a, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

/* One line per results file: the average (or one benchmark's accuracy) against k. */
static int plot_results(char **files, int32_t n, char **labels, int32_t n_labels, const char *bench,
                        const char *title, const char *base, mart_err *err) {
    eval_results *rs = mart_xcalloc((size_t)n, sizeof *rs);
    plot_series *ss = mart_xcalloc((size_t)n, sizeof *ss);
    double **xs = mart_xcalloc((size_t)n, sizeof *xs);
    int rc = MART_OK;
    int32_t loaded = 0;
    for (; loaded < n; loaded++) {
        int32_t i = loaded;
        if ((rc = eval_results_load(files[i], &rs[i], err)) != MART_OK) break;
        const double *y = rs[i].average;
        if (bench) {
            y = NULL;
            for (int32_t b = 0; b < rs[i].n_benches; b++)
                if (!strcmp(rs[i].benches[b].name, bench)) y = rs[i].benches[b].accuracy;
            if (!y) {
                loaded++;
                rc = mart_fail(err, "%s: no benchmark '%s'", files[i], bench);
                break;
            }
        }
        xs[i] = mart_xcalloc((size_t)rs[i].n_ks + 1, sizeof *xs[i]);
        for (int32_t j = 0; j < rs[i].n_ks; j++)
            xs[i][j] = rs[i].ks[j];
        ss[i] = (plot_series){i < n_labels ? labels[i] : rs[i].model, xs[i], y, rs[i].n_ks};
    }
    if (rc == MART_OK) {
        char t[256];
        snprintf(t, sizeof t, "Accuracy by number of attempts (%s)", bench ? bench : "average");
        rc = plot_accuracy_vs_attempts(title ? title : t, ss, n, base, err);
    }
    for (int32_t i = 0; i < loaded; i++) {
        eval_results_free(&rs[i]);
        free(xs[i]);
    }
    free(rs);
    free(ss);
    free(xs);
    return rc;
}

int cmd_plot(int argc, char **argv) {
    const char *results = NULL, *runs = NULL, *labels = NULL, *bench = NULL, *out = NULL,
               *title = NULL;
    cli_opt opts[] = {
        {"results", CLI_STR, &results,
         "comma-separated results.json files (mart eval): one line per model"},
        {"labels", CLI_STR, &labels, "comma-separated legend labels (default: the model names)"},
        {"bench", CLI_STR, &bench, "plot this benchmark instead of the average"},
        {"runs", CLI_STR, &runs,
         "comma-separated training run folders (metrics.jsonl): learning curves into each "
         "RUN/curves.svg/.png"},
        {"out", CLI_STR, &out,
         "output path without extension (default: attempts_compare for --results; for "
         "several --runs, an overlay is written here too)"},
        {"title", CLI_STR, &title, "chart title"},
    };
    int pr = cli_parse("plot", "--results A.json,B.json | --runs RUN1,RUN2 [options]",
                       "Draws accuracy against the number of attempts for several evaluated "
                       "models, or learning curves (reward_mean, accuracy, eval_accuracy "
                       "against step) of training runs, as SVG and PNG.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr != 0) return pr > 0 ? 0 : 2;
    if (!results && !runs) {
        fprintf(stderr, "mart plot: give --results or --runs (see mart plot --help)\n");
        return 2;
    }
    mart_err err = {0};
    int status = 0;
    if (results) {
        int32_t n = 0, nl = 0;
        char **files = split_list(results, &n), **labs = split_list(labels, &nl);
        const char *base = out ? out : "attempts_compare";
        if (n == 0 || plot_results(files, n, labs, nl, bench, title, base, &err) != MART_OK)
            status = cli_error("plot", n ? &err : &(mart_err){"--results: empty list"});
        else
            printf("wrote %s.svg and %s.png\n", base, base);
        free_list(files, n);
        free_list(labs, nl);
    }
    if (runs && status == 0) {
        int32_t n = 0;
        char **dirs = split_list(runs, &n);
        for (int32_t i = 0; i < n && status == 0; i++) {
            char base[4096];
            mart_path_join(base, sizeof base, dirs[i], "curves");
            if (plot_learning_curves((const char *const *)&dirs[i], 1, base, &err) != MART_OK)
                status = cli_error("plot", &err);
            else
                printf("wrote %s.svg and %s.png\n", base, base);
        }
        if (status == 0 && n > 1) {
            const char *base = out ? out : "curves_compare";
            if (plot_learning_curves((const char *const *)dirs, n, base, &err) != MART_OK)
                status = cli_error("plot", &err);
            else
                printf("wrote %s.svg and %s.png\n", base, base);
        }
        free_list(dirs, n);
    }
    return status;
}
