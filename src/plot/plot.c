/* Line charts with cairo: one drawing routine, two surfaces (SVG, PNG) streamed into memory
 * and written atomically with mart_write_file_atomic. */
#include "mart/plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void plot_spec_default(plot_spec *s) {
    memset(s, 0, sizeof *s);
    s->width = 760;
    s->height = 480;
}

/* Tableau 10: distinct, colour-blind-friendly. */
static const double PALETTE[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

typedef struct {
    double x0, x1, y0, y1;     /* data range */
    double px0, px1, py0, py1; /* plot area in surface units (py0 = top) */
} frame;

static double fx(const frame *f, double x) {
    return f->px0 + (x - f->x0) / (f->x1 - f->x0) * (f->px1 - f->px0);
}
static double fy(const frame *f, double y) {
    return f->py1 - (y - f->y0) / (f->y1 - f->y0) * (f->py1 - f->py0);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks. */
static double nice_step(double span, int target) {
    double raw = span / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

static void marker(cairo_t *cr, int kind, double x, double y, double r) {
    switch (kind % 5) {
    case 0:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        break;
    case 1:
        cairo_rectangle(cr, x - r, y - r, 2 * r, 2 * r);
        break;
    case 2:
        cairo_move_to(cr, x, y - 1.2 * r);
        cairo_line_to(cr, x + 1.1 * r, y + 0.8 * r);
        cairo_line_to(cr, x - 1.1 * r, y + 0.8 * r);
        cairo_close_path(cr);
        break;
    case 3:
        cairo_move_to(cr, x, y - 1.3 * r);
        cairo_line_to(cr, x + 1.3 * r, y);
        cairo_line_to(cr, x, y + 1.3 * r);
        cairo_line_to(cr, x - 1.3 * r, y);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x - r, y - r);
        cairo_line_to(cr, x + r, y + r);
        cairo_move_to(cr, x + r, y - r);
        cairo_line_to(cr, x - r, y + r);
        break;
    }
}

static const plot_style NO_STYLE = {0, 0, false};

static const plot_style *series_style(const plot_spec *s, int32_t i) {
    return s->styles ? &s->styles[i] : &NO_STYLE;
}

static const double *series_colour(const plot_spec *s, int32_t i) {
    const plot_style *st = series_style(s, i);
    return PALETTE[(st->colour > 0 ? st->colour - 1 : i) % 10];
}

static int series_marker(const plot_spec *s, int32_t i) {
    const plot_style *st = series_style(s, i);
    return st->marker > 0 ? st->marker - 1 : i;
}

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void fmt_tick(char *buf, size_t cap, double v, double step, bool percent) {
    if (percent) {
        v *= 100;
        step *= 100;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-9) v = 0;
    snprintf(buf, cap, "%.*f%s", dec, v, percent ? "%" : "");
}

static void draw(cairo_t *cr, const plot_spec *s, const plot_series *series, int32_t n,
                 const frame *range) {
    double W = s->width, H = s->height;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    int32_t n_legend = 0;
    double legend_w = 0;
    cairo_set_font_size(cr, 12);
    for (int32_t i = 0; i < n; i++)
        if (series[i].label) {
            cairo_text_extents_t e;
            cairo_text_extents(cr, series[i].label, &e);
            if (e.x_advance > legend_w) legend_w = e.x_advance;
            n_legend++;
        }
    if (legend_w > 240) legend_w = 240;
    frame f = *range;
    f.px0 = 72;
    f.px1 = W - 24 - (n_legend ? legend_w + 52 : 0);
    f.py0 = s->title ? 44 : 20;
    f.py1 = H - 56;

    /* Grid and ticks. */
    double xstep = nice_step(f.x1 - f.x0, 8), ystep = nice_step(f.y1 - f.y0, 6);
    if (s->x_integer && xstep < 1) xstep = 1;
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    char buf[48];
    for (double v = ceil(f.y0 / ystep - 1e-9) * ystep; v <= f.y1 + ystep * 1e-9; v += ystep) {
        double y = fy(&f, v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, f.px0, y);
        cairo_line_to(cr, f.px1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        fmt_tick(buf, sizeof buf, v, ystep, s->y_percent);
        text_at(cr, buf, f.px0 - 6, y, 1, 0.5);
    }
    for (double v = ceil(f.x0 / xstep - 1e-9) * xstep; v <= f.x1 + xstep * 1e-9; v += xstep) {
        double x = fx(&f, v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, f.py0);
        cairo_line_to(cr, x, f.py1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        fmt_tick(buf, sizeof buf, v, xstep, false);
        text_at(cr, buf, x, f.py1 + 6, 0.5, 0);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0);
    cairo_stroke(cr);

    /* Title and axis labels. */
    cairo_set_font_size(cr, 13);
    if (s->xlabel) text_at(cr, s->xlabel, (f.px0 + f.px1) / 2, H - 14, 0.5, 1);
    if (s->ylabel) {
        cairo_save(cr);
        cairo_translate(cr, 16, (f.py0 + f.py1) / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, s->ylabel, 0, 0, 0.5, 0.5);
        cairo_restore(cr);
    }
    if (s->title) {
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(cr, 15);
        text_at(cr, s->title, W / 2, 14, 0.5, 0);
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                               CAIRO_FONT_WEIGHT_NORMAL);
    }

    /* Series: one stroked path each (gaps at NaN), then markers. */
    cairo_save(cr);
    cairo_rectangle(cr, f.px0 - 6, f.py0 - 6, f.px1 - f.px0 + 12, f.py1 - f.py0 + 12);
    cairo_clip(cr);
    for (int32_t i = 0; i < n; i++) {
        const plot_series *ps = &series[i];
        const double *c = series_colour(s, i);
        int mk = series_marker(s, i);
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, PLOT_LINE_WIDTH);
        static const double dash[2] = {7, 4};
        cairo_set_dash(cr, dash, series_style(s, i)->dashed ? 2 : 0, 0);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        bool pen = false;
        cairo_new_path(cr);
        for (int32_t k = 0; k < ps->n; k++) {
            if (!isfinite(ps->x[k]) || !isfinite(ps->y[k])) {
                pen = false;
                continue;
            }
            if (pen)
                cairo_line_to(cr, fx(&f, ps->x[k]), fy(&f, ps->y[k]));
            else
                cairo_move_to(cr, fx(&f, ps->x[k]), fy(&f, ps->y[k]));
            pen = true;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (ps->n <= 60) {
            cairo_set_line_width(cr, 1.5);
            for (int32_t k = 0; k < ps->n; k++)
                if (isfinite(ps->x[k]) && isfinite(ps->y[k])) {
                    marker(cr, mk, fx(&f, ps->x[k]), fy(&f, ps->y[k]), 3.5);
                    if (mk % 5 == 4)
                        cairo_stroke(cr);
                    else
                        cairo_fill(cr);
                }
        }
    }
    cairo_restore(cr);

    /* Legend, right of the plot area. */
    cairo_set_font_size(cr, 12);
    double ly = f.py0 + 8;
    for (int32_t i = 0; i < n; i++) {
        if (!series[i].label) continue;
        const double *c = series_colour(s, i);
        int mk = series_marker(s, i);
        double lx = f.px1 + 14;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        static const double dash[2] = {5, 3};
        cairo_set_dash(cr, dash, series_style(s, i)->dashed ? 2 : 0, 0);
        cairo_move_to(cr, lx, ly);
        cairo_line_to(cr, lx + 26, ly);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_line_width(cr, 1.5);
        marker(cr, mk, lx + 13, ly, 3.5);
        if (mk % 5 == 4)
            cairo_stroke(cr);
        else
            cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, series[i].label, lx + 32, ly, 0, 0.5);
        ly += 20;
    }
}

/* Data range over all series, padded; fixed y range when the spec says so. */
static int data_range(const plot_spec *s, const plot_series *series, int32_t n, frame *f) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < series[i].n; k++) {
            double x = series[i].x[k], y = series[i].y[k];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) return MART_ERR;
    if (s->y_min < s->y_max) y0 = s->y_min, y1 = s->y_max;
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    bool from_zero = !(s->y_min < s->y_max) && s->y_from_zero && y0 >= 0;
    if (from_zero) {
        y0 = 0;
        if (y1 < 1e-12) y1 = 0.05;
    }
    if (y1 - y0 < 1e-12) y0 -= 0.05 * (fabs(y0) + 1), y1 += 0.05 * (fabs(y1) + 1);
    if (!(s->y_min < s->y_max)) {
        double pad = 0.06 * (y1 - y0);
        y1 += pad;
        if (!from_zero) y0 -= pad;
    }
    if (s->x_integer) {
        x0 -= 0.3, x1 += 0.3;
    } else {
        double pad = 0.02 * (x1 - x0);
        x0 -= pad, x1 += pad;
    }
    f->x0 = x0, f->x1 = x1, f->y0 = y0, f->y1 = y1;
    return MART_OK;
}

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len) {
    mart_buf_append(closure, data, len);
    return CAIRO_STATUS_SUCCESS;
}

