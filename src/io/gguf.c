/* gguf: writing and reading GGUF version 3 (github.com/ggml-org/ggml, docs/gguf.md):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims,
 *   u64 dims[n_dims] (innermost first), u32 ggml type, u64 offset in the data section),
 *   padding to general.alignment, then the data section (each tensor aligned too).
 * Strings are u64 length + bytes; everything is little-endian. */
#include "mart/gguf.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mart/safetensors.h"

/* GGUF metadata value types. */
enum {
    GV_U8 = 0,
    GV_I8 = 1,
    GV_U16 = 2,
    GV_I16 = 3,
    GV_U32 = 4,
    GV_I32 = 5,
    GV_F32 = 6,
    GV_BOOL = 7,
    GV_STRING = 8,
    GV_ARRAY = 9,
    GV_U64 = 10,
    GV_I64 = 11,
    GV_F64 = 12,
};
/* ggml tensor types used here. */
enum { GT_F32 = 0, GT_F16 = 1, GT_Q8_0 = 8, GT_BF16 = 30 };
/* general.file_type (llama_ftype) */
enum { FT_ALL_F32 = 0, FT_MOSTLY_Q8_0 = 7, FT_MOSTLY_BF16 = 32 };
/* bytes of one Q8_0 block: F16 scale + 32 int8 */
#define Q8_0_BYTES (2 + GGUF_Q8_0_BLOCK)

/* ---- names ------------------------------------------------------------------------------ */

/* GGUF's name of a Hugging Face tensor name; false when it has none (the value head). */
static bool gguf_name_of(const char *hf, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"self_attn.q_proj.", "attn_q."},
        {"self_attn.k_proj.", "attn_k."},
        {"self_attn.v_proj.", "attn_v."},
        {"self_attn.o_proj.", "attn_output."},
        {"mlp.gate_proj.", "ffn_gate."},
        {"mlp.up_proj.", "ffn_up."},
        {"mlp.down_proj.", "ffn_down."},
        {"input_layernorm.", "attn_norm."},
        {"post_attention_layernorm.", "ffn_norm."},
    };
    if (!strcmp(hf, "model.embed_tokens.weight"))
        return snprintf(out, cap, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, cap, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, cap, "output.weight") > 0;
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || !used) return false;
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
        size_t l = strlen(map[k][0]);
        if (!strncmp(hf + used, map[k][0], l)) {
            snprintf(out, cap, "blk.%d.%s%s", layer, map[k][1], hf + used + l);
            return true;
        }
    }
    return false;
}

/* Heads whose rows llama.cpp permutes for a tensor (llama q and k), or 0. */
static int32_t permuted_heads(const model_config *c, const char *hf) {
    if (c->arch != MART_ARCH_LLAMA) return 0;
    if (strstr(hf, "self_attn.q_proj.")) return c->n_heads;
    if (strstr(hf, "self_attn.k_proj.")) return c->n_kv_heads;
    return 0;
}

/* Source row of GGUF row r: within each head of hd rows, HF's halves [x0..x_{hd/2}) and
 * [x_{hd/2}..) become interleaved pairs (llama.cpp's permute(), for GGML's rotary). */
