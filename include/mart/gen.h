/* gen: batched autoregressive generation over model_forward with a KV cache. Continuous
 * batching (a finished sequence's slot goes to a waiting request), seeded sampling that does
 * not depend on what else is in the batch, continuation (the caller appends tokens, e.g. a
 * feedback turn, and decoding resumes without recomputing the prefix), shared prompt
 * prefixes, and the sampling log-probs PPO needs. Owns the KV cache and sampling state. */
#ifndef MART_GEN_H
#define MART_GEN_H

#include "mart/model.h"

typedef struct gen_engine gen_engine;

typedef struct {
    int32_t max_batch;      /* sequences decoded together (KV-cache slots) */
    int64_t kv_budget_mb;   /* KV cache memory budget (float32 keys and values, every layer).
                               When it holds fewer than max_batch sequences of max_len, fewer
                               are decoded together (waiting requests are admitted as slots
                               free up); creation fails clearly if it cannot hold one. */
    int32_t max_len;        /* longest sequence (prompt + everything after) */
    bool bf16_weights;      /* decode from BF16 copies of the weight matrices when the weights
                               are exactly BF16 values (a BF16 checkpoint, not yet trained):
                               half the bytes per token, +50% weight memory; with exact
                               products, the same results as without */
    bool bf16_products;     /* with those copies, round the activations to bfloat16 and use
                               the CPU's BF16 dot products (AVX512_BF16; about 2x the
                               arithmetic rate of large batches), like BF16 inference engines:
                               log-probs then differ from the float32 forward pass by ~1e-3
                               relative. false: exact float32 products */
} gen_config;

void gen_config_default(gen_config *c);

typedef struct {
    float temperature;      /* 0 = greedy */
    float top_p;            /* 1 = off */
    int32_t top_k;          /* 0 = off */
    uint64_t seed;
    int32_t max_new_tokens; /* budget of *sampled* tokens per request, all turns together */
    const int32_t *stop_ids;/* sampling one of these finishes the turn (e.g. <|im_end|>) */
    int32_t n_stop_ids;
} gen_params;

void gen_params_default(gen_params *p);

typedef enum {
    GEN_FINISH_NONE = 0,
    GEN_FINISH_STOP = 1,   /* a stop id was sampled, or the callback stopped it */
    GEN_FINISH_LENGTH = 2, /* max_new_tokens or max_len reached */
} gen_finish;

/* One request: a prompt, and an RNG stream so the sample is the same alone or in a batch. */
typedef struct {
    const int32_t *prompt;
    int32_t n_prompt;
    uint64_t stream;
    void *user;            /* handed back to the callback */
} gen_request;

/* What a request produced: everything after the prompt, sampled and appended tokens. */
typedef struct {
    int32_t *tokens;    /* (n_tokens) malloc'd */
    float *logprobs;    /* (n_tokens) log-prob under the sampling policy; 0 for appended */
    uint8_t *sampled;   /* (n_tokens) 1 = sampled by the model, 0 = appended by the caller */
    int32_t n_tokens;
    int32_t n_sampled;
    gen_finish finish;
} gen_result;

void gen_result_free(gen_result *r);

/* The callback's view of a live sequence. */
typedef struct gen_seq gen_seq;

typedef enum {
    GEN_CONTINUE = 0, /* keep decoding */
    GEN_STOP = 1,     /* finish this request now */
} gen_action;

/* Called after every sampled token (already recorded in the result) with `finish` set when
 * the token ends the turn by itself (stop id, or LENGTH when the budget is spent). The callback
 * may call gen_seq_append and return GEN_CONTINUE to resume decoding after the appended
 * tokens (a feedback turn), even after a stop id; returning GEN_CONTINUE without appending
 * when finish != NONE ends the request with that finish. NULL callback: plain generation. */
typedef gen_action (*gen_callback)(void *ctx, gen_seq *seq, void *user, int32_t token,
                                   float logprob, gen_finish finish);

/* Appends tokens to a live sequence (only from inside the callback). They are prefilled into
 * the KV cache, recorded with sampled = 0, and do not count against max_new_tokens. Returns
 * MART_ERR when the sequence would exceed max_len. */
int gen_seq_append(gen_seq *seq, const int32_t *tokens, int32_t n);
/* Sampled tokens left in the budget of this request. */
int32_t gen_seq_budget_left(const gen_seq *seq);

/* Creates an engine over m (not owned; must outlive the engine). The engine may keep copies
 * derived from the weights (see bf16_weights): do not change m's parameters while it lives. */
int gen_create(model *m, const gen_config *c, gen_engine **out, mart_err *err);
void gen_free(gen_engine *g);
/* Sequences decoded together: max_batch, or fewer when the KV budget is smaller. */
int32_t gen_slots(const gen_engine *g);

/* Runs all requests to completion with continuous batching; results[i] belongs to reqs[i].
 * Requests with identical prompts share one prefill. Deterministic for a given seed: request
 * i samples from the stream (p->seed, reqs[i].stream) with one uniform number per token, so
 * its tokens do not depend on the other requests (up to float rounding of batched matrix
 * products). Errors (nothing generated, results zeroed): invalid parameters, an empty prompt,
 * a token id outside the vocabulary, or a prompt that leaves no room under max_len. */
int gen_generate(gen_engine *g, const gen_request *reqs, int32_t n, const gen_params *p,
                 gen_callback cb, void *ctx, gen_result *results, mart_err *err);

#endif