/* Cairo and fontconfig keep font caches for the life of the process; plots are rare, so
 * they are dropped after each one (leak checkers then see a clean exit). FcFini is looked
 * up at run time because fontconfig is only linked through cairo. */
static void release_fonts(void) {
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini) fc_fini();
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int plot_write(const plot_spec *spec, const plot_series *series, int32_t n_series, const char *path,
               mart_err *err) {
    plot_spec s = *spec;
    if (s.width <= 0) s.width = 760;
    if (s.height <= 0) s.height = 480;
    frame f;
    if (data_range(&s, series, n_series, &f) != MART_OK)
        return mart_fail(err, "%s: nothing to plot (no finite point)", path);
    bool svg = ends_with(path, ".svg");
    if (!svg && !ends_with(path, ".png"))
        return mart_fail(err, "%s: unknown plot format (use .svg or .png)", path);
    mart_buf out = {0};
    cairo_surface_t *surf =
        svg ? cairo_svg_surface_create_for_stream(to_buf, &out, s.width, s.height)
            : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, s.width, s.height);
    cairo_t *cr = cairo_create(surf);
    draw(cr, &s, series, n_series, &f);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (!svg && st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png_stream(surf, to_buf, &out);
    cairo_surface_finish(surf);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(surf);
    cairo_surface_destroy(surf);
    release_fonts();
    int rc = MART_OK;
    if (st != CAIRO_STATUS_SUCCESS)
        rc = mart_fail(err, "%s: cairo: %s", path, cairo_status_to_string(st));
    else
        rc = mart_write_file_atomic(path, out.data, out.len, err);
    mart_buf_free(&out);
    return rc;
}