static int64_t permuted_source_row(int64_t r, int64_t hd) {
    int64_t h = r / hd, k = r % hd;
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    bool failed;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (!w->failed && n && fwrite(p, 1, n, w->f) != n) w->failed = true;
}
static void put_u32(writer *w, uint32_t v) {
    put(w, &v, 4);
}
static void put_u64(writer *w, uint64_t v) {
    put(w, &v, 8);
}
static void put_str(writer *w, const char *s) {
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_u32(writer *w, const char *k, uint32_t v) {
    put_str(w, k);
    put_u32(w, GV_U32);
    put_u32(w, v);
}
static void kv_f32(writer *w, const char *k, float v) {
    put_str(w, k);
    put_u32(w, GV_F32);
    put(w, &v, 4);
}
static void kv_bool(writer *w, const char *k, bool v) {
    uint8_t b = v;
    put_str(w, k);
    put_u32(w, GV_BOOL);
    put(w, &b, 1);
}
static void kv_str(writer *w, const char *k, const char *v) {
    put_str(w, k);
    put_u32(w, GV_STRING);
    put_str(w, v);
}
static void kv_array(writer *w, const char *k, uint32_t type, uint64_t n) {
    put_str(w, k);
    put_u32(w, GV_ARRAY);
    put_u32(w, type);
    put_u64(w, n);
}

/* One tensor to write. */
typedef struct {
    char name[96];
    const model_tensor *src; /* (rows, cols) in Hugging Face's layout */
    int64_t rows, cols; /* cols is GGUF's ne0 */
    int32_t ndim;
    int32_t heads; /* > 0: rows permuted in that many heads */
    uint32_t type;
    uint64_t offset, bytes;
} out_tensor;

static uint64_t tensor_bytes(uint32_t type, int64_t rows, int64_t cols) {
    uint64_t n = (uint64_t)rows * (uint64_t)cols;
    switch (type) {
    case GT_F32:
        return 4 * n;
    case GT_BF16:
    case GT_F16:
        return 2 * n;
    default:
        return n / GGUF_Q8_0_BLOCK * Q8_0_BYTES;
    }
}

static uint64_t align_up(uint64_t x) {
    return (x + GGUF_ALIGNMENT - 1) / GGUF_ALIGNMENT * GGUF_ALIGNMENT;
}

/* Writes one row of n floats as type (ggml's quantize_row_q8_0_ref for Q8_0). */
static void put_row(writer *w, const float *x, int64_t n, uint32_t type, void *scratch) {
    if (type == GT_F32) {
        put(w, x, (size_t)n * 4);
        return;
    }
    if (type == GT_BF16) {
        uint16_t *o = scratch;
        for (int64_t i = 0; i < n; i++)
            o[i] = st_f32_to_bf16(x[i]);
        put(w, o, (size_t)n * 2);
        return;
    }
    uint8_t *o = scratch;
    for (int64_t b = 0; b < n / GGUF_Q8_0_BLOCK; b++) {
        const float *xb = x + b * GGUF_Q8_0_BLOCK;
        uint8_t *ob = o + b * Q8_0_BYTES;
        float amax = 0;
        for (int i = 0; i < GGUF_Q8_0_BLOCK; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        uint16_t dh = st_f32_to_f16(d);
        memcpy(ob, &dh, 2);
        for (int i = 0; i < GGUF_Q8_0_BLOCK; i++)
            ob[2 + i] = (uint8_t)(int8_t)roundf(xb[i] * id);
    }
    put(w, o, (size_t)(n / GGUF_Q8_0_BLOCK * Q8_0_BYTES));
}

static const char *kind_key(const char *arch, const char *key, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", arch, key);
    return buf;
}

static void write_tokenizer(writer *w, const model *m, const tok_tokenizer *t) {
    int32_t V = m->cfg.vocab_size, Vt = tok_vocab_size(t);
    bool spm = tok_is_sentencepiece(t);
    kv_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    kv_str(w, "tokenizer.ggml.pre",
           spm                              ? "default"
           : m->cfg.arch == MART_ARCH_QWEN2 ? "qwen2"
                                            : "llama-bpe");
    kv_array(w, "tokenizer.ggml.tokens", GV_STRING, (uint64_t)V);
    for (int32_t id = 0; id < V; id++) {
        const char *s = id < Vt ? tok_token_text(t, id) : NULL;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", (int)id);
        put_str(w, s ? s : pad);
    }
    /* GGUF's token types: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6. */
    static const int32_t type_of[] = {
        [TOK_KIND_NORMAL] = 1,       [TOK_KIND_UNKNOWN] = 2, [TOK_KIND_CONTROL] = 3,
        [TOK_KIND_USER_DEFINED] = 4, [TOK_KIND_UNUSED] = 5,  [TOK_KIND_BYTE] = 6,
    };
    kv_array(w, "tokenizer.ggml.token_type", GV_I32, (uint64_t)V);
    for (int32_t id = 0; id < V; id++)
        put(w, &type_of[id < Vt ? tok_token_kind(t, id) : TOK_KIND_UNUSED], 4);
    int32_t nm = tok_n_merges(t);
    if (spm) {
        /* llama.cpp's SentencePiece tokenizer merges the pair whose token scores highest. */
        float *score = mart_xcalloc((size_t)V, sizeof *score);
        for (int32_t r = nm - 1; r >= 0; r--) {
            int32_t a, b, c;
            tok_merge_at(t, r, &a, &b, &c);
            if (c < V) score[c] = -(float)r;
        }
        kv_array(w, "tokenizer.ggml.scores", GV_F32, (uint64_t)V);
        put(w, score, (size_t)V * 4);
        free(score);
    } else {
        kv_array(w, "tokenizer.ggml.merges", GV_STRING, (uint64_t)nm);
        mart_buf b = {0};
        for (int32_t r = 0; r < nm; r++) {
            int32_t l, rr, c;
            tok_merge_at(t, r, &l, &rr, &c);
            b.len = 0;
            mart_buf_printf(&b, "%s %s", tok_token_text(t, l), tok_token_text(t, rr));
            put_str(w, b.data);
        }
        mart_buf_free(&b);
    }
    int32_t bos = tok_bos_id(t) >= 0 ? tok_bos_id(t) : m->cfg.bos_token_id;
    int32_t eos = tok_eos_id(t) >= 0 ? tok_eos_id(t) : m->cfg.eos_token_id;
    if (bos >= 0) kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (tok_unk_id(t) >= 0) kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tok_unk_id(t));
    kv_bool(w, "tokenizer.ggml.add_bos_token", tok_adds_bos(t));
    kv_bool(w, "tokenizer.ggml.add_eos_token", tok_adds_eos(t));
    if (tok_chat_template(t)) kv_str(w, "tokenizer.chat_template", tok_chat_template(t));
}

/* Number of metadata pairs write_tokenizer writes. */
static uint64_t tokenizer_kv_count(const model *m, const tok_tokenizer *t) {
    int32_t bos = tok_bos_id(t) >= 0 ? tok_bos_id(t) : m->cfg.bos_token_id;
    int32_t eos = tok_eos_id(t) >= 0 ? tok_eos_id(t) : m->cfg.eos_token_id;
    return 7 + (bos >= 0) + (eos >= 0) + (tok_unk_id(t) >= 0) + (tok_chat_template(t) != NULL);
}

int gguf_export(const model *m, const tok_tokenizer *t, const char *name, gguf_dtype dtype,
                const char *path, mart_err *err) {
    const model_config *c = &m->cfg;
    if (tok_vocab_size(t) > c->vocab_size)
        return mart_fail(err, "the tokenizer has %d tokens, more than the model's vocabulary (%d)",
                         (int)tok_vocab_size(t), (int)c->vocab_size);
    out_tensor *ts = mart_xcalloc((size_t)m->n_tensors, sizeof *ts);
    int32_t n = 0;
    uint64_t data = 0;
    int64_t widest = 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        out_tensor *o = &ts[n];
        if (!gguf_name_of(mt->name, o->name, sizeof o->name)) continue;
        o->src = mt;
        o->ndim = mt->ndim;
        o->rows = mt->ndim == 2 ? mt->shape[0] : 1;
        o->cols = mt->ndim == 2 ? mt->shape[1] : mt->shape[0];
        o->heads = permuted_heads(c, mt->name);
        bool matrix = mt->ndim == 2;
        o->type = !matrix                                                ? GT_F32
                  : dtype == GGUF_BF16                                   ? GT_BF16
                  : dtype == GGUF_Q8_0 && o->cols % GGUF_Q8_0_BLOCK == 0 ? GT_Q8_0
                                                                         : GT_F32;
        o->offset = data;
        o->bytes = tensor_bytes(o->type, o->rows, o->cols);
        data = align_up(data + o->bytes);
        widest = o->cols > widest ? o->cols : widest;
        n++;
    }
    const char *arch = c->arch == MART_ARCH_QWEN2 ? "qwen2" : "llama";
    bool own_head_dim = c->head_dim * c->n_heads != c->hidden_size;
    uint64_t n_kv = 14 + (own_head_dim ? 2 : 0) + tokenizer_kv_count(m, t);

    size_t tl = strlen(path);
    char *tmp = mart_xmalloc(tl + 16);
    snprintf(tmp, tl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    mode_t mask = umask(0); /* mkstemp makes 0600; give the file the usual permissions */
    umask(mask);
    if (fd >= 0) fchmod(fd, 0666 & ~mask);
    if (fd < 0) {
        mart_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        free(ts);
        return MART_ERR;
    }
    writer w = {fdopen(fd, "wb"), false};
    if (!w.f) abort();
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, (uint64_t)n);
    put_u64(&w, n_kv);
    char k[128];
    kv_str(&w, "general.architecture", arch);
    kv_str(&w, "general.name", name);
    kv_u32(&w, "general.alignment", GGUF_ALIGNMENT);
    kv_u32(&w, "general.file_type",
           dtype == GGUF_F32    ? FT_ALL_F32
           : dtype == GGUF_BF16 ? FT_MOSTLY_BF16
                                : FT_MOSTLY_Q8_0);
    kv_u32(&w, kind_key(arch, "vocab_size", k, sizeof k), (uint32_t)c->vocab_size);
    kv_u32(&w, kind_key(arch, "context_length", k, sizeof k), (uint32_t)c->max_position_embeddings);
    kv_u32(&w, kind_key(arch, "embedding_length", k, sizeof k), (uint32_t)c->hidden_size);
    kv_u32(&w, kind_key(arch, "block_count", k, sizeof k), (uint32_t)c->n_layers);
    kv_u32(&w, kind_key(arch, "feed_forward_length", k, sizeof k), (uint32_t)c->intermediate_size);
    kv_u32(&w, kind_key(arch, "attention.head_count", k, sizeof k), (uint32_t)c->n_heads);
    kv_u32(&w, kind_key(arch, "attention.head_count_kv", k, sizeof k), (uint32_t)c->n_kv_heads);
    kv_f32(&w, kind_key(arch, "attention.layer_norm_rms_epsilon", k, sizeof k), c->rms_norm_eps);
    kv_f32(&w, kind_key(arch, "rope.freq_base", k, sizeof k), (float)c->rope_theta);
    kv_u32(&w, kind_key(arch, "rope.dimension_count", k, sizeof k), (uint32_t)c->head_dim);
    if (own_head_dim) {
        kv_u32(&w, kind_key(arch, "attention.key_length", k, sizeof k), (uint32_t)c->head_dim);
        kv_u32(&w, kind_key(arch, "attention.value_length", k, sizeof k), (uint32_t)c->head_dim);
    }
    write_tokenizer(&w, m, t);
    for (int32_t i = 0; i < n; i++) {
        put_str(&w, ts[i].name);
        put_u32(&w, (uint32_t)ts[i].ndim);
        put_u64(&w, (uint64_t)ts[i].cols);
        if (ts[i].ndim == 2) put_u64(&w, (uint64_t)ts[i].rows);
        put_u32(&w, ts[i].type);
        put_u64(&w, ts[i].offset);
    }
    static const char zeros[GGUF_ALIGNMENT];
    long here = ftell(w.f);
    if (here < 0) w.failed = true;
    put(&w, zeros, (size_t)(align_up((uint64_t)here) - (uint64_t)here));
    void *scratch = mart_xmalloc((size_t)widest * 4 + Q8_0_BYTES);
    for (int32_t i = 0; i < n && !w.failed; i++) {
        const out_tensor *o = &ts[i];
        int64_t hd = o->heads ? o->rows / o->heads : 0;
        float *values = model_host_view(m, o->src);
        for (int64_t r = 0; r < o->rows; r++) {
            int64_t src = o->heads ? permuted_source_row(r, hd) : r;
            put_row(&w, values + src * o->cols, o->cols, o->type, scratch);
        }
        model_host_release(m, values);
        put(&w, zeros, (size_t)(align_up(o->bytes) - o->bytes));
    }
    free(scratch);
    free(ts);
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) w.failed = true;
    if (fclose(w.f) != 0) w.failed = true;
    int rc = MART_OK;
    if (w.failed)
        rc = mart_fail(err, "%s: write failed: %s", path, strerror(errno));
    else if (rename(tmp, path) != 0)
        rc = mart_fail(err, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc != MART_OK) unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} cursor;

