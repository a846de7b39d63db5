/* plot: line charts (several series, markers, legend, title, axis labels, ticks) rendered
 * with cairo to SVG or PNG, written atomically. Used for accuracy-vs-attempts figures and
 * learning curves. Owns nothing beyond one call. */
#ifndef MART_PLOT_H
#define MART_PLOT_H

#include "mart/core.h"
#include "mart/eval.h"

typedef struct {
    const char *label; /* legend text (NULL = not in the legend) */
    const double *x;   /* (n) */
    const double *y;   /* (n) a NaN leaves a gap in the line */
    int32_t n;
} plot_series;

/* A series' look; 0 fields mean "by the series' place" (palette colour, marker shape). */
typedef struct plot_style {
    int32_t colour; /* k > 0: palette entry k-1 */
    int32_t marker; /* k > 0: marker shape k-1 */
    bool dashed;
} plot_style;

typedef struct {
    const char *title, *xlabel, *ylabel; /* may be NULL */
    int32_t width, height;               /* pixels (PNG) or points (SVG); default 760 x 480 */
    bool x_integer;                      /* ticks at integers only (e.g. number of attempts) */
    bool y_percent;                      /* y values are fractions; tick labels read "45%" */
    double y_min, y_max;             /* fixed y range when y_min < y_max; otherwise from the data */
    bool y_from_zero;                /* data range: the y axis starts at 0 (accuracies) */
    const struct plot_style *styles; /* (n_series) each series' look; NULL = by its place */
} plot_spec;

void plot_spec_default(plot_spec *s);

/* Every series' line is stroked with this width (a test hook: SVG consumers can tell data
 * lines from axes and grid by it). */
#define PLOT_LINE_WIDTH 2.25

/* Renders the chart to `path`, SVG or PNG by its extension (".svg" / ".png"), atomically.
 * Errors: unknown extension, no drawable point, cairo or file failures (message names path). */
int plot_write(const plot_spec *spec, const plot_series *series, int32_t n_series, const char *path,
               mart_err *err);
/* Writes BASE.svg and BASE.png. */
int plot_write_svg_png(const plot_spec *spec, const plot_series *series, int32_t n_series,
                       const char *base, mart_err *err);

/* The accuracy-vs-attempts figure (every caller draws it the same way): BASE.svg/.png with
 * the x axis "attempts allowed (k)" at integers and accuracy as a percentage from 0. */
int plot_accuracy_vs_attempts(const char *title, const plot_series *series, int32_t n_series,
                              const char *base, mart_err *err);
/* That figure for one evaluation: a line per benchmark, and the average when there are
 * several. */
int plot_eval_attempts(const eval_results *r, const char *base, mart_err *err);

/* Learning curves of training runs: reads RUN/metrics.jsonl for each run dir (lines with
 * "step", "reward_mean", "accuracy", and "eval_accuracy" on steps where evaluation ran; other
 * keys ignored) and draws them against step into BASE.svg/.png; with several runs each
 * label is prefixed by the run's folder name. Errors name the file and line. */
int plot_learning_curves(const char *const *run_dirs, int32_t n_runs, const char *base,
                         mart_err *err);

#endif