int plot_write_svg_png(const plot_spec *spec, const plot_series *series, int32_t n_series,
                       const char *base, mart_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s.svg", base);
    if (plot_write(spec, series, n_series, path, err) != MART_OK) return MART_ERR;
    snprintf(path, sizeof path, "%s.png", base);
    return plot_write(spec, series, n_series, path, err);
}

/* ---- learning curves from metrics.jsonl ---- */

static const char *const CURVE_KEYS[] = {"reward_mean", "accuracy", "eval_accuracy"};
#define N_CURVE_KEYS 3

typedef struct {
    double *x, *y;
    int32_t n;
    char label[320];
} curve;

static void curve_push(curve *c, double x, double y) {
    c->x = mart_xrealloc(c->x, (size_t)(c->n + 1) * sizeof *c->x);
    c->y = mart_xrealloc(c->y, (size_t)(c->n + 1) * sizeof *c->y);
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
}

static const char *run_name(const char *dir, char *buf, size_t cap) {
    size_t l = strlen(dir);
    while (l > 1 && dir[l - 1] == '/')
        l--;
    const char *b = dir + l;
    while (b > dir && b[-1] != '/')
        b--;
    snprintf(buf, cap, "%.*s", (int)(dir + l - b), b);
    return buf;
}

int plot_learning_curves(const char *const *run_dirs, int32_t n_runs, const char *base,
                         mart_err *err) {
    int32_t n_curves = n_runs * N_CURVE_KEYS;
    curve *cs = mart_xcalloc((size_t)n_curves + 1, sizeof *cs);
    int rc = MART_OK;
    for (int32_t r = 0; rc == MART_OK && r < n_runs; r++) {
        char path[4096], name[256];
        mart_path_join(path, sizeof path, run_dirs[r], "metrics.jsonl");
        run_name(run_dirs[r], name, sizeof name);
        for (int k = 0; k < N_CURVE_KEYS; k++) {
            curve *c = &cs[r * N_CURVE_KEYS + k];
            if (n_runs > 1)
                snprintf(c->label, sizeof c->label, "%s: %s", name, CURVE_KEYS[k]);
            else
                snprintf(c->label, sizeof c->label, "%s", CURVE_KEYS[k]);
        }
        mart_jsonl jr;
        if ((rc = mart_jsonl_open(&jr, path, err)) != MART_OK) break;
        for (;;) {
            cJSON *o = NULL;
            int got = mart_jsonl_next(&jr, &o, err);
            if (got <= 0) {
                rc = got < 0 ? MART_ERR : MART_OK;
                break;
            }
            const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
            if (!cJSON_IsNumber(step)) {
                rc = mart_fail(err, "%s:%lld: no number \"step\"", path, (long long)jr.line);
                cJSON_Delete(o);
                break;
            }
            for (int k = 0; k < N_CURVE_KEYS; k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, CURVE_KEYS[k]);
                if (cJSON_IsNumber(v))
                    curve_push(&cs[r * N_CURVE_KEYS + k], step->valuedouble, v->valuedouble);
            }
            cJSON_Delete(o);
        }
        mart_jsonl_close(&jr);
    }
    if (rc == MART_OK) {
        /* Only curves with points appear (eval_accuracy exists only when evaluation ran). */
        plot_series *ss = mart_xcalloc((size_t)n_curves + 1, sizeof *ss);
        plot_style *styles = mart_xcalloc((size_t)n_curves + 1, sizeof *styles);
        int32_t n = 0;
        for (int32_t i = 0; i < n_curves; i++)
            if (cs[i].n) {
                /* Several runs: a metric keeps its colour, runs differ by marker and dash. */
                int32_t run = i / N_CURVE_KEYS, key = i % N_CURVE_KEYS;
                ss[n] = (plot_series){cs[i].label, cs[i].x, cs[i].y, cs[i].n};
                styles[n] = (plot_style){key + 1, run + 1, run % 2 == 1};
                n++;
            }
        plot_spec spec;
        plot_spec_default(&spec);
        spec.title = "Learning curves";
        spec.xlabel = "step";
        spec.ylabel = "reward / accuracy";
        if (n_runs > 1) spec.styles = styles;
        if (n == 0)
            rc = mart_fail(err, "%s: no metrics to plot", run_dirs[0]);
        else
            rc = plot_write_svg_png(&spec, ss, n, base, err);
        free(ss);
        free(styles);
    }
    for (int32_t i = 0; i < n_curves; i++) {
        free(cs[i].x);
        free(cs[i].y);
    }
    free(cs);
    return rc;
}