static bool take(cursor *c, void *dst, size_t n) {
    if (c->bad || n > c->len - c->pos) {
        c->bad = true;
        return false;
    }
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return true;
}
static uint32_t get_u32(cursor *c) {
    uint32_t v = 0;
    take(c, &v, 4);
    return v;
}
static uint64_t get_u64(cursor *c) {
    uint64_t v = 0;
    take(c, &v, 8);
    return v;
}
/* A string: points into the file (not NUL-terminated); *n its length. */
static const char *get_str(cursor *c, uint64_t *n) {
    *n = get_u64(c);
    if (c->bad || *n > c->len - c->pos) {
        c->bad = true;
        return NULL;
    }
    const char *s = (const char *)c->p + c->pos;
    c->pos += *n;
    return s;
}

static size_t scalar_size(uint32_t type) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < sizeof sz / sizeof sz[0] ? sz[type] : 0;
}

/* Skips one value of the given type (arrays of arrays included, depth-bounded). */
static void skip_value(cursor *c, uint32_t type, int depth) {
    if (type == GV_STRING) {
        uint64_t n;
        get_str(c, &n);
    } else if (type == GV_ARRAY && depth < 4) {
        uint32_t et = get_u32(c);
        uint64_t n = get_u64(c);
        if (et != GV_STRING && et != GV_ARRAY) {
            size_t s = scalar_size(et);
            if (!s || n > (c->len - c->pos) / s)
                c->bad = true;
            else
                c->pos += n * s;
            return;
        }
        for (uint64_t i = 0; i < n && !c->bad; i++)
            skip_value(c, et, depth + 1);
    } else {
        size_t s = scalar_size(type);
        if (!s || s > c->len - c->pos)
            c->bad = true;
        else
            c->pos += s;
    }
}

