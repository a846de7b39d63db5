/* params: the parameter table. Every tensor lives in one allocation (model.params), carved
 * in a fixed order by a table of Hugging Face names; gradients use the same layout. Within a
 * block the q/k/v weights are adjacent (then the q/k/v biases), and gate/up are adjacent,
 * so forward/backward can run each group as one fused matrix product. */
#include "model/model_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t model_layout(const model_config *c, bool value_head, model_tensor *t,
                              int64_t *total) {
    int64_t off = 0;
    int32_t n = 0;
    int64_t d = c->hidden_size, qd = (int64_t)c->n_heads * c->head_dim,
            kvd = (int64_t)c->n_kv_heads * c->head_dim, f = c->intermediate_size;
#define ADD(rows, cols, ...)                                                                       \
    do {                                                                                           \
        if (t) {                                                                                   \
            snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                    \
            t[n].ndim = (cols) > 0 ? 2 : 1;                                                        \
            t[n].shape[0] = (rows);                                                                \
            t[n].shape[1] = (cols) > 0 ? (cols) : 0;                                               \
            t[n].offset = off;                                                                     \
            t[n].numel = (rows) * ((cols) > 0 ? (cols) : 1);                                       \
        }                                                                                          \
        off += (rows) * ((cols) > 0 ? (cols) : 1);                                                 \
        n++;                                                                                       \
    } while (0)
    ADD((int64_t)c->vocab_size, d, "model.embed_tokens.weight");
    for (int32_t l = 0; l < c->n_layers; l++) {
        ADD(d, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(qd, d, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(kvd, d, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(kvd, d, "model.layers.%d.self_attn.v_proj.weight", l);
        if (c->attention_bias) {
            ADD(qd, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(kvd, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(kvd, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        ADD(d, qd, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(d, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(f, d, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(f, d, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(d, f, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(d, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) ADD((int64_t)c->vocab_size, d, "lm_head.weight");
    if (value_head) ADD(1, d, "value_head.weight");
#undef ADD
    *total = off;
    return n;
}

/* Points the convenience pointers (embed, layers[], ...) into m->params. */
static void bind_pointers(model *m) {
    const model_config *c = &m->cfg;
    float *p = m->params;
    int32_t i = 0;
    const model_tensor *t = m->tensors;
    m->embed = p + t[i++].offset;
    for (int32_t l = 0; l < c->n_layers; l++) {
        model_layer *L = &m->layers[l];
        L->attn_norm = p + t[i++].offset;
        L->wq = p + t[i++].offset;
        L->wk = p + t[i++].offset;
        L->wv = p + t[i++].offset;
        L->bq = L->bk = L->bv = NULL;
        if (c->attention_bias) {
            L->bq = p + t[i++].offset;
            L->bk = p + t[i++].offset;
            L->bv = p + t[i++].offset;
        }
        L->wo = p + t[i++].offset;
        L->mlp_norm = p + t[i++].offset;
        L->w_gate = p + t[i++].offset;
        L->w_up = p + t[i++].offset;
        L->w_down = p + t[i++].offset;
    }
    m->final_norm = p + t[i++].offset;
    m->lm_head = c->tie_word_embeddings ? m->embed : p + t[i++].offset;
    m->value_head = m->has_value_head ? p + t[i++].offset : NULL;
    assert(i == m->n_tensors);
}

/* n zeroed floats of the model's backend. */
static float *alloc_floats(const model *m, int64_t n) {
    float *p = m->be->alloc(m->be, n);
    m->be->zero(m->be, p, n);
    return p;
}

model *model_create(const model_config *cfg, bool value_head, bool trainable) {
    return model_create_on(mart_backend_cpu(), cfg, value_head, trainable);
}

model *model_create_on(const mart_backend *be, const model_config *cfg, bool value_head,
                       bool trainable) {
    assert(cfg->n_heads > 0 && cfg->n_kv_heads > 0 && cfg->n_heads % cfg->n_kv_heads == 0);
    assert(cfg->head_dim > 0 && cfg->head_dim % 2 == 0);
    assert(cfg->n_layers >= 0 && cfg->hidden_size > 0 && cfg->vocab_size > 0);
    model *m = mart_xcalloc(1, sizeof *m);
    m->be = be;
    m->cfg = *cfg;
    m->has_value_head = value_head;
    m->trainable = trainable;
    m->n_tensors = model_layout(cfg, value_head, NULL, &m->n_params);
    m->tensors = mart_xcalloc((size_t)m->n_tensors, sizeof *m->tensors);
    model_layout(cfg, value_head, m->tensors, &m->n_params);
    m->params = alloc_floats(m, m->n_params);
    m->grads = trainable ? alloc_floats(m, m->n_params) : NULL;
    m->layers = mart_xcalloc((size_t)(cfg->n_layers > 0 ? cfg->n_layers : 1), sizeof *m->layers);
    bind_pointers(m);
    m->work = model_work_create(be);
    return m;
}

/* Frees the BF16 copies, whoever holds them. */
static void drop_bf16(model *m) {
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        model_layer *ly = &m->layers[l];
        uint16_t **c[4] = {&ly->wqkv16, &ly->wo16, &ly->w_gu16, &ly->w_down16};
        for (int i = 0; i < 4; i++) {
            m->be->free(m->be, *c[i]);
            *c[i] = NULL;
        }
    }
    m->be->free(m->be, m->lm_head16);
    m->lm_head16 = NULL;
}

bool model_bf16_acquire(model *m) {
    if (m->bf16_holders++ > 0) return m->lm_head16 != NULL;
    const model_config *c = &m->cfg;
    int64_t d = c->hidden_size, qd = (int64_t)c->n_heads * c->head_dim,
            kvd = (int64_t)c->n_kv_heads * c->head_dim, f = c->intermediate_size;
    const mart_backend *be = m->be;
    m->lm_head16 = be->bf16_copy(be, m->lm_head, (int64_t)c->vocab_size * d);
    if (!m->lm_head16) return false; /* not BF16 values, or no kernel reads the copies */
    for (int32_t l = 0; l < c->n_layers; l++) {
        model_layer *ly = &m->layers[l];
        ly->wqkv16 = be->bf16_copy(be, ly->wq, (qd + 2 * kvd) * d);
        ly->wo16 = be->bf16_copy(be, ly->wo, d * qd);
        ly->w_gu16 = be->bf16_copy(be, ly->w_gate, 2 * f * d);
        ly->w_down16 = be->bf16_copy(be, ly->w_down, d * f);
    }
    return true;
}

void model_bf16_release(model *m) {
    assert(m->bf16_holders > 0);
    if (--m->bf16_holders == 0) drop_bf16(m);
}

void model_free(model *m) {
    if (!m) return;
    drop_bf16(m);
    model_work_free(m->work);
    m->be->free(m->be, m->params);
    m->be->free(m->be, m->grads);
    free(m->tensors);
    free(m->layers);
    free(m);
}

/* Elements per random stream in model_init_random: chunks are filled in parallel, and the
 * values depend only on (seed, tensor, chunk), never on the number of threads. */
#define INIT_CHUNK 65536

/* p[0..n) ~ N(0, std^2) from one stream: Box-Muller, both outputs of each pair used. */
static void fill_normal(float *p, int64_t n, float std, uint64_t seed, uint64_t stream) {
    mart_rng r;
    mart_rng_seed(&r, seed, stream);
    const float two_pi = 6.28318530717958647692f;
    for (int64_t j = 0; j < n; j += 2) {
        /* 24-bit uniforms; u1 in (0, 1] so the log is finite. */
        uint64_t bits = mart_rng_u64(&r);
        float u1 = ((float)(bits >> 40) + 1.0f) * (1.0f / 16777216.0f);
        float u2 = (float)((bits >> 16) & 0xffffff) * (1.0f / 16777216.0f);
        float rad = std * sqrtf(-2.0f * logf(u1)), s, c;
        sincosf(two_pi * u2, &s, &c);
        p[j] = rad * c;
        if (j + 1 < n) p[j + 1] = rad * s;
    }
}

float *model_host_view(const model *m, const model_tensor *t) {
    if (m->be->host_memory) return m->params + t->offset;
    float *h = mart_xmalloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof(float));
    m->be->download(m->be, h, m->params + t->offset, t->numel);
    return h;
}

void model_host_commit(model *m, const model_tensor *t, float *view) {
    if (m->be->host_memory) return;
    m->be->upload(m->be, m->params + t->offset, view, t->numel);
    free(view);
}

void model_host_release(const model *m, float *view) {
    if (!m->be->host_memory) free(view);
}

void model_init_random(model *m, uint64_t seed) {
    assert(m->bf16_holders == 0);
    /* Each tensor draws from its own streams, so adding a tensor (value head) leaves the
     * others unchanged. Norm weights are 1, biases and the value head 0 (as in HF init). */
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        float *p = model_host_view(m, t);
        if (strstr(t->name, "norm.weight")) {
            for (int64_t j = 0; j < t->numel; j++)
                p[j] = 1.0f;
        } else if (t->ndim == 1 || !strcmp(t->name, "value_head.weight")) {
            memset(p, 0, (size_t)t->numel * sizeof(float));
        } else {
            int64_t n_chunks = (t->numel + INIT_CHUNK - 1) / INIT_CHUNK;
#pragma omp parallel for schedule(dynamic, 4) if (n_chunks > 1)
            for (int64_t c = 0; c < n_chunks; c++) {
                int64_t j0 = c * INIT_CHUNK,
                        n = t->numel - j0 < INIT_CHUNK ? t->numel - j0 : INIT_CHUNK;
                fill_normal(p + j0, n, 0.02f, seed, ((uint64_t)i << 32) | (uint64_t)c);
            }
        }
        model_host_commit(m, t, p);
    }
}

/* Rebuilds the tensor table for (value_head, trainable), carrying parameters over by name. */
static void relayout(model *m, bool value_head, bool trainable) {
    assert(m->bf16_holders == 0);
    model *n = model_create_on(m->be, &m->cfg, value_head, false);
    for (int32_t i = 0; i < n->n_tensors; i++) {
        const model_tensor *src = model_find_tensor(m, n->tensors[i].name);
        if (src)
            m->be->copy(m->be, n->params + n->tensors[i].offset, m->params + src->offset,
                        src->numel);
    }
    m->be->free(m->be, m->params);
    free(m->tensors);
    m->params = n->params;
    m->tensors = n->tensors;
    m->n_tensors = n->n_tensors;
    m->n_params = n->n_params;
    m->has_value_head = value_head;
    n->params = NULL;
    n->tensors = NULL;
    model_free(n);
    bind_pointers(m);
    m->be->free(m->be, m->grads);
    m->grads = NULL;
    m->trainable = false;
    model_set_trainable(m, trainable);
}

void model_set_value_head(model *m, bool on) {
    if (on == m->has_value_head) return;
    relayout(m, on, m->trainable);
}

void model_set_trainable(model *m, bool on) {
    if (on && !m->grads) m->grads = alloc_floats(m, m->n_params);
    if (!on && m->grads) {
        m->be->free(m->be, m->grads);
        m->grads = NULL;
    }
    m->trainable = on;
}

model *model_clone(const model *m, bool value_head, bool trainable) {
    model *c = model_create_on(m->be, &m->cfg, value_head, trainable);
    for (int32_t i = 0; i < c->n_tensors; i++) {
        const model_tensor *src = model_find_tensor(m, c->tensors[i].name);
        if (src)
            m->be->copy(m->be, c->params + c->tensors[i].offset, m->params + src->offset,
                        src->numel);
    }
    return c;
}

const model_tensor *model_find_tensor(const model *m, const char *name) {
    for (int32_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}
