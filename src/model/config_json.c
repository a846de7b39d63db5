/* config_json: Hugging Face config.json <-> model_config, for Qwen2ForCausalLM and
 * LlamaForCausalLM (see include/mart/model.h). Defaults follow transformers' Qwen2Config
 * and LlamaConfig; options mart does not implement (rope scaling, sliding windows, MLP
 * bias, other activations) are refused with the field named, never silently ignored. */
#include "model/model_priv.h"
#include "mart/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far beyond any model that fits in memory (4 TB of F32 parameters). */
#define MODEL_MAX_PARAMS 1e12
/* Bounds on single sizes, each far above published models (Llama 3 405B: 126 layers, hidden
 * 16384, FFN 53248, 128 heads; vocabularies up to ~256k; contexts up to ~1M tokens), so that
 * a typo or a hostile file is refused by name before any product of sizes is formed. */
#define MODEL_MAX_LAYERS 1024
#define MODEL_MAX_HIDDEN 65536
#define MODEL_MAX_FFN (1 << 20)
#define MODEL_MAX_HEADS 1024
#define MODEL_MAX_HEAD_DIM 1024
#define MODEL_MAX_VOCAB (1 << 24)
#define MODEL_MAX_POSITIONS (1 << 24)

typedef struct {
    const char *path;
    const cJSON *root;
    mart_err *err;
} cfg_reader;

static const cJSON *field(const cfg_reader *r, const char *name) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->root, name);
    return cJSON_IsNull(j) ? NULL : j;
}

/* A positive (or, with allow_zero, non-negative) integer field. */
static int get_int(const cfg_reader *r, const char *name, bool required, int32_t def,
                   bool allow_zero, int32_t *out) {
    const cJSON *j = field(r, name);
    if (!j) {
        if (required) return mart_fail(r->err, "%s: field \"%s\" is missing", r->path, name);
        *out = def;
        return MART_OK;
    }
    double x = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(x == floor(x)) || x < (allow_zero ? 0 : 1) || x > INT32_MAX)
        return mart_fail(r->err, "%s: field \"%s\" must be a %s integer", r->path, name,
                         allow_zero ? "non-negative" : "positive");
    *out = (int32_t)x;
    return MART_OK;
}

static int get_double(const cfg_reader *r, const char *name, double def, double *out) {
    const cJSON *j = field(r, name);
    if (!j) {
        *out = def;
        return MART_OK;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || !isfinite(j->valuedouble))
        return mart_fail(r->err, "%s: field \"%s\" must be a positive number", r->path, name);
    *out = j->valuedouble;
    return MART_OK;
}

static int get_bool(const cfg_reader *r, const char *name, bool def, bool *out) {
    const cJSON *j = field(r, name);
    if (!j) {
        *out = def;
        return MART_OK;
    }
    if (!cJSON_IsBool(j))
        return mart_fail(r->err, "%s: field \"%s\" must be true or false", r->path, name);
    *out = cJSON_IsTrue(j);
    return MART_OK;
}

/* bos/eos: an integer, or a list whose first element is used (Llama 3 style); -1 if absent. */
static int get_token_id(const cfg_reader *r, const char *name, int32_t *out) {
    const cJSON *j = field(r, name);
    if (cJSON_IsArray(j)) j = cJSON_GetArrayItem(j, 0);
    if (!j) {
        *out = -1;
        return MART_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 0 ||
        j->valuedouble > INT32_MAX)
        return mart_fail(r->err, "%s: field \"%s\" must be a token id", r->path, name);
    *out = (int32_t)j->valuedouble;
    return MART_OK;
}

