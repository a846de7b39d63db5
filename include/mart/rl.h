/* rl: reinforcement learning on the multi-attempt task (../docs/SPEC.md §3): PPO with an actor,
 * a critic (the actor's copy plus a value head) and a frozen reference model, or GRPO
 * (group-relative advantages, no critic). Owns the loss math, the rollout samples built from
 * episodes, the update loop (mini-batches, micro-batches, gradient accumulation, schedule),
 * checkpoints and metrics of a training run. The pure math is exposed so that tests can check
 * it against hand-computed values. */
#ifndef MART_RL_H
#define MART_RL_H

#include "mart/env.h"
#include "mart/model.h"

/* ---- defaults from the study (SPEC §3) ------------------------------------------------- */

#define RL_GAMMA 1.0f          /* GAE discount */
#define RL_LAMBDA 0.99f        /* GAE lambda */
#define RL_CLIP_EPS 0.2f       /* PPO ratio clip */
#define RL_VALUE_CLIP 0.2f     /* value clip around the old values */
#define RL_KL_COEF 0.01f       /* k3 KL weight, added to the policy loss */
#define RL_KL_CLAMP_MART 10.0f /* --kl-clamp 10: mart's option to keep exp(r) finite; the
                                  reference does not clamp (default 0 = no clamp) */
