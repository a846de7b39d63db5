/* model: the decoder-only transformer (Qwen2 / Llama family) over a compute backend
 * (mart/backend.h). Owns the parameters (one backend buffer, carved by a tensor table named
 * as in Hugging Face checkpoints), their gradients, BF16 copies for decoding, activation
 * buffers, and the forward / backward passes over packed batches. Generation reuses the
 * same forward with a KV cache; training uses it with backward. */
#ifndef MART_MODEL_H
#define MART_MODEL_H

#include "mart/backend.h"
#include "mart/core.h"

typedef enum { MART_ARCH_QWEN2 = 0, MART_ARCH_LLAMA = 1 } mart_arch;
typedef enum { MART_DTYPE_F32 = 0, MART_DTYPE_BF16 = 1, MART_DTYPE_F16 = 2 } mart_dtype;

/* Hyper-parameters, read from / written to Hugging Face config.json. */
typedef struct {
    mart_arch arch;
    int32_t vocab_size;
    int32_t hidden_size;       /* d */
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;        /* grouped-query attention: n_heads % n_kv_heads == 0 */
    int32_t head_dim;          /* d / n_heads unless config says otherwise */
    int32_t intermediate_size; /* SwiGLU width */
    int32_t max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;
    bool attention_bias;       /* bias on q/k/v (always for Qwen2) */
    int32_t bos_token_id;      /* -1 when absent */
    int32_t eos_token_id;      /* -1 when absent */
    mart_dtype dtype;          /* torch_dtype: the dtype checkpoints are written in */
} model_config;

/* One named parameter tensor inside model.params. */
typedef struct {
    char name[96];    /* e.g. "model.layers.3.self_attn.q_proj.weight" */
    int32_t ndim;     /* 1 or 2 */
    int64_t shape[2]; /* row-major (out, in) for linear weights, as in PyTorch */
    int64_t offset;   /* first element in model.params / model.grads */
    int64_t numel;
} model_tensor;

/* Pointers into model.params for one block. Linear weights are (out, in), row-major. */
typedef struct {
    float *attn_norm;           /* (d) */
    float *wq, *bq;             /* (n_heads*hd, d), (n_heads*hd) or NULL */
    float *wk, *bk;             /* (n_kv*hd, d), (n_kv*hd) or NULL */
    float *wv, *bv;             /* (n_kv*hd, d), (n_kv*hd) or NULL */
    float *wo;                  /* (d, n_heads*hd) */
    float *mlp_norm;            /* (d) */
    float *w_gate, *w_up;       /* (ffn, d) */
    float *w_down;              /* (d, ffn) */
    /* BF16 copies of the matrices decoding reads (model_bf16_acquire), else NULL. */
    uint16_t *wqkv16, *wo16, *w_gu16, *w_down16;
} model_layer;

struct model_work; /* activation buffers, private to src/model */

typedef struct model {
    const mart_backend *be; /* not owned; params, grads and activations are its buffers */
    model_config cfg;
    bool has_value_head; /* scalar head on the final hidden state (PPO critic) */
    bool trainable;      /* grads allocated; false = frozen (reference model) */
    int64_t n_params;
    float *params;       /* (n_params) every parameter, one allocation */
    float *grads;        /* (n_params) same layout, NULL when frozen */
    model_tensor *tensors;
    int32_t n_tensors;
    float *embed;        /* (vocab, d) model.embed_tokens.weight */
    model_layer *layers; /* (n_layers) */
    float *final_norm;   /* (d) model.norm.weight */
    float *lm_head;      /* (vocab, d) == embed when tied */
    float *value_head;   /* (d) value_head.weight, NULL without value head */
    uint16_t *lm_head16; /* BF16 copy of lm_head, or NULL (see model_bf16_acquire) */
    int32_t bf16_holders;/* model_bf16_acquire calls not yet released */
    struct model_work *work;
} model;

/* KV cache: a fixed number of slots, each holding up to max_len positions, in buffers of
 * the model's backend. */
typedef struct {
    const mart_backend *be;
    int32_t n_layers, n_slots, max_len, kv_dim; /* kv_dim = n_kv_heads * head_dim */
    float *k, *v;  /* (n_layers, n_slots, max_len, kv_dim) backend buffers */
    int32_t *len;  /* (n_slots) positions filled in each slot */
} model_kv_cache;