/* One metadata pair: key and where its value starts. */
typedef struct {
    const char *key;
    uint64_t key_len;
    uint32_t type;
    size_t at;
} kv_ref;

typedef struct {
    const char *name;
    uint64_t name_len;
    uint32_t n_dims;
    uint64_t dims[4];
    uint32_t type;
    uint64_t offset;
} tensor_ref;

typedef struct {
    cursor c;
    kv_ref *kv;
    uint64_t n_kv;
    tensor_ref *t;
    uint64_t n_t;
    size_t data; /* start of the data section */
    const char *path;
} gguf_in;

static const kv_ref *find_kv(const gguf_in *g, const char *key) {
    size_t n = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n)) return &g->kv[i];
    return NULL;
}

/* An integer value (any integer type); dflt when absent. Fails on another type. */
static int kv_int(const gguf_in *g, const char *key, int64_t dflt, int64_t *out, mart_err *err) {
    const kv_ref *k = find_kv(g, key);
    *out = dflt;
    if (!k) return MART_OK;
    const uint8_t *p = g->c.p + k->at;
    switch (k->type) {
    case GV_U8:
        *out = p[0];
        break;
    case GV_I8:
        *out = (int8_t)p[0];
        break;
    case GV_U16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        break;
    }
    case GV_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        break;
    }
    case GV_U32: {
        uint32_t v;
        memcpy(&v, p, 4);
        *out = v;
        break;
    }
    case GV_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v;
        break;
    }
    case GV_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        *out = (int64_t)v;
        break;
    }
    case GV_I64: {
        memcpy(out, p, 8);
        break;
    }
    default:
        return mart_fail(err, "%s: key %s: not an integer", g->path, key);
    }
    return MART_OK;
}

