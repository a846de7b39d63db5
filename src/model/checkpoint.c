/* checkpoint: Hugging Face model directories <-> model (see model_load / model_save in
 * include/mart/model.h). A directory holds config.json and either model.safetensors or the
 * shards listed in model.safetensors.index.json. Files are memory-mapped and converted into
 * model.params one tensor at a time, releasing each tensor's pages once converted, so the
 * peak memory of a load is about the F32 parameters alone. */
#include "mart/model.h"
#include "mart/safetensors.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_SINGLE "model.safetensors"
#define ST_INDEX "model.safetensors.index.json"
#define VALUE_HEAD_NAME "value_head.weight"

/* The weight files of one checkpoint and which file holds which tensor. */
typedef struct {
    st_file **files; /* (n_files) */
    int32_t n_files;
    char index_path[4096]; /* "" when the checkpoint is a single file */
    cJSON *weight_map;     /* index "weight_map" (owned by index_root), NULL for one file */
    cJSON *index_root;
} ckpt_files;

static void ckpt_close(ckpt_files *c) {
    for (int32_t i = 0; i < c->n_files; i++)
        st_close(c->files[i]);
    free(c->files);
    cJSON_Delete(c->index_root);
    memset(c, 0, sizeof *c);
}

static int open_index(ckpt_files *c, const char *dir, mart_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (mart_read_file(c->index_path, &text, &len, err) != MART_OK) return MART_ERR;
    c->index_root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!c->index_root) return mart_fail(err, "%s: not valid JSON", c->index_path);
    c->weight_map = cJSON_GetObjectItemCaseSensitive(c->index_root, "weight_map");
    if (!cJSON_IsObject(c->weight_map))
        return mart_fail(err, "%s: field \"weight_map\" is missing or not an object",
                         c->index_path);
    /* Open every distinct shard once, in order of first mention. */
    int32_t cap = cJSON_GetArraySize(c->weight_map);
    c->files = mart_xcalloc((size_t)cap + 1, sizeof *c->files);
    for (const cJSON *e = c->weight_map->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return mart_fail(err, "%s: weight_map entry \"%s\" is not a file name", c->index_path,
                             e->string);
        if (strchr(e->valuestring, '/'))
            return mart_fail(err,
                             "%s: weight_map entry \"%s\": shard \"%s\" is not a plain "
                             "file name",
                             c->index_path, e->string, e->valuestring);
        char path[4096];
        mart_path_join(path, sizeof path, dir, e->valuestring);
        bool seen = false;
        for (int32_t i = 0; i < c->n_files && !seen; i++)
            seen = !strcmp(st_path(c->files[i]), path);
        if (seen) continue;
        if (st_open(path, &c->files[c->n_files], err) != MART_OK) return MART_ERR;
        c->n_files++;
    }
    return MART_OK;
}

static int ckpt_open(ckpt_files *c, const char *dir, mart_err *err) {
    memset(c, 0, sizeof *c);
    char path[4096];
    mart_path_join(path, sizeof path, dir, ST_SINGLE);
    /* Like transformers: a single file wins over an index. */
    if (mart_path_exists(path)) {
        c->files = mart_xcalloc(1, sizeof *c->files);
        if (st_open(path, &c->files[0], err) != MART_OK) return MART_ERR;
        c->n_files = 1;
        return MART_OK;
    }
    mart_path_join(c->index_path, sizeof c->index_path, dir, ST_INDEX);
    if (!mart_path_exists(c->index_path))
        return mart_fail(err, "%s: no %s or %s", dir, ST_SINGLE, ST_INDEX);
    return open_index(c, dir, err);
}

/* Finds tensor `name`: *file and *view, or both NULL when absent from the checkpoint. An
 * index naming a shard that lacks the tensor is an error. */
static int ckpt_find(const ckpt_files *c, const char *name, const st_file **file,
                     const st_view **view, mart_err *err) {
    *file = NULL;
    *view = NULL;
    if (!c->weight_map) {
        *view = st_find(c->files[0], name);
        if (*view) *file = c->files[0];
        return MART_OK;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->weight_map, name);
    if (!e) return MART_OK;
    for (int32_t i = 0; i < c->n_files; i++) {
        const char *p = st_path(c->files[i]), *slash = strrchr(p, '/');
        if (strcmp(slash ? slash + 1 : p, e->valuestring) != 0) continue;
        *view = st_find(c->files[i], name);
        if (!*view)
            return mart_fail(err, "%s: tensor \"%s\" is missing (%s lists it in this shard)", p,
                             name, c->index_path);
        *file = c->files[i];
        return MART_OK;
    }
    assert(0 && "every shard of the index was opened");
    return MART_ERR;
}