static int parse_arch(const cfg_reader *r, mart_arch *arch) {
    const cJSON *a = field(r, "architectures");
    if (a) {
        const cJSON *first = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
        if (!cJSON_IsString(first))
            return mart_fail(r->err, "%s: field \"architectures\" must be a list of names",
                             r->path);
        if (!strcmp(first->valuestring, "Qwen2ForCausalLM"))
            *arch = MART_ARCH_QWEN2;
        else if (!strcmp(first->valuestring, "LlamaForCausalLM"))
            *arch = MART_ARCH_LLAMA;
        else
            return mart_fail(r->err,
                             "%s: field \"architectures\": \"%s\" is not supported "
                             "(Qwen2ForCausalLM, LlamaForCausalLM)",
                             r->path, first->valuestring);
        return MART_OK;
    }
    const cJSON *t = field(r, "model_type");
    if (!t)
        return mart_fail(r->err, "%s: field \"architectures\" (or \"model_type\") is missing",
                         r->path);
    if (cJSON_IsString(t) && !strcmp(t->valuestring, "qwen2"))
        *arch = MART_ARCH_QWEN2;
    else if (cJSON_IsString(t) && !strcmp(t->valuestring, "llama"))
        *arch = MART_ARCH_LLAMA;
    else
        return mart_fail(r->err, "%s: field \"model_type\" must be \"qwen2\" or \"llama\"",
                         r->path);
    return MART_OK;
}

static int parse_dtype(const cfg_reader *r, mart_dtype *d) {
    /* Newer transformers write "dtype", older "torch_dtype". */
    const char *name = field(r, "dtype") ? "dtype" : "torch_dtype";
    const cJSON *j = field(r, name);
    if (!j) {
        *d = MART_DTYPE_F32;
        return MART_OK;
    }
    const char *s = cJSON_IsString(j) ? j->valuestring : "";
    if (!strcmp(s, "float32"))
        *d = MART_DTYPE_F32;
    else if (!strcmp(s, "bfloat16"))
        *d = MART_DTYPE_BF16;
    else if (!strcmp(s, "float16"))
        *d = MART_DTYPE_F16;
    else
        return mart_fail(r->err,
                         "%s: field \"%s\" must be \"float32\", \"bfloat16\" or "
                         "\"float16\"",
                         r->path, name);
    return MART_OK;
}