static int kv_float(const gguf_in *g, const char *key, double dflt, double *out, mart_err *err) {
    const kv_ref *k = find_kv(g, key);
    *out = dflt;
    if (!k) return MART_OK;
    if (k->type == GV_F32) {
        float v;
        memcpy(&v, g->c.p + k->at, 4);
        *out = v;
    } else if (k->type == GV_F64) {
        memcpy(out, g->c.p + k->at, 8);
    } else {
        return mart_fail(err, "%s: key %s: not a float", g->path, key);
    }
    return MART_OK;
}

/* Parses the header, metadata and tensor table; checks every tensor lies inside the file. */
static int gguf_parse(gguf_in *g, mart_err *err) {
    cursor *c = &g->c;
    char magic[4];
    if (!take(c, magic, 4) || memcmp(magic, "GGUF", 4))
        return mart_fail(err, "%s: not a GGUF file (magic)", g->path);
    uint32_t version = get_u32(c);
    if (version != 2 && version != 3)
        return mart_fail(err, "%s: GGUF version %u is not supported (2, 3)", g->path, version);
    g->n_t = get_u64(c);
    g->n_kv = get_u64(c);
    if (c->bad || g->n_kv > c->len / 12 || g->n_t > c->len / 24)
        return mart_fail(err, "%s: header counts do not fit the file", g->path);
    g->kv = mart_xcalloc(g->n_kv + 1, sizeof *g->kv);
    g->t = mart_xcalloc(g->n_t + 1, sizeof *g->t);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kv_ref *k = &g->kv[i];
        k->key = get_str(c, &k->key_len);
        k->type = get_u32(c);
        k->at = c->pos;
        skip_value(c, k->type, 0);
        if (c->bad)
            return mart_fail(err, "%s: metadata pair %llu is malformed", g->path,
                             (unsigned long long)i);
    }
    int64_t align;
    if (kv_int(g, "general.alignment", GGUF_ALIGNMENT, &align, err) != MART_OK) return MART_ERR;
    if (align <= 0 || (align & (align - 1)))
        return mart_fail(err, "%s: general.alignment %lld is not a power of two", g->path,
                         (long long)align);
    for (uint64_t i = 0; i < g->n_t; i++) {
        tensor_ref *t = &g->t[i];
        t->name = get_str(c, &t->name_len);
        t->n_dims = get_u32(c);
        if (c->bad || t->n_dims < 1 || t->n_dims > 4)
            return mart_fail(err, "%s: tensor %llu: malformed (dimensions)", g->path,
                             (unsigned long long)i);
        for (uint32_t d = 0; d < t->n_dims; d++)
            t->dims[d] = get_u64(c);
        t->type = get_u32(c);
        t->offset = get_u64(c);
        if (c->bad)
            return mart_fail(err, "%s: tensor %llu: truncated", g->path, (unsigned long long)i);
    }
    g->data = (c->pos + (size_t)align - 1) / (size_t)align * (size_t)align;
    for (uint64_t i = 0; i < g->n_t; i++) {
        tensor_ref *t = &g->t[i];
        uint64_t numel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (t->dims[d] == 0 || t->dims[d] > (1ull << 40) / numel)
                return mart_fail(err, "%s: tensor %.*s: bad shape", g->path, (int)t->name_len,
                                 t->name);
            numel *= t->dims[d];
        }
        if (t->type != GT_F32 && t->type != GT_F16 && t->type != GT_BF16 && t->type != GT_Q8_0)
            return mart_fail(err,
                             "%s: tensor %.*s: ggml type %u is not supported (F32, F16, "
                             "BF16, Q8_0)",
                             g->path, (int)t->name_len, t->name, t->type);
        if (t->type == GT_Q8_0 && t->dims[0] % GGUF_Q8_0_BLOCK)
            return mart_fail(err, "%s: tensor %.*s: Q8_0 rows must be a multiple of 32", g->path,
                             (int)t->name_len, t->name);
        uint64_t bytes = tensor_bytes(t->type, (int64_t)(numel / t->dims[0]), (int64_t)t->dims[0]);
        if (g->data > c->len || t->offset > c->len - g->data ||
            bytes > c->len - g->data - t->offset)
            return mart_fail(err, "%s: tensor %.*s: data outside the file", g->path,
                             (int)t->name_len, t->name);
    }
    return MART_OK;
}