#define RL_ACTOR_LR 5e-7
#define RL_CRITIC_LR 1e-5
#define RL_BETA1 0.9f
#define RL_BETA2 0.95f
#define RL_MAX_GRAD_NORM 1.0f
#define RL_WARMUP_FRAC 0.03    /* share of optimiser steps in linear warm-up */
#define RL_MIN_LR_RATIO 0.1    /* cosine decays to this share of the peak */
#define RL_GROUP_EPS 1e-9f     /* GRPO: (r - mean) / (std + eps), as in OpenRLHF group_norm */
#define RL_WHITEN_VAR_MIN 1e-8 /* whitening: variance clamped before the inverse square root */
#define RL_LR_HORIZON 160.0    /* passes over the prompt set the schedule is sized for
                                  (the reference's num_episodes) */
#define RL_CHUNK_REFERENCE 64  /* the reference checks for a box every 64 tokens */

/* ---- pure math -------------------------------------------------------------------------- */

/* GAE over one episode's tokens (index i = token i of the sequence). rewards, values: per
 * token, read only where trainable[i]; adv, ret: written for every i (0 where not trainable).
 * Backwards over trainable tokens: delta_i = r_i + g*V_next - V_i, A_i = delta_i + g*l*A_next,
 * where "next" is the next token of the episode; when that next token is a feedback token
 * (not trainable, after the first trainable token), gamma and lambda are 1 for the step, so the
 * value terms telescope across the span and credit passes straight through. V and A after the
 * last trainable token are 0. values of feedback tokens are then irrelevant (they cancel), so
 * they are not read at all. Returns = advantages + values. */
void rl_gae(int32_t n, const uint8_t *trainable, const float *rewards, const float *values,
            float gamma, float lambda, float *adv, float *ret);

/* Clipped PPO surrogate for one token: loss = -min(ratio*A, clip(ratio, 1-eps, 1+eps)*A) with
 * ratio = exp(logp - old_logp). *d_logp = dloss/dlogp; *clipped = the clipped term was the
 * smaller (its gradient is 0). */
float rl_policy_loss(float logp, float old_logp, float adv, float eps, float *d_logp,
                     bool *clipped);

/* k3 KL estimator: exp(r) - 1 - r with r = logp_ref - logp, computed in double. With clamp > 0,
 * r is clamped to +-clamp and the gradient is 0 beyond (mart's option); clamp 0 = none (the
 * reference). *d_logp = dkl/dlogp = 1 - exp(r). */
float rl_kl_k3(float logp, float ref_logp, float clamp, float *d_logp);

/* Advantage whitening over the trainable tokens of a whole rollout batch, in passes that can
 * be split over parts of the batch (and over ranks: add the parts' moments, then divide):
 *   1. rl_moments_add_sum over every part -> count, sum; mean = sum / count
 *   2. rl_moments_add_dev over every part with that mean -> dev (sum of squared deviations)
 *   3. rl_whiten over every part with mean and rl_whiten_scale(dev / count).
 * Every advantage of a trainable token becomes (A - mean) / sqrt(max(var, 1e-8)) (biased
 * variance, as the reference); other entries are left as they are (0). */
typedef struct {
    double count, sum, dev;
} rl_moments;
void rl_moments_add_sum(rl_moments *m, const float *adv, const uint8_t *trainable, int32_t n);
void rl_moments_add_dev(rl_moments *m, const float *adv, const uint8_t *trainable, int32_t n,
                        double mean);
double rl_whiten_scale(double var);
void rl_whiten(float *adv, const uint8_t *trainable, int32_t n, double mean, double scale);

/* Clipped value loss for one token: 1/2 * max((v - R)^2, (old + clip(v - old, -c, c) - R)^2).
 * *d_v = dloss/dv; *clipped = the clipped branch was the larger. */
float rl_value_loss(float v, float old_v, float ret, float clip, float *d_v, bool *clipped);

typedef enum {
    RL_GROUP_GRPO = 0, /* (r - mean) / (std + eps), std unbiased (torch.std) */
    RL_GROUP_RLOO = 1, /* r - mean of the other n-1 samples */
} rl_group_mode;

/* Group-relative advantages: rewards are (n_groups, group_size), groups contiguous. */
void rl_group_advantages(const float *rewards, int32_t n_groups, int32_t group_size,
                         rl_group_mode mode, float *adv);

/* The optimiser steps the schedule (adamw_lr_at, mart/model.h) is sized for. horizon > 0: that many passes over the
 * prompt set, as the reference (ceil(horizon * floor(n_problems * n_samples / mini_batch) *
 * epochs), at least 1 step a pass), whatever this run's length; horizon 0: this run's steps
 * (run_steps rollout steps of rollout_batch questions). */
int64_t rl_schedule_steps(double horizon, int64_t n_problems, int32_t run_steps,
                          int32_t rollout_batch, int32_t n_samples, int32_t mini_batch,
                          int32_t epochs);

/* ---- rollout samples -------------------------------------------------------------------- */

/* One episode made ready for updates. Per-token arrays have n_tokens entries; entry i is
 * about token i (it is predicted from the prefix tokens[0..i)). Only trainable entries count. */
typedef struct {
    int32_t *tokens;        /* (n_tokens) */
    uint8_t *trainable;     /* (n_tokens) 1 iff the model sampled the token */
    float *old_logprobs;    /* (n_tokens) sampling log-probs of the engine */
    float *ref_logprobs;    /* (n_tokens) under the frozen reference (PPO, or KL coef > 0) */
    float *old_values;      /* (n_tokens) critic, before the update (PPO only) */
    float *advantages;      /* (n_tokens) */
    float *returns;         /* (n_tokens) PPO only */
    int32_t n_tokens, n_prompt, n_trainable;
    float reward;
} rl_sample;

/* Copies an episode's tokens, mask and sampling log-probs; the other arrays are zeroed. */
void rl_sample_from_episode(rl_sample *s, const env_episode *e);
void rl_sample_free(rl_sample *s);

/* Loss settings of an update. */
typedef struct {
    float clip_eps, value_clip, kl_coef;
    float kl_clamp;    /* see rl_kl_k3: 0 = none (the reference) */
    float temperature; /* logprobs are of logits/temperature, as sampled */
} rl_loss_config;

void rl_loss_config_default(rl_loss_config *c);

/* Sums over the trainable tokens of what an update saw (divide by n_tokens for means). */
typedef struct {
    double n_tokens;
    double policy_loss, kl, entropy, clip_frac, value_loss, value_clip_frac;
    double max_ratio_dev; /* max |ratio - 1|: 0 up to rounding on the first epoch */
} rl_stats;

/* Scores samples with a model, without gradients: logprobs (of tokens[i], into logprobs[i])
 * and/or values (into values[i]); either may be NULL. Packs up to `micro` samples per forward. */
int rl_score(model *m, rl_sample *const *s, int32_t n, int32_t micro, float temperature,
             float *const *logprobs, float *const *values, mart_err *err);

/* One micro-batch of the actor update: forward with gradients, per-token loss
 * (policy + kl_coef*KL) scaled by inv_norm (= 1 / trainable tokens of the whole mini-batch),
 * model_backward accumulating into actor->grads. Stats are added to *st. */
int rl_actor_backward(model *actor, rl_sample *const *s, int32_t n, const rl_loss_config *c,
                      double inv_norm, rl_stats *st, mart_err *err);
/* The same for the critic's clipped value loss. */
int rl_critic_backward(model *critic, rl_sample *const *s, int32_t n, const rl_loss_config *c,
                       double inv_norm, rl_stats *st, mart_err *err);

/* ---- the trainer ------------------------------------------------------------------------ */

typedef enum { RL_ALGO_PPO = 0, RL_ALGO_GRPO = 1 } rl_algo;

typedef struct {
    const char *model_dir;   /* Hugging Face model directory (with tokenizer.json) */
    const mart_backend *backend; /* where the models live and compute (NULL = the CPU) */
    const char *data_path;   /* JSONL of problems */
    const char *out_dir;     /* RUN_DIR */
    const char *question_key, *answer_key;
    rl_algo algo;
    rl_group_mode group_mode;
    bool multi;              /* multi-attempt task; false = single (N = 1) */
    bool baseline_prompt;    /* single-turn with the plain Qwen math prompt */
    bool study_baseline;     /* the study's single-turn baseline (env_config.study_baseline;
                                implies !multi and baseline_prompt) */
    bool whiten;             /* whiten PPO advantages over the rollout batch (the reference) */
    bool micro_mean;         /* token mean per micro-batch, averaged over the mini-batch's
                                micro-batches (the reference); false = one token mean over
                                the whole mini-batch (mart: independent of the split) */
    double lr_horizon;       /* passes over the data the schedule is sized for
                                (RL_LR_HORIZON; 0 = this run's steps) */
    int32_t chunk;           /* box check every `chunk` sampled tokens (1 = every token; the
                                reference: 64) */
    bool value_head_zero;    /* the critic's value head starts at 0 (mart's old default);
                                false = normal, std 1/(hidden+1) (the reference) */
    bool repeat_question;    /* SPEC §1's "repeat question" prompt/feedback variant */
    double discount;         /* SPEC §2: a right answer earns discount^attempts_used (1) */
    int32_t steps;           /* rollout steps (0 = one pass over the data) */
    int32_t rollout_batch;   /* questions per step */
    int32_t n_samples;       /* episodes per question (GRPO group size) */
    int32_t mini_batch;      /* episodes per optimiser step */
    int32_t micro_batch;     /* episodes per forward/backward */
    int32_t epochs;          /* passes over a rollout batch */
    int32_t max_tokens;      /* sampled tokens per episode */
    int32_t max_prompt;      /* prompt tokens; longer questions are skipped */
    int32_t min_attempts, max_attempts;
    int32_t gen_batch;       /* sequences decoded together */
    int64_t kv_budget_mb;    /* KV-cache memory of the rollout engine (0 = gen's default) */
    float temperature;
    double actor_lr, critic_lr;
    double warmup_frac;      /* share of optimiser steps in linear warm-up (RL_WARMUP_FRAC) */
    rl_loss_config loss;
    float gamma, lambda;
    float max_grad_norm;
    float beta1, beta2, weight_decay;
    uint64_t seed;
    bool resume;
    int32_t save_every;      /* steps between checkpoints (0 = only at the end / on stop) */
    int32_t eval_every;      /* steps between evaluations (0 = none) */
    const char *eval_bench;  /* benchmark names, comma-separated */
    int32_t eval_attempts;   /* k: allowed attempts in the periodic evaluation */
    int32_t eval_limit;      /* first problems of each benchmark (0 = all) */
    int32_t eval_max_tokens; /* per episode; 3000 during training (SPEC §5) */
    int32_t stop_after;      /* tests: behave as if Ctrl-C came after this many steps (0 = off) */
    bool quiet;              /* no console lines */
} rl_config;

void rl_config_default(rl_config *c);

/* Runs (or with c->resume continues) a training run: writes RUN_DIR/metrics.jsonl,
 * RUN_DIR/checkpoint/ (every save_every steps and when a stop is requested) and RUN_DIR/final/
 * at the end. Returns MART_OK also when stopped early (checkpoint written). */
int rl_train(const rl_config *c, mart_err *err);

#endif