/* Options that change the architecture in ways mart does not implement. */
static int refuse_unsupported(const cfg_reader *r) {
    const cJSON *act = field(r, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return mart_fail(r->err, "%s: field \"hidden_act\": only \"silu\" is supported", r->path);
    if (field(r, "rope_scaling"))
        return mart_fail(r->err, "%s: field \"rope_scaling\" is not supported (must be null)",
                         r->path);
    bool on = false;
    if (get_bool(r, "use_sliding_window", false, &on) != MART_OK) return MART_ERR;
    if (on)
        return mart_fail(r->err,
                         "%s: field \"use_sliding_window\": sliding-window attention "
                         "is not supported",
                         r->path);
    if (get_bool(r, "mlp_bias", false, &on) != MART_OK) return MART_ERR;
    if (on)
        return mart_fail(r->err, "%s: field \"mlp_bias\": MLP biases are not supported", r->path);
    return MART_OK;
}

static void shape_text(char *buf, size_t cap, int32_t ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* The sizes that decide how much model_load allocates (layers, vocabulary x hidden, the
 * attention and MLP widths) are checked against the model.safetensors beside config.json, if
 * there is one, before anything is allocated: a config asking for 20000 layers over a file
 * holding 2 is refused at once. Tensor-by-tensor checks stay with model_load. */
static int check_weights_beside(const char *config_path, const model_config *c, mart_err *err) {
    char path[4096];
    const char *slash = strrchr(config_path, '/');
    int dir_len = slash ? (int)(slash - config_path) : 1;
    snprintf(path, sizeof path, "%.*s/model.safetensors", dir_len, slash ? config_path : ".");
    if (!mart_path_exists(path)) return MART_OK; /* sharded, or missing: model_load says so */
    st_file *f;
    if (st_open(path, &f, err) != MART_OK) return MART_ERR;
    int64_t layers = 0;
    for (int32_t i = 0; i < st_count(f); i++) {
        int l;
        if (sscanf(st_get(f, i)->name, "model.layers.%d.", &l) == 1 && l >= 0 && l + 1 > layers)
            layers = l + 1;
    }
    int rc = MART_OK;
    if (layers < c->n_layers)
        rc = mart_fail(err, "%s: field \"num_hidden_layers\" is %d but %s holds %lld layer(s)",
                       config_path, c->n_layers, path, (long long)layers);
    /* The tensors of the embedding, the first layer and the head, as the layout has them. */
    model_config first = *c;
    first.n_layers = 1;
    int64_t total;
    int32_t n = model_layout(&first, false, NULL, &total);
    model_tensor *sized = mart_xcalloc((size_t)n, sizeof *sized);
    model_layout(&first, false, sized, &total);
    for (int32_t i = 0; rc == MART_OK && i < n; i++) {
        const st_view *v = st_find(f, sized[i].name);
        if (!v || (v->ndim == sized[i].ndim && v->shape[0] == sized[i].shape[0] &&
                   (v->ndim == 1 || v->shape[1] == sized[i].shape[1])))
            continue;
        char got[96], want[96];
        shape_text(got, sizeof got, v->ndim, v->shape);
        shape_text(want, sizeof want, sized[i].ndim, sized[i].shape);
        rc = mart_fail(err, "%s: tensor \"%s\" has shape %s, expected %s (from config.json)", path,
                       sized[i].name, got, want);
    }
    free(sized);
    st_close(f);
    return rc;
}

int model_config_load(const char *path, model_config *cfg, mart_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (mart_read_file(path, &text, &len, err) != MART_OK) return MART_ERR;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        mart_fail(err, "%s: not valid JSON (near byte %ld)", path, end ? (long)(end - text) : 0L);
        free(text);
        return MART_ERR;
    }
    free(text);
    cfg_reader r = {path, root, err};
    model_config c;
    memset(&c, 0, sizeof c);
    int rc = MART_ERR;
    if (!cJSON_IsObject(root)) {
        mart_fail(err, "%s: not a JSON object", path);
        goto done;
    }
    if (parse_arch(&r, &c.arch) != MART_OK || refuse_unsupported(&r) != MART_OK) goto done;
    bool qwen = c.arch == MART_ARCH_QWEN2;
    double eps = 1e-6;
    if (get_int(&r, "vocab_size", true, 0, false, &c.vocab_size) ||
        get_int(&r, "hidden_size", true, 0, false, &c.hidden_size) ||
        get_int(&r, "num_hidden_layers", true, 0, false, &c.n_layers) ||
        get_int(&r, "num_attention_heads", true, 0, false, &c.n_heads) ||
        get_int(&r, "intermediate_size", true, 0, false, &c.intermediate_size) ||
        get_int(&r, "num_key_value_heads", false, c.n_heads, false, &c.n_kv_heads) ||
        get_int(&r, "max_position_embeddings", false, qwen ? 32768 : 2048, false,
                &c.max_position_embeddings) ||
        get_double(&r, "rms_norm_eps", 1e-6, &eps) ||
        get_double(&r, "rope_theta", 10000.0, &c.rope_theta) ||
        get_bool(&r, "tie_word_embeddings", false, &c.tie_word_embeddings) ||
        get_token_id(&r, "bos_token_id", &c.bos_token_id) ||
        get_token_id(&r, "eos_token_id", &c.eos_token_id) || parse_dtype(&r, &c.dtype))
        goto done;
    c.rms_norm_eps = (float)eps;
    if (qwen) {
        c.attention_bias = true; /* Qwen2 always has q/k/v biases */
    } else if (get_bool(&r, "attention_bias", false, &c.attention_bias) != MART_OK) {
        goto done;
    }
    if (c.n_heads % c.n_kv_heads != 0) {
        mart_fail(err,
                  "%s: field \"num_key_value_heads\" (%d) must divide "
                  "\"num_attention_heads\" (%d)",
                  path, c.n_kv_heads, c.n_heads);
        goto done;
    }
    if (field(&r, "head_dim")) {
        if (get_int(&r, "head_dim", true, 0, false, &c.head_dim) != MART_OK) goto done;
    } else if (c.hidden_size % c.n_heads != 0) {
        mart_fail(err,
                  "%s: field \"hidden_size\" (%d) is not a multiple of "
                  "\"num_attention_heads\" (%d) and \"head_dim\" is missing",
                  path, c.hidden_size, c.n_heads);
        goto done;
    } else {
        c.head_dim = c.hidden_size / c.n_heads;
    }
    const struct {
        const char *name;
        int32_t value, max;
    } bounds[] = {
        {"num_hidden_layers", c.n_layers, MODEL_MAX_LAYERS},
        {"hidden_size", c.hidden_size, MODEL_MAX_HIDDEN},
        {"intermediate_size", c.intermediate_size, MODEL_MAX_FFN},
        {"num_attention_heads", c.n_heads, MODEL_MAX_HEADS},
        {"num_key_value_heads", c.n_kv_heads, MODEL_MAX_HEADS},
        {"head_dim", c.head_dim, MODEL_MAX_HEAD_DIM},
        {"vocab_size", c.vocab_size, MODEL_MAX_VOCAB},
        {"max_position_embeddings", c.max_position_embeddings, MODEL_MAX_POSITIONS},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].value > bounds[i].max) {
            mart_fail(err, "%s: field \"%s\" is %d, above mart's limit of %d", path, bounds[i].name,
                      bounds[i].value, bounds[i].max);
            goto done;
        }
    if (c.head_dim % 2 != 0) {
        mart_fail(err, "%s: field \"head_dim\" (%d) must be even for rotary embeddings", path,
                  c.head_dim);
        goto done;
    }
    /* Sizes whose product cannot be allocated would abort in the allocator: refuse them
     * here, with the file named, instead. */
    int64_t count;
    model_layout(&c, false, NULL, &count);
    double n_params = (double)count;
    if (n_params > MODEL_MAX_PARAMS) {
        mart_fail(err, "%s: sizes describe %.3g parameters, more than mart supports (%.0e)", path,
                  n_params, MODEL_MAX_PARAMS);
        goto done;
    }
    char what[4200];
    snprintf(what, sizeof what, "%s: the %.3g float32 parameters it describes", path, n_params);
    if (mart_check_memory(n_params * sizeof(float), what, err) != MART_OK ||
        check_weights_beside(path, &c, err) != MART_OK)
        goto done;
    *cfg = c;
    rc = MART_OK;
done:
    cJSON_Delete(root);
    return rc;
}