/* A batch of variable-length sequences packed back to back, no padding. */
typedef struct {
    int32_t n_seqs;
    const int32_t *tokens;  /* (n_tokens) */
    const int32_t *offsets; /* (n_seqs + 1) sequence i is tokens[offsets[i] .. offsets[i+1]) */
    const int32_t *slots;   /* (n_seqs) KV-cache slot of each sequence, or NULL (no cache) */
} model_batch;

/* What a forward pass should produce; every output pointer may be NULL (not computed). The
 * outputs and targets are host memory, whatever the model's backend. */
typedef struct {
    const int32_t *targets; /* (n_tokens) next-token id per position for logprobs; < 0 = none */
    float temperature;      /* logits are divided by it for logprobs/entropy; 0 means 1 */
    bool last_only;         /* outputs only for the last token of each sequence: rows are
                               then per sequence, (n_seqs, ...) instead of (n_tokens, ...) */
    float *logprobs;        /* (rows) log p(targets[t] | prefix) */
    float *entropy;         /* (rows) entropy of the next-token distribution */
    float *logits;          /* (rows, vocab) raw logits (not divided by temperature) */
    float *values;          /* (rows) value head output; needs has_value_head */
    mart_products products; /* how the matrix products multiply (exact by default); BF16
                               products read the BF16 copies, where model_bf16_acquire made
                               them, and are for generation (never for backward) */
} model_out;

/* ---- configs ---- */

/* Fills cfg for a built-in shape: "tiny" (the demo model), "small" (d 256, 4 layers, 4/2
 * heads, FFN 704, vocab 512), "40m" (d 512, 8 layers, 8/4 heads, FFN 1408, vocab 32000),
 * "qwen2.5-0.5b", "qwen2.5-1.5b". Returns MART_ERR for an unknown name (message lists them). */
int model_config_builtin(const char *name, model_config *cfg, mart_err *err);
/* Reads a Hugging Face config.json (Qwen2ForCausalLM or LlamaForCausalLM). Errors name the
 * file and the missing/invalid field. */
int model_config_load(const char *path, model_config *cfg, mart_err *err);
/* Writes config.json (atomically) so that transformers/vLLM load the model unchanged. */
int model_config_save(const char *path, const model_config *cfg, mart_err *err);

/* ---- lifetime ---- */

/* Allocates a model on the CPU backend with zeroed parameters (and zeroed grads when
 * trainable). */
model *model_create(const model_config *cfg, bool value_head, bool trainable);
/* The same on backend be (not owned; must outlive the model). */
model *model_create_on(const mart_backend *be, const model_config *cfg, bool value_head,
                       bool trainable);
/* Fills parameters with the seeded initialisation (normal 0.02, norms 1, value head 0). */
void model_init_random(model *m, uint64_t seed);
void model_free(model *m);
/* Adds (zero-initialised) or drops the value head, and turns gradients on or off. */
void model_set_value_head(model *m, bool on);
void model_set_trainable(model *m, bool on);
/* Host access to one tensor of the parameters, whatever the backend: model_host_view gives
 * a host pointer to its values (the parameters themselves when the backend's memory is the
 * host's, else a copy made with download). After writing through it, model_host_commit
 * uploads the copy; after reading, model_host_release. Both free the copy. */
float *model_host_view(const model *m, const model_tensor *t);
void model_host_commit(model *m, const model_tensor *t, float *view);
void model_host_release(const model *m, float *view);

/* Makes BF16 copies of the matrices decoding reads, when the weights are exactly BF16 values
 * (a BF16 checkpoint not yet trained) and the backend reads such copies: half the bytes per
 * decoded token, and BF16 products (model_out.products). Counted: each call needs one
 * model_bf16_release; the copies go with the last. Returns whether copies exist. The copies
 * are stale once the parameters change: whoever acquires must release before an update
 * (model_adamw_step asserts it). */
bool model_bf16_acquire(model *m);
void model_bf16_release(model *m);
/* A deep copy on the same backend (critic from actor, reference from base). */
model *model_clone(const model *m, bool value_head, bool trainable);
const model_tensor *model_find_tensor(const model *m, const char *name);