static const tensor_ref *find_tensor(const gguf_in *g, const char *name) {
    size_t n = strlen(name);
    for (uint64_t i = 0; i < g->n_t; i++)
        if (g->t[i].name_len == n && !memcmp(g->t[i].name, name, n)) return &g->t[i];
    return NULL;
}

static float f16_value(uint16_t h) {
    st_view v = {.dtype = MART_DTYPE_F16, .ndim = 1, .shape = {1}, .data = &h};
    float f;
    st_to_f32(&v, &f);
    return f;
}

/* Row r of tensor t (cols values) as floats. */
static void read_row(const gguf_in *g, const tensor_ref *t, int64_t r, float *dst) {
    int64_t cols = (int64_t)t->dims[0];
    const uint8_t *base = g->c.p + g->data + t->offset;
    if (t->type == GT_F32) {
        memcpy(dst, base + (size_t)r * (size_t)cols * 4, (size_t)cols * 4);
    } else if (t->type == GT_Q8_0) {
        const uint8_t *row = base + (size_t)r * (size_t)(cols / GGUF_Q8_0_BLOCK) * Q8_0_BYTES;
        for (int64_t b = 0; b < cols / GGUF_Q8_0_BLOCK; b++) {
            uint16_t dh;
            memcpy(&dh, row + b * Q8_0_BYTES, 2);
            float d = f16_value(dh);
            for (int i = 0; i < GGUF_Q8_0_BLOCK; i++)
                dst[b * GGUF_Q8_0_BLOCK + i] = d * (float)(int8_t)row[b * Q8_0_BYTES + 2 + i];
        }
    } else {
        st_view v = {.dtype = t->type == GT_BF16 ? MART_DTYPE_BF16 : MART_DTYPE_F16,
                     .ndim = 1,
                     .shape = {cols},
                     .data = base + (size_t)r * (size_t)cols * 2};
        st_to_f32(&v, dst);
    }
}

