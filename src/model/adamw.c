/* adamw: the optimiser and the gradient utilities (see mart/model.h). */
#include "model/model_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void adamw_init(adamw_state *s, int64_t n) {
    s->n = n;
    s->step = 0;
    s->m = mart_aligned_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    s->v = mart_aligned_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memset(s->m, 0, (size_t)n * sizeof(float));
    memset(s->v, 0, (size_t)n * sizeof(float));
}

void adamw_free(adamw_state *s) {
    mart_aligned_free(s->m);
    mart_aligned_free(s->v);
    memset(s, 0, sizeof *s);
}

void adamw_step(adamw_state *s, float *params, const float *grads, const adamw_config *c) {
    s->step++;
    /* Bias corrections in double: beta^step underflows gracefully and stays exact early on. */
    float bc1 = (float)(1.0 - pow((double)c->beta1, (double)s->step));
    float bc2 = (float)(1.0 - pow((double)c->beta2, (double)s->step));
    float lr = c->lr, b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    float *m = s->m, *v = s->v;
#pragma omp parallel for simd schedule(static) if (s->n > 32768)
    for (int64_t i = 0; i < s->n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        /* Decoupled weight decay: shrink the weight, then the Adam step (as torch.optim.AdamW). */
        params[i] = params[i] * (1.0f - lr * wd) - lr * mh / (sqrtf(vh) + eps);
    }
}

void model_zero_grads(model *m) {
    assert(m->grads);
    memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
}

float model_clip_grad_norm(model *m, float max_norm) {
    assert(m->grads);
    double ss = 0.0;
    const float *g = m->grads;
#pragma omp parallel for simd reduction(+ : ss) schedule(static) if (m->n_params > 32768)
    for (int64_t i = 0; i < m->n_params; i++)
        ss += (double)g[i] * g[i];
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f);
        float *gw = m->grads;
#pragma omp parallel for simd schedule(static) if (m->n_params > 32768)
        for (int64_t i = 0; i < m->n_params; i++)
            gw[i] *= scale;
    }
    return norm;
}
