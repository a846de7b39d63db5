/* kv: the KV cache (see mart/model.h). Keys are stored after rotary embedding, so a slot
 * can be continued at any position without recomputing its prefix. */
#include "model/model_priv.h"

#include <stdlib.h>
#include <string.h>

int model_kv_create(model_kv_cache *c, const model_config *cfg, int32_t n_slots, int32_t max_len,
                    mart_err *err) {
    memset(c, 0, sizeof *c);
    if (n_slots <= 0 || max_len <= 0)
        return mart_fail(err, "KV cache: n_slots (%d) and max_len (%d) must be positive", n_slots,
                         max_len);
    c->n_layers = cfg->n_layers;
    c->n_slots = n_slots;
    c->max_len = max_len;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    size_t n = (size_t)c->n_layers * (size_t)n_slots * (size_t)max_len * (size_t)c->kv_dim;
    /* calloc: untouched slots cost no memory until used. */
    c->k = mart_xcalloc(n ? n : 1, sizeof(float));
    c->v = mart_xcalloc(n ? n : 1, sizeof(float));
    c->len = mart_xcalloc((size_t)n_slots, sizeof(int32_t));
    return MART_OK;
}

void model_kv_free(model_kv_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->len);
    memset(c, 0, sizeof *c);
}

void model_kv_copy(model_kv_cache *c, int32_t dst, int32_t src, int32_t n) {
    assert(dst >= 0 && dst < c->n_slots && src >= 0 && src < c->n_slots);
    assert(n >= 0 && n <= c->len[src] && n <= c->max_len);
    if (dst != src) {
        size_t bytes = (size_t)n * (size_t)c->kv_dim * sizeof(float);
        for (int32_t l = 0; l < c->n_layers; l++) {
            int64_t so = ((int64_t)l * c->n_slots + src) * c->max_len * c->kv_dim;
            int64_t d_o = ((int64_t)l * c->n_slots + dst) * c->max_len * c->kv_dim;
            memcpy(c->k + d_o, c->k + so, bytes);
            memcpy(c->v + d_o, c->v + so, bytes);
        }
    }
    c->len[dst] = n;
}