static int config_from(const gguf_in *g, model_config *c, mart_err *err) {
    memset(c, 0, sizeof *c);
    const kv_ref *a = find_kv(g, "general.architecture");
    uint64_t alen = 0;
    const char *arch = NULL;
    if (a && a->type == GV_STRING) {
        cursor k = {g->c.p, g->c.len, a->at, false};
        arch = get_str(&k, &alen);
    }
    if (arch && alen == 5 && !memcmp(arch, "qwen2", 5))
        c->arch = MART_ARCH_QWEN2;
    else if (arch && alen == 5 && !memcmp(arch, "llama", 5))
        c->arch = MART_ARCH_LLAMA;
    else
        return mart_fail(err, "%s: general.architecture: missing, or not qwen2 or llama", g->path);
    const char *an = c->arch == MART_ARCH_QWEN2 ? "qwen2" : "llama";
    char k[128];
    int64_t d, layers, ffn, heads, kv, ctx, hd, bos, eos;
    double eps, theta;
#define INT_KEY(name, dflt, dst)                                                                   \
    (snprintf(k, sizeof k, "%s.%s", an, name), kv_int(g, k, dflt, dst, err))
    if (INT_KEY("embedding_length", -1, &d) || INT_KEY("block_count", -1, &layers) ||
        INT_KEY("feed_forward_length", -1, &ffn) || INT_KEY("attention.head_count", -1, &heads) ||
        INT_KEY("context_length", 2048, &ctx))
        return MART_ERR;
    if (INT_KEY("attention.head_count_kv", heads, &kv) ||
        INT_KEY("attention.key_length", heads > 0 ? d / heads : -1, &hd))
        return MART_ERR;
#undef INT_KEY
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", an);
    if (kv_float(g, k, 1e-6, &eps, err) != MART_OK) return MART_ERR;
    snprintf(k, sizeof k, "%s.rope.freq_base", an);
    if (kv_float(g, k, 10000.0, &theta, err) != MART_OK ||
        kv_int(g, "tokenizer.ggml.bos_token_id", -1, &bos, err) != MART_OK ||
        kv_int(g, "tokenizer.ggml.eos_token_id", -1, &eos, err) != MART_OK)
        return MART_ERR;
    if (d <= 0 || layers <= 0 || ffn <= 0 || heads <= 0 || kv <= 0 || hd <= 0 || heads % kv ||
        d > 1 << 20 || layers > 1024 || ffn > 1 << 22 || heads > 1024)
        return mart_fail(err, "%s: %s hyper-parameters missing or out of range", g->path, an);
    const tensor_ref *emb = find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || (int64_t)emb->dims[0] != d || emb->dims[1] > 1 << 24)
        return mart_fail(err, "%s: tensor token_embd.weight: missing or not (vocab, %lld)", g->path,
                         (long long)d);
    c->vocab_size = (int32_t)emb->dims[1];
    c->hidden_size = (int32_t)d;
    c->n_layers = (int32_t)layers;
    c->n_heads = (int32_t)heads;
    c->n_kv_heads = (int32_t)kv;
    c->head_dim = (int32_t)hd;
    c->intermediate_size = (int32_t)ffn;
    c->max_position_embeddings = (int32_t)ctx;
    c->rms_norm_eps = (float)eps;
    c->rope_theta = theta;
    c->tie_word_embeddings = !find_tensor(g, "output.weight");
    c->attention_bias = find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->bos_token_id = (int32_t)bos;
    c->eos_token_id = (int32_t)eos;
    c->dtype = MART_DTYPE_F32; /* exact for every tensor type read */
    return MART_OK;
}

