/* adamw: the optimiser and the gradient utilities (see mart/model.h), over the model's
 * backend. */
#include "model/model_priv.h"

#include <math.h>
#include <string.h>

void adamw_init(adamw_state *s, const mart_backend *be, int64_t n) {
    assert(n >= 0);
    s->be = be;
    s->n = n;
    s->step = 0;
    s->m = be->alloc(be, n);
    s->v = be->alloc(be, n);
    be->zero(be, s->m, n);
    be->zero(be, s->v, n);
}

void adamw_free(adamw_state *s) {
    if (s->be) {
        s->be->free(s->be, s->m);
        s->be->free(s->be, s->v);
    }
    memset(s, 0, sizeof *s);
}

void adamw_step(adamw_state *s, float *params, const float *grads, const adamw_config *c) {
    s->step++;
    s->be->adamw(s->be, params, grads, s->m, s->v, s->n, s->step, c);
}

void model_adamw_step(model *m, adamw_state *s, const adamw_config *c) {
    assert(m->grads && s->n == m->n_params && s->be == m->be);
    assert(m->bf16_holders == 0 && "BF16 copies would go stale: release them first");
    adamw_step(s, m->params, m->grads, c);
}

void model_zero_grads(model *m) {
    assert(m->grads);
    m->be->zero(m->be, m->grads, m->n_params);
}

float model_clip_grad_norm(model *m, float max_norm) {
    assert(m->grads);
    float norm = (float)sqrt(m->be->sumsq(m->be, m->grads, m->n_params));
    if (max_norm > 0.0f && norm > max_norm)
        m->be->scale(m->be, m->grads, m->n_params, max_norm / (norm + 1e-6f));
    return norm;
}

float model_optimizer_step(model *m, adamw_state *s, const adamw_config *c, float max_norm) {
    float norm = model_clip_grad_norm(m, max_norm);
    if (isfinite(norm)) model_adamw_step(m, s, c);
    return norm;
}

double adamw_lr_at(int64_t step, int64_t total, double peak, double warmup_frac,
                   double min_ratio) {
    int64_t warmup = (int64_t)ceil(warmup_frac * (double)total);
    if (step < warmup) return peak * (double)step / (double)warmup;
    double span = (double)(total - warmup);
    double progress = span > 0 ? (double)(step - warmup) / span : 1.0;
    if (progress > 1.0) progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return peak * (min_ratio + (1.0 - min_ratio) * cosine);
}