static const char *dtype_torch_name(mart_dtype d) {
    switch (d) {
    case MART_DTYPE_F32:
        return "float32";
    case MART_DTYPE_BF16:
        return "bfloat16";
    case MART_DTYPE_F16:
        return "float16";
    }
    return "float32";
}

int model_config_save(const char *path, const model_config *c, mart_err *err) {
    bool qwen = c->arch == MART_ARCH_QWEN2;
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    /* The shortest decimal that reads back as the same float (1e-06, not 9.99999997e-07). */
    char eps[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(eps, sizeof eps, "%.*g", digits, (double)c->rms_norm_eps);
        if ((float)strtod(eps, NULL) == c->rms_norm_eps) break;
    }
    cJSON_AddNumberToObject(o, "rms_norm_eps", strtod(eps, NULL));
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    if (qwen) {
        cJSON_AddBoolToObject(o, "use_sliding_window", false);
        cJSON_AddNumberToObject(o, "sliding_window", c->max_position_embeddings);
        cJSON_AddNumberToObject(o, "max_window_layers", c->n_layers);
    } else {
        cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
        cJSON_AddBoolToObject(o, "mlp_bias", false);
        cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    }
    cJSON_AddNullToObject(o, "rope_scaling");
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) cJSON_AddNumberToObject(o, "eos_token_id", c->eos_token_id);
    cJSON_AddStringToObject(o, "torch_dtype", dtype_torch_name(c->dtype));
    cJSON_AddBoolToObject(o, "use_cache", true);
    cJSON_AddStringToObject(o, "transformers_version", "4.45.0");
    /* One field per line, as transformers writes it (cJSON_Print would indent with tabs). */
    mart_buf b = {0};
    mart_buf_append(&b, "{\n", 2);
    for (const cJSON *e = o->child; e; e = e->next) {
        char *v = cJSON_PrintUnformatted(e);
        mart_buf_printf(&b, "  \"%s\": %s%s\n", e->string, v, e->next ? "," : "");
        cJSON_free(v);
    }
    mart_buf_append(&b, "}\n", 2);
    cJSON_Delete(o);
    int rc = mart_write_file_atomic(path, b.data, b.len, err);
    mart_buf_free(&b);
    return rc;
}