/* ---- checkpoints (Hugging Face layout) ---- */

/* Loads DIR/config.json and DIR/model.safetensors (or the shards listed in
 * DIR/model.safetensors.index.json) onto the CPU backend; F32, BF16 and F16 are converted to
 * F32. A tensor "value_head.weight", when present, becomes the value head. */
int model_load(const char *dir, bool trainable, model **out, mart_err *err);
/* The same onto backend be (not owned; must outlive the model). */
int model_load_on(const mart_backend *be, const char *dir, bool trainable, model **out,
                  mart_err *err);
/* Writes DIR/config.json and DIR/model.safetensors in cfg.dtype, each atomically; DIR is
 * created when missing. The value head, if any, is written as "value_head.weight". */
int model_save(const model *m, const char *dir, mart_err *err);

/* ---- compute ---- */

/* Runs the model over a packed batch. With batch->slots, each sequence continues its
 * KV-cache slot (positions start at cache->len[slot]; new K/V are appended and len grows).
 * With for_backward, activations are kept for model_backward (no cache allowed then).
 * Errors: a token id outside the vocabulary (names the sequence and position), a slot
 * that would overflow max_len. */
int model_forward(model *m, const model_batch *batch, model_kv_cache *cache, model_out *out,
                  bool for_backward, mart_err *err);
/* Accumulates into m->grads the gradient of
 *   L = sum_t d_logprobs[t]*logprobs[t] + d_entropy[t]*entropy[t] + d_values[t]*values[t]
 * (d_* are host memory, n_tokens floats each)
 * for the batch of the last model_forward(for_backward=true). Any of the three may be NULL
 * (zero). Requires m->trainable. Rows are per token (last_only is not supported here). */
void model_backward(model *m, const float *d_logprobs, const float *d_entropy,
                    const float *d_values);

void model_zero_grads(model *m);
/* Global L2 norm of m->grads; when max_norm > 0 and the norm exceeds it, scales the grads
 * down to max_norm. Returns the norm before clipping. */
float model_clip_grad_norm(model *m, float max_norm);

/* ---- KV cache ---- */

/* A cache for model m's shape on m's backend. */
int model_kv_create(model_kv_cache *c, const model *m, int32_t n_slots, int32_t max_len,
                    mart_err *err);
void model_kv_free(model_kv_cache *c);
/* Copies the first n positions of slot src into slot dst (shared prompt prefixes). */
void model_kv_copy(model_kv_cache *c, int32_t dst, int32_t src, int32_t n);

/* ---- optimiser ---- */

/* AdamW state for one model's parameters: moments in the model's backend. */
typedef struct {
    const mart_backend *be; /* not owned */
    int64_t n;
    int64_t step;           /* updates taken */
    float *m, *v;           /* (n) first and second moments */
} adamw_state;

/* Zeroed moments for n parameters on backend be. */
void adamw_init(adamw_state *s, const mart_backend *be, int64_t n);
void adamw_free(adamw_state *s);
/* One update of params (n) from grads (already averaged and clipped by the caller); both
 * are buffers of s->be. */
void adamw_step(adamw_state *s, float *params, const float *grads, const adamw_config *c);
/* One update of m's parameters from its gradients (s made for m->n_params). */
void model_adamw_step(model *m, adamw_state *s, const adamw_config *c);
/* The step every trainer takes: clips m's gradients to global norm max_norm (0 = no
 * clipping), then one AdamW update. Returns the norm before clipping; when it is not finite
 * (a non-finite loss), nothing is updated and the caller stops with an error. */
float model_optimizer_step(model *m, adamw_state *s, const adamw_config *c, float max_norm);
/* The learning-rate schedule of every trainer, at optimiser step `step` (0-based) of `total`:
 * linear warm-up over ceil(warmup_frac*total) steps (lr = peak*step/warmup, as Hugging Face's
 * scheduler), then cosine from peak down to min_ratio*peak, reached at step == total. */
double adamw_lr_at(int64_t step, int64_t total, double peak, double warmup_frac,
                   double min_ratio);

#endif