int plot_accuracy_vs_attempts(const char *title, const plot_series *series, int32_t n_series,
                              const char *base, mart_err *err) {
    plot_spec spec;
    plot_spec_default(&spec);
    spec.title = title;
    spec.xlabel = "attempts allowed (k)";
    spec.ylabel = "accuracy";
    spec.x_integer = true;
    spec.y_percent = true;
    spec.y_from_zero = true;
    return plot_write_svg_png(&spec, series, n_series, base, err);
}

int plot_eval_attempts(const eval_results *r, const char *base, mart_err *err) {
    int32_t n = r->n_benches + (r->n_benches > 1);
    plot_series *s = mart_xcalloc((size_t)n, sizeof *s);
    double *x = mart_xcalloc((size_t)r->n_ks, sizeof *x);
    for (int32_t j = 0; j < r->n_ks; j++)
        x[j] = r->ks[j];
    for (int32_t b = 0; b < r->n_benches; b++)
        s[b] = (plot_series){r->benches[b].name, x, r->benches[b].accuracy, r->n_ks};
    if (r->n_benches > 1) s[n - 1] = (plot_series){"average", x, r->average, r->n_ks};
    char title[256];
    snprintf(title, sizeof title, "%s: accuracy by number of attempts",
             r->model ? r->model : "model");
    int rc = plot_accuracy_vs_attempts(title, s, n, base, err);
    free(s);
    free(x);
    return rc;
}