static void shape_str(char *buf, size_t cap, int32_t ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static bool is_tied_head(const model *m, const model_tensor *t) {
    return m->cfg.tie_word_embeddings && !strcmp(t->name, "lm_head.weight");
}

/* Tensors transformers itself skips when loading: the LM head of a tied model, and the
 * rotary frequency buffers older Llama checkpoints stored. */
static bool is_ignorable(const model *m, const char *name) {
    size_t n = strlen(name);
    const char *suffix = ".rotary_emb.inv_freq";
    size_t k = strlen(suffix);
    if (n >= k && !strcmp(name + n - k, suffix)) return true;
    return m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight");
}

int model_load(const char *dir, bool trainable, model **out, mart_err *err) {
    return model_load_on(mart_backend_cpu(), dir, trainable, out, err);
}

int model_load_on(const mart_backend *be, const char *dir, bool trainable, model **out,
                  mart_err *err) {
    *out = NULL;
    char cfg_path[4096];
    model_config cfg;
    if (model_config_load(mart_path_join(cfg_path, sizeof cfg_path, dir, "config.json"), &cfg,
                          err) != MART_OK)
        return MART_ERR;
    ckpt_files c;
    if (ckpt_open(&c, dir, err) != MART_OK) {
        ckpt_close(&c);
        return MART_ERR;
    }
    const st_file *vf;
    const st_view *vv;
    if (ckpt_find(&c, VALUE_HEAD_NAME, &vf, &vv, err) != MART_OK) {
        ckpt_close(&c);
        return MART_ERR;
    }
    model *m = model_create_on(be, &cfg, vv != NULL, trainable);
    const char *where = c.weight_map ? c.index_path : st_path(c.files[0]);
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (is_tied_head(m, t)) continue; /* shares the embedding */
        const st_file *f;
        const st_view *v;
        if (ckpt_find(&c, t->name, &f, &v, err) != MART_OK) goto fail;
        if (!v) {
            mart_fail(err, "%s: tensor \"%s\" is missing", where, t->name);
            goto fail;
        }
        bool same = v->ndim == t->ndim;
        for (int32_t k = 0; same && k < t->ndim; k++)
            same = v->shape[k] == t->shape[k];
        if (!same) {
            char got[96], want[96];
            shape_str(got, sizeof got, v->ndim, v->shape);
            shape_str(want, sizeof want, t->ndim, t->shape);
            mart_fail(err, "%s: tensor \"%s\" has shape %s, expected %s (from config.json)",
                      st_path(f), t->name, got, want);
            goto fail;
        }
        float *dst = model_host_view(m, t);
        st_to_f32(v, dst);
        model_host_commit(m, t, dst);
        st_release(f, v);
    }
    /* A tensor the config does not explain (say biases in a checkpoint whose config.json
     * says attention_bias: false) means the model would silently compute something else. */
    for (int32_t i = 0; i < c.n_files; i++)
        for (int32_t k = 0; k < st_count(c.files[i]); k++) {
            const char *name = st_get(c.files[i], k)->name;
            if (model_find_tensor(m, name) || is_ignorable(m, name)) continue;
            mart_fail(err,
                      "%s: unexpected tensor \"%s\" (config.json describes no such "
                      "parameter)",
                      st_path(c.files[i]), name);
            goto fail;
        }
    ckpt_close(&c);
    *out = m;
    return MART_OK;
fail:
    ckpt_close(&c);
    model_free(m);
    return MART_ERR;
}

typedef struct {
    const model *m;
    const int32_t *table_index; /* (n written) index into m->tensors */
} save_ctx;

static void fill_converted(void *ctx, int32_t i, const st_view *v, void *dst) {
    const save_ctx *s = ctx;
    const model_tensor *t = &s->m->tensors[s->table_index[i]];
    float *src = model_host_view(s->m, t);
    st_from_f32(src, t->numel, v->dtype, dst);
    model_host_release(s->m, src);
}

int model_save(const model *m, const char *dir, mart_err *err) {
    if (mart_mkdirs(dir, err) != MART_OK) return MART_ERR;
    char path[4096];
    if (model_config_save(mart_path_join(path, sizeof path, dir, "config.json"), &m->cfg, err) !=
        MART_OK)
        return MART_ERR;
    st_view *views = mart_xcalloc((size_t)m->n_tensors + 1, sizeof *views);
    int32_t *idx = mart_xcalloc((size_t)m->n_tensors + 1, sizeof *idx);
    int32_t n = 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (is_tied_head(m, t)) continue;
        st_view *v = &views[n];
        v->name = t->name;
        v->dtype = m->cfg.dtype;
        v->ndim = t->ndim;
        for (int32_t k = 0; k < t->ndim; k++)
            v->shape[k] = t->shape[k];
        idx[n++] = i;
    }
    /* transformers refuses safetensors files without format metadata. */
    const char *keys[] = {"format"}, *values[] = {"pt"};
    save_ctx ctx = {m, idx};
    int rc = st_save_with(mart_path_join(path, sizeof path, dir, ST_SINGLE), views, n, keys, values,
                          1, fill_converted, &ctx, err);
    free(views);
    free(idx);
    if (rc != MART_OK) return MART_ERR;
    /* A stale index would describe other weights than the file just written. */
    mart_path_join(path, sizeof path, dir, ST_INDEX);
    if (unlink(path) != 0 && errno != ENOENT)
        return mart_fail(err, "%s: cannot remove stale index: %s", path, strerror(errno));
    return MART_OK;
}
