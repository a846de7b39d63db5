/* sample: the sampling distribution (temperature, top-k, top-p) and the draw; see
 * gen_sample.h for the order of operations and what the log-prob means. */
#include "gen/gen_sample.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

/* Tokens whose weight exp(s - max s) is below this are left out of the first, cheap sort of
 * top-p; when the tokens above it do not reach the mass top_p, everything is sorted. */
#define TOP_P_PRESORT_WEIGHT 1e-6f

/* a comes before b: heavier first, ties to the lower id. */
static int cand_before(const gen_cand *a, const gen_cand *b) {
    return a->w > b->w || (a->w == b->w && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const gen_cand *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* log-sum-exp of z (max-shifted, as the model's log-softmax computes it). */
static double row_lse(const float *z, int32_t V) {
    float mx = -INFINITY;
    for (int32_t j = 0; j < V; j++)
        mx = z[j] > mx ? z[j] : mx;
    double sum = 0.0;
    for (int32_t j = 0; j < V; j++)
        sum += expf(z[j] - mx);
    return mx + log(sum);
}

static int32_t row_argmax(const float *z, int32_t V) {
    int32_t a = 0;
    for (int32_t j = 1; j < V; j++)
        if (z[j] > z[a]) a = j;
    return a;
}

/* Keeps in c[0..k) the k best candidates of c[0..n) (a min-heap on "before", then sorted). */
static void select_top_k(gen_cand *c, int32_t n, int32_t k) {
    /* heap: c[0] is the worst of the kept ones */
    for (int32_t j = 0; j < n; j++) {
        gen_cand x = c[j];
        int32_t pos;
        if (j < k) {
            pos = j;
            while (pos > 0 && cand_before(&c[(pos - 1) / 2], &x)) {
                c[pos] = c[(pos - 1) / 2];
                pos = (pos - 1) / 2;
            }
            c[pos] = x;
            continue;
        }
        if (!cand_before(&x, &c[0])) continue;
        pos = 0;
        for (;;) {
            int32_t l = 2 * pos + 1, r = l + 1, worst = pos;
            const gen_cand *cw = &x;
            if (l < k && cand_before(cw, &c[l])) worst = l, cw = &c[l];
            if (r < k && cand_before(cw, &c[r])) worst = r;
            if (worst == pos) break;
            c[pos] = c[worst];
            pos = worst;
        }
        c[pos] = x;
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

/* Fills c with the kept candidates, in the order the inverse CDF walks them, and returns
 * their number; *kept_sum receives the sum of their weights exp(z / temperature - *shift). */
static int32_t kept_candidates(const float *z, int32_t V, const gen_params *p, gen_cand *c,
                               double *kept_sum, float *shift) {
    float it = 1.0f / p->temperature, mx = -INFINITY;
    for (int32_t j = 0; j < V; j++)
        mx = z[j] > mx ? z[j] : mx;
    mx *= it;
    *shift = mx;
    double total = 0.0;
    for (int32_t j = 0; j < V; j++) {
        c[j].w = expf(z[j] * it - mx);
        c[j].id = j;
        total += c[j].w;
    }
    bool use_k = p->top_k > 0 && p->top_k < V, use_p = p->top_p < 1.0f;
    if (!use_k && !use_p) {
        *kept_sum = total;
        return V;
    }
    int32_t n = V;
    double set_sum = total;
    if (use_k) {
        select_top_k(c, V, p->top_k);
        n = p->top_k;
        set_sum = 0.0;
        for (int32_t j = 0; j < n; j++)
            set_sum += c[j].w;
    } else {
        /* Sort only the heavy tokens when they already hold the mass top_p. */
        int32_t m = 0;
        double heavy = 0.0;
        for (int32_t j = 0; j < V; j++)
            if (c[j].w >= TOP_P_PRESORT_WEIGHT) {
                heavy += c[j].w;
                c[m++] = c[j];
            }
        if (heavy >= (double)p->top_p * total) {
            n = m;
        } else {
            for (int32_t j = 0; j < V; j++)
                c[j] = (gen_cand){expf(z[j] * it - mx), j};
        }
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
    }
    if (use_p) {
        double target = (double)p->top_p * set_sum, cum = 0.0;
        int32_t keep = 0;
        while (keep < n) {
            cum += c[keep++].w;
            if (cum >= target) break;
        }
        n = keep;
        set_sum = cum;
    }
    *kept_sum = set_sum;
    return n;
}

int32_t gen_sample_row(const float *z, int32_t V, const gen_params *p, double u, gen_cand *scratch,
                       float *logprob) {
    assert(V > 0 && u >= 0.0 && u < 1.0);
    if (p->temperature <= 0.0f) {
        int32_t a = row_argmax(z, V);
        *logprob = (float)((double)z[a] - row_lse(z, V));
        return a;
    }
    double sum;
    float shift;
    int32_t n = kept_candidates(z, V, p, scratch, &sum, &shift);
    double target = u * sum, cum = 0.0;
    int32_t pick = -1;
    for (int32_t j = 0; j < n; j++) {
        if (scratch[j].w <= 0.0f) continue;
        pick = j;
        cum += scratch[j].w;
        if (cum > target) break;
    }
    assert(pick >= 0); /* the maximum has weight 1 and is always kept */
    int32_t tok = scratch[pick].id;
    /* log(w / sum) with w = exp(s - shift), kept exact for unlikely tokens whose w is 0 */
    *logprob = (float)((double)(z[tok] * (1.0f / p->temperature) - shift) - log(sum));
    return tok;
}

void gen_sample_dist(const float *z, int32_t V, const gen_params *p, gen_cand *scratch,
                     double *probs) {
    for (int32_t j = 0; j < V; j++)
        probs[j] = 0.0;
    if (p->temperature <= 0.0f) {
        probs[row_argmax(z, V)] = 1.0;
        return;
    }
    double sum;
    float shift;
    int32_t n = kept_candidates(z, V, p, scratch, &sum, &shift);
    for (int32_t j = 0; j < n; j++)
        probs[scratch[j].id] = (double)scratch[j].w / sum;
}