int gguf_import(const char *path, model **out, mart_err *err) {
    *out = NULL;
    char *bytes;
    size_t len;
    if (mart_read_file(path, &bytes, &len, err) != MART_OK) return MART_ERR;
    gguf_in g = {.c = {(const uint8_t *)bytes, len, 0, false}, .path = path};
    model_config cfg;
    int rc = gguf_parse(&g, err);
    if (rc == MART_OK) rc = config_from(&g, &cfg, err);
    model *m = rc == MART_OK ? model_create(&cfg, false, false) : NULL;
    for (int32_t i = 0; m && rc == MART_OK && i < m->n_tensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        char name[96];
        if (!gguf_name_of(mt->name, name, sizeof name)) continue;
        const tensor_ref *t = find_tensor(&g, name);
        int64_t rows = mt->ndim == 2 ? mt->shape[0] : 1, cols = mt->shape[mt->ndim - 1];
        if (!t || t->dims[0] != (uint64_t)cols ||
            (t->n_dims == 2 ? t->dims[1] : 1) != (uint64_t)rows ||
            t->n_dims != (uint32_t)mt->ndim) {
            rc = mart_fail(err, "%s: tensor %s: missing or not of shape (%lld, %lld)", path, name,
                           (long long)rows, (long long)cols);
            break;
        }
        int32_t heads = permuted_heads(&cfg, mt->name);
        int64_t hd = heads ? rows / heads : 0;
        float *dst = model_host_view(m, mt);
        for (int64_t r = 0; r < rows; r++)
            read_row(&g, t, r, dst + (heads ? permuted_source_row(r, hd) : r) * cols);
        model_host_commit(m, mt, dst);
    }
    free(g.kv);
    free(g.t);
    free(bytes);
    if (rc != MART_OK) {
        model_free(m);
        return MART_ERR;
    }
    *out = m;
    return MART_OK;
}
