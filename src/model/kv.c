/* kv: the KV cache (see mart/model.h). Keys are stored after rotary embedding, so a slot
 * can be continued at any position without recomputing its prefix. */
#include "model/model_priv.h"

#include <stdlib.h>
#include <string.h>

int model_kv_create(model_kv_cache *c, const model *m, int32_t n_slots, int32_t max_len,
                    mart_err *err) {
    const model_config *cfg = &m->cfg;
    memset(c, 0, sizeof *c);
    if (n_slots <= 0 || max_len <= 0)
        return mart_fail(err, "KV cache: n_slots (%d) and max_len (%d) must be positive", n_slots,
                         max_len);
    c->be = m->be;
    c->n_layers = cfg->n_layers;
    c->n_slots = n_slots;
    c->max_len = max_len;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    int64_t n = (int64_t)c->n_layers * n_slots * max_len * c->kv_dim;
    /* Left uninitialised: attention reads only the positions a slot has filled (and on the
     * CPU, pages never written cost no memory). */
    c->k = c->be->alloc(c->be, n);
    c->v = c->be->alloc(c->be, n);
    c->len = mart_xcalloc((size_t)n_slots, sizeof(int32_t));
    return MART_OK;
}

void model_kv_free(model_kv_cache *c) {
    if (!c || !c->be) return;
    c->be->free(c->be, c->k);
    c->be->free(c->be, c->v);
    free(c->len);
    memset(c, 0, sizeof *c);
}

void model_kv_copy(model_kv_cache *c, int32_t dst, int32_t src, int32_t n) {
    assert(dst >= 0 && dst < c->n_slots && src >= 0 && src < c->n_slots);
    assert(n >= 0 && n <= c->len[src] && n <= c->max_len);
    if (dst != src && n > 0) {
        int64_t len = (int64_t)n * c->kv_dim;
        for (int32_t l = 0; l < c->n_layers; l++) {
            int64_t so = ((int64_t)l * c->n_slots + src) * c->max_len * c->kv_dim;
            int64_t d_o = ((int64_t)l * c->n_slots + dst) * c->max_len * c->kv_dim;
            c->be->copy(c->be, c->k + d_o, c->k + so, len);
            c->be->copy(c->be, c->v + d_o, c->v + so, len);
        }
    }
    c->len[dst] = n;
}
