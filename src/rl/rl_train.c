/* rl: the training run (see include/mart/rl.h and docs/RL.md): rollouts through the
 * multi-attempt environment, scoring, advantages, mini-/micro-batched PPO or GRPO updates,
 * metrics, checkpoints and exact resume.
 *
 * Every random draw of step s (question order aside) comes from generators seeded by
 * (seed, s): attempts, the sampling streams, the mini-batch shuffles. The question order
 * is a permutation seeded by (seed, data epoch). So the state to resume from is just the
 * step, the data position, the weights and the optimiser moments. */
#include "mart/rl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mart/ckpt.h"
#include "mart/eval.h"
#include "mart/safetensors.h"

/* RNG stream ids: disjoint ranges per purpose. */
#define STREAM_DATA_ORDER 0x100000000ULL /* + data epoch */
#define STREAM_STEP 0x200000000ULL       /* + step: attempt counts */
#define STREAM_SHUFFLE 0x300000000ULL    /* + step: mini-batch shuffles */
#define STREAM_SAMPLING_SHIFT 36         /* sampling stream base: (step + 1) << 36 */
#define STREAM_VALUE_HEAD 0x400000000ULL /* the critic's value head initialisation */

#define ADAM_EPS 1e-8f

void rl_config_default(rl_config *c) {
    memset(c, 0, sizeof *c);
    c->question_key = "problem";
    c->answer_key = "answer";
    c->algo = RL_ALGO_PPO;
    c->group_mode = RL_GROUP_GRPO;
    c->multi = true;
    c->steps = 0;
    c->rollout_batch = 1024; /* SPEC §3 */
    c->n_samples = 1;
    c->mini_batch = 128;
    c->micro_batch = 8;
    c->epochs = 1;
    c->max_tokens = 3000;
    c->max_prompt = 1024;
    c->min_attempts = 1;
    c->max_attempts = 5;
    c->gen_batch = 64;
    c->temperature = 1.0f;
    c->actor_lr = RL_ACTOR_LR;
    c->critic_lr = RL_CRITIC_LR;
    rl_loss_config_default(&c->loss);
    c->gamma = RL_GAMMA;
    c->lambda = RL_LAMBDA;
    c->max_grad_norm = RL_MAX_GRAD_NORM;
    c->beta1 = RL_BETA1;
    c->beta2 = RL_BETA2;
    c->warmup_frac = RL_WARMUP_FRAC;
    c->whiten = true;
    c->micro_mean = false;
    c->lr_horizon = RL_LR_HORIZON;
    c->chunk = 1;
    c->value_head_zero = false;
    c->discount = 1.0;
    c->weight_decay = 0.0f;
    c->seed = 0;
    c->save_every = 50;
    c->eval_attempts = 1;
    c->eval_max_tokens = 3000;
}

typedef struct {
    rl_config c;
    tok_tokenizer *tok;
    model *actor, *critic, *ref;
    mart_dtype base_dtype;
    adamw_state opt_actor, opt_critic;
    env_config env;
    char **questions, **golds;
    int32_t n_problems;
    int32_t *order;        /* (n_problems) question order of the current data epoch */
    int64_t data_pos;      /* next index into order */
    int64_t data_epoch;
    int32_t step;          /* rollout steps done */
    int64_t opt_step;      /* optimiser steps done */
    int64_t total_opt_steps;
    int32_t feedback_room; /* tokens a feedback turn may need */
} trainer;

/* What one step measured (one metrics.jsonl line). */
typedef struct {
    double reward_mean, accuracy, attempts_success, attempts_failure, response_length;
    double policy_loss, value_loss, kl, entropy, clip_frac, grad_norm, critic_grad_norm, lr;
    double rollout_tok_s, train_tok_s, score_tok_s, gen_s, score_s, update_s, ratio_dev0;
    double eval_accuracy, eval_s; /* eval_s < 0: no evaluation at this step */
    int64_t sampled_tokens, train_tokens;
} step_metrics;

/* ---- data ---- */

static int load_data(trainer *t, mart_err *err) {
    cJSON **objs = NULL;
    int64_t n = 0;
    if (mart_jsonl_load(t->c.data_path, &objs, &n, err) != MART_OK) return MART_ERR;
    if (n == 0) {
        mart_jsonl_free(objs, n);
        return mart_fail(err, "%s: no problems", t->c.data_path);
    }
    t->questions = mart_xcalloc((size_t)n, sizeof(char *));
    t->golds = mart_xcalloc((size_t)n, sizeof(char *));
    t->n_problems = (int32_t)n;
    for (int64_t i = 0; i < n; i++) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(objs[i], t->c.question_key);
        if (!cJSON_IsString(q)) {
            mart_jsonl_free(objs, n);
            return mart_fail(err, "%s:%lld: field '%s' missing or not a string", t->c.data_path,
                             (long long)i + 1, t->c.question_key);
        }
        t->questions[i] = mart_xstrdup(q->valuestring);
        if (grade_gold_answer(objs[i], NULL, t->c.answer_key, &t->golds[i], err) != MART_OK) {
            mart_jsonl_free(objs, n);
            return mart_fail_wrap(err, "%s:%lld", t->c.data_path, (long long)i + 1);
        }
    }
    mart_jsonl_free(objs, n);
    return MART_OK;
}

static void shuffle_order(trainer *t) {
    mart_rng r;
    mart_rng_seed(&r, t->c.seed, STREAM_DATA_ORDER + (uint64_t)t->data_epoch);
    for (int32_t i = 0; i < t->n_problems; i++) t->order[i] = i;
    mart_rng_shuffle_i32(&r, t->order, t->n_problems);
}

static int32_t next_question(trainer *t) {
    if (t->data_pos >= t->n_problems) {
        t->data_epoch++;
        t->data_pos = 0;
        shuffle_order(t);
    }
    return t->order[t->data_pos++];
}

/* ---- checkpoints ---- */

static void copy_if_exists(const char *src_dir, const char *dst_dir, const char *name) {
    char src[4096], dst[4096];
    mart_path_join(src, sizeof src, src_dir, name);
    mart_path_join(dst, sizeof dst, dst_dir, name);
    char *data = NULL;
    size_t len = 0;
    mart_err e;
    if (!mart_path_exists(src) || mart_read_file(src, &data, &len, &e) != MART_OK) return;
    mart_write_file_atomic(dst, data, len, &e);
    free(data);
}

static int save_optimizer(const trainer *t, const char *path, mart_err *err) {
    const adamw_state *opts[2] = {&t->opt_actor, &t->opt_critic};
    const char *names[2] = {"actor", "critic"};
    return ckpt_save_moments(path, opts, names, t->critic ? 2 : 1, err);
}

static int load_optimizer(trainer *t, const char *path, mart_err *err) {
    adamw_state *opts[2] = {&t->opt_actor, &t->opt_critic};
    const char *names[2] = {"actor", "critic"};
    return ckpt_load_moments(path, opts, names, t->critic ? 2 : 1, err);
}

static const char *task_name(const rl_config *c) {
    return c->multi ? "multi" : c->study_baseline ? "baseline" : "single";
}

static cJSON *state_json(const trainer *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", t->step);
    cJSON_AddNumberToObject(o, "opt_step", (double)t->opt_step);
    cJSON_AddNumberToObject(o, "data_pos", (double)t->data_pos);
    cJSON_AddNumberToObject(o, "data_epoch", (double)t->data_epoch);
    cJSON_AddNumberToObject(o, "n_problems", t->n_problems);
    /* Seeds as strings: a JSON number cannot carry all 64 bits. */
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->c.seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "rng", "every draw of step s is seeded by (seed, s); the question "
                                      "order by (seed, data_epoch)");
    cJSON_AddNumberToObject(o, "adam_step_actor", (double)t->opt_actor.step);
    cJSON_AddNumberToObject(o, "adam_step_critic", t->critic ? (double)t->opt_critic.step : 0);
    cJSON_AddStringToObject(o, "algo", t->c.algo == RL_ALGO_PPO ? "ppo" : "grpo");
    cJSON_AddStringToObject(o, "task", task_name(&t->c));
    /* the method's settings a resume must keep (the schedule, the advantages, the losses) */
    cJSON *m = cJSON_AddObjectToObject(o, "method");
    cJSON_AddNumberToObject(m, "lr_horizon", t->c.lr_horizon);
    cJSON_AddNumberToObject(m, "warmup", t->c.warmup_frac);
    cJSON_AddBoolToObject(m, "whiten", t->c.whiten);
    cJSON_AddBoolToObject(m, "micro_mean", t->c.micro_mean);
    cJSON_AddNumberToObject(m, "chunk", t->c.chunk);
    cJSON_AddNumberToObject(m, "kl_clamp", t->c.loss.kl_clamp);
    cJSON_AddBoolToObject(o, "repeat_question", t->env.repeat_question);
    cJSON_AddNumberToObject(o, "discount", t->env.discount);
    cJSON_AddStringToObject(o, "base_model", t->c.model_dir);
    return o;
}

/* Writes RUN_DIR/<name>/ by building it in a temporary directory and swapping it in.
 * full: with critic, optimiser and state (checkpoint/), weights in F32 so that a resume is
 * exact; otherwise the actor alone in the base model's dtype (final/). */
static int save_run_dir(trainer *t, const char *name, bool full, mart_err *err) {
    char dst[4096], tmp[4096], sub[4096];
    mart_path_join(dst, sizeof dst, t->c.out_dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", t->c.out_dir, name);
    if (mart_path_exists(tmp) && mart_remove_tree(tmp, err) != MART_OK) return MART_ERR;
    if (mart_mkdirs(tmp, err) != MART_OK) return MART_ERR;
    int rc = ckpt_save_model(t->actor, tmp, full ? MART_DTYPE_F32 : t->base_dtype, err);
    if (rc == MART_OK) rc = tok_save(t->tok, mart_path_join(sub, sizeof sub, tmp, "tokenizer.json"), err);
    if (rc == MART_OK) {
        copy_if_exists(t->c.model_dir, tmp, "tokenizer_config.json");
        copy_if_exists(t->c.model_dir, tmp, "generation_config.json");
        copy_if_exists(t->c.model_dir, tmp, "special_tokens_map.json");
    }
    if (rc == MART_OK && full && t->critic)
        rc = ckpt_save_model(t->critic, mart_path_join(sub, sizeof sub, tmp, "critic"),
                           MART_DTYPE_F32, err);
    if (rc == MART_OK && full)
        rc = save_optimizer(t, mart_path_join(sub, sizeof sub, tmp, "optimizer.safetensors"), err);
    if (rc == MART_OK && full) {
        cJSON *o = state_json(t);
        rc = ckpt_write_json(mart_path_join(sub, sizeof sub, tmp, "state.json"), o, err);
        cJSON_Delete(o);
    }
    if (rc == MART_OK) rc = ckpt_commit(tmp, dst, err);
    if (rc != MART_OK) return mart_fail_wrap(err, "writing %s", dst);
    return MART_OK;
}

static int load_state(trainer *t, const char *ckpt, mart_err *err) {
    char path[4096];
    mart_path_join(path, sizeof path, ckpt, "state.json");
    cJSON *o;
    if (ckpt_read_json(path, &o, err) != MART_OK) return MART_ERR;
    int64_t step = 0, opt_step = 0, pos = 0, epoch = 0, n = 0, sa = 0, sc = 0;
    const int64_t big = (int64_t)1 << 40;
    int rc = MART_OK;
    /* Every field within what the data and the run allow: a tampered file is an error, never
     * an index out of bounds. */
    if (ckpt_json_int(o, "n_problems", t->n_problems, t->n_problems, &n, path, err) ||
        ckpt_json_int(o, "step", 0, INT32_MAX - 1, &step, path, err) ||
        ckpt_json_int(o, "opt_step", 0, big, &opt_step, path, err) ||
        ckpt_json_int(o, "data_pos", 0, t->n_problems, &pos, path, err) ||
        ckpt_json_int(o, "data_epoch", 0, big, &epoch, path, err) ||
        ckpt_json_int(o, "adam_step_actor", 0, big, &sa, path, err) ||
        ckpt_json_int(o, "adam_step_critic", 0, big, &sc, path, err))
        rc = MART_ERR;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (rc == MART_OK && (!cJSON_IsString(seed) ||
                          strtoull(seed->valuestring, NULL, 10) != (unsigned long long)t->c.seed))
        rc = mart_fail(err, "%s: the run was started with another --seed (%s)", path,
                       cJSON_IsString(seed) ? seed->valuestring : "?");
    /* the same task and prompts: a checkpoint from before repeat_question was recorded had
     * the default prompts */
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(o, "repeat_question");
    const char *want = task_name(&t->c);
    if (rc == MART_OK && (!cJSON_IsString(task) || strcmp(task->valuestring, want)))
        rc = mart_fail(err, "%s: the run was started with another --task (%s)", path,
                       cJSON_IsString(task) ? task->valuestring : "?");
    if (rc == MART_OK && cJSON_IsTrue(rq) != t->c.repeat_question)
        rc = mart_fail(err, "%s: the run was started %s --repeat-question", path,
                       cJSON_IsTrue(rq) ? "with" : "without");
    /* the same rewards (a checkpoint from before discount was recorded had no discount) */
    const cJSON *disc = cJSON_GetObjectItemCaseSensitive(o, "discount");
    double was_discount = cJSON_IsNumber(disc) ? disc->valuedouble : 1.0;
    if (rc == MART_OK && was_discount != t->c.discount)
        rc = mart_fail(err, "%s: the run was started with --discount %g", path, was_discount);
    /* the same method (a checkpoint from before these were recorded has no "method") */
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(o, "method");
    if (rc == MART_OK && method) {
        const struct {
            const char *key, *option;
            double now;
        } keep[] = {
            {"lr_horizon", "--lr-horizon", t->c.lr_horizon},
            {"warmup", "--warmup", t->c.warmup_frac},
            {"whiten", "--no-whiten", t->c.whiten},
            {"micro_mean", "--micro-mean", t->c.micro_mean},
            {"chunk", "--chunk", t->c.chunk},
            {"kl_clamp", "--kl-clamp", (double)t->c.loss.kl_clamp},
        };
        for (size_t i = 0; i < sizeof keep / sizeof keep[0] && rc == MART_OK; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(method, keep[i].key);
            double was = cJSON_IsBool(v) ? (double)cJSON_IsTrue(v)
                         : cJSON_IsNumber(v) ? v->valuedouble
                                             : NAN;
            if (was != keep[i].now)
                rc = mart_fail(err, "%s: the run was started with another %s (%s %g, now %g)",
                               path, keep[i].option, keep[i].key, was, keep[i].now);
        }
    }
    cJSON_Delete(o);
    if (rc != MART_OK) return MART_ERR;
    t->step = (int32_t)step;
    t->opt_step = opt_step;
    t->data_pos = pos;
    t->data_epoch = epoch;
    t->opt_actor.step = sa;
    t->opt_critic.step = sc;
    return MART_OK;
}

/* ---- set-up ---- */

/* The critic's value head as the reference starts it: normal, std 1/(hidden+1), from a
 * stream of its own. */
static void init_value_head(model *critic, uint64_t seed) {
    int64_t d = critic->cfg.hidden_size;
    float *w = mart_xmalloc((size_t)d * sizeof(float));
    mart_rng r;
    mart_rng_seed(&r, seed, STREAM_VALUE_HEAD);
    for (int64_t j = 0; j < d; j++)
        w[j] = mart_rng_normal(&r) / (float)(d + 1);
    critic->be->upload(critic->be, critic->value_head, w, d);
    free(w);
}

static int setup(trainer *t, mart_err *err) {
    const rl_config *c = &t->c;
    if (c->rollout_batch < 1 || c->n_samples < 1 || c->mini_batch < 1 || c->micro_batch < 1 ||
        c->epochs < 1 || c->max_tokens < 1)
        return mart_fail(err, "batch sizes, epochs and --max-tokens must be positive");
    if (c->algo == RL_ALGO_GRPO && c->n_samples < 2)
        return mart_fail(err, "GRPO needs --n-samples >= 2 (advantages are relative to the "
                              "other samples of the question)");
    if (c->repeat_question && c->baseline_prompt)
        return mart_fail(err, "--repeat-question and --baseline-prompt are two different prompts: "
                              "choose one");
    if (!(c->discount > 0.0 && c->discount <= 1.0))
        return mart_fail(err, "--discount must be in (0, 1]");
    if (!(c->warmup_frac >= 0.0 && c->warmup_frac < 1.0))
        return mart_fail(err, "--warmup must be in [0, 1)");
    if (c->min_attempts < 1 || c->max_attempts < c->min_attempts)
        return mart_fail(err, "attempts: need 1 <= --min-attempts <= --max-attempts");
    if (!(c->actor_lr >= 0.0 && c->actor_lr < 1.0) || !(c->critic_lr >= 0.0 && c->critic_lr < 1.0))
        return mart_fail(err, "--actor-lr and --critic-lr must be finite, in [0, 1)");
    if (!(c->temperature > 0.0f && c->temperature <= 100.0f) ||
        !(c->loss.kl_coef >= 0.0f && c->loss.kl_coef <= 1e3f) ||
        !(c->loss.clip_eps > 0.0f && c->loss.clip_eps < 1.0f) ||
        !(c->loss.value_clip > 0.0f && c->loss.value_clip <= 1e3f) ||
        !(c->lambda >= 0.0f && c->lambda <= 1.0f) || !(c->max_grad_norm >= 0.0f) ||
        !isfinite(c->max_grad_norm) || !(c->weight_decay >= 0.0f && c->weight_decay < 1.0f))
        return mart_fail(err, "--temperature (0, 100], --kl-coef [0, 1000], --clip (0, 1), "
                              "--value-clip (0, 1000], --lambda [0, 1], --max-grad-norm >= 0 and "
                              "--weight-decay [0, 1) must be finite numbers in those ranges");
    if (!(c->lr_horizon >= 0.0 && c->lr_horizon <= 1e6))
        return mart_fail(err, "--lr-horizon must be in [0, 1e6] passes over the data");
    if (c->chunk < 1) return mart_fail(err, "--chunk must be at least 1");
    if (!(c->loss.kl_clamp >= 0.0f)) return mart_fail(err, "--kl-clamp must be >= 0");
    if (c->study_baseline && (c->multi || c->repeat_question))
        return mart_fail(err, "the study's baseline task is single-turn with the plain prompt");
    if (load_data(t, err) != MART_OK) return MART_ERR;
    if (tok_load(c->model_dir, &t->tok, err) != MART_OK) return MART_ERR;
    env_config_default(&t->env);
    t->env.max_tokens = c->max_tokens;
    t->env.min_attempts = c->multi ? c->min_attempts : 1;
    t->env.max_attempts = c->multi ? c->max_attempts : 1;
    t->env.baseline_prompt = !c->multi && (c->baseline_prompt || c->study_baseline);
    t->env.study_baseline = c->study_baseline;
    t->env.chunk = c->chunk;
    t->env.repeat_question = c->repeat_question;
    t->env.discount = c->discount;
    /* Questions whose prompt (with the most attempts' digit) exceeds --max-prompt are
     * dropped here, once, so that the data order and a resume do not depend on it. */
    uint8_t *fits = mart_xmalloc((size_t)t->n_problems);
    for (int32_t i = 0; i < t->n_problems; i++) {
        int32_t *ids = NULL, nids = 0;
        if (env_build_prompt(t->tok, &t->env, t->questions[i], t->env.max_attempts, &ids, &nids,
                             err) != MART_OK) {
            free(fits);
            return mart_fail_wrap(err, "%s:%d", c->data_path, i + 1);
        }
        free(ids);
        fits[i] = nids <= c->max_prompt;
    }
    int32_t kept = 0;
    for (int32_t i = 0; i < t->n_problems; i++) {
        if (!fits[i]) {
            free(t->questions[i]);
            free(t->golds[i]);
            continue;
        }
        t->questions[kept] = t->questions[i];
        t->golds[kept++] = t->golds[i];
    }
    free(fits);
    if (kept < t->n_problems && !c->quiet)
        fprintf(stderr, "mart train: %d of %d problems have prompts over %d tokens; skipped\n",
                t->n_problems - kept, t->n_problems, c->max_prompt);
    t->n_problems = kept;
    if (kept == 0) return mart_fail(err, "%s: no problem fits --max-prompt %d", c->data_path,
                                    c->max_prompt);
    if (env_feedback_room(t->tok, &t->env, (const char *const *)t->questions, kept,
                          &t->feedback_room, err) != MART_OK)
        return MART_ERR;
    t->order = mart_xmalloc((size_t)t->n_problems * sizeof(int32_t));
    char ckpt[4096];
    mart_path_join(ckpt, sizeof ckpt, c->out_dir, "checkpoint");
    bool have_ckpt = c->resume ? ckpt_recover(c->out_dir, "checkpoint") : mart_is_dir(ckpt);
    if (ckpt_check_fresh_start(c->out_dir, c->resume, have_ckpt, c->save_every, "training",
                               err) != MART_OK)
        return MART_ERR;
    bool resuming = c->resume && have_ckpt;
    if (c->resume && !resuming && !c->quiet)
        fprintf(stderr, "mart train: no checkpoint in %s, starting from the base model\n",
                c->out_dir);
    model *base = NULL;
    const mart_backend *be = c->backend ? c->backend : mart_backend_cpu();
    if (model_load_on(be, c->model_dir, !resuming, &base, err) != MART_OK) return MART_ERR;
    t->base_dtype = base->cfg.dtype;
    bool need_ref = c->loss.kl_coef != 0.0f;
    if (resuming) {
        if (model_load_on(be, ckpt, true, &t->actor, err) != MART_OK) {
            model_free(base);
            return mart_fail_wrap(err, "resuming from %s", ckpt);
        }
        if (need_ref) t->ref = base;
        else model_free(base);
        if (c->algo == RL_ALGO_PPO) {
            char cdir[4096];
            if (model_load_on(be, mart_path_join(cdir, sizeof cdir, ckpt, "critic"), true,
                              &t->critic, err) != MART_OK)
                return mart_fail_wrap(err, "resuming from %s", ckpt);
        }
    } else {
        t->actor = base;
        if (need_ref) t->ref = model_clone(base, false, false);
        if (c->algo == RL_ALGO_PPO) {
            t->critic = model_clone(base, true, true);
            if (!c->value_head_zero) init_value_head(t->critic, c->seed);
        }
    }
    if (t->actor->has_value_head) model_set_value_head(t->actor, false);
    adamw_init(&t->opt_actor, t->actor->be, t->actor->n_params);
    if (t->critic) adamw_init(&t->opt_critic, t->critic->be, t->critic->n_params);
    if (resuming) {
        char p[4096];
        if (load_optimizer(t, mart_path_join(p, sizeof p, ckpt, "optimizer.safetensors"), err) !=
                MART_OK ||
            load_state(t, ckpt, err) != MART_OK)
            return mart_fail_wrap(err, "resuming from %s", ckpt);
    }
    shuffle_order(t);

    t->total_opt_steps = rl_schedule_steps(c->lr_horizon, t->n_problems, c->steps,
                                           c->rollout_batch, c->n_samples, c->mini_batch,
                                           c->epochs);
    return MART_OK;
}

static void trainer_free(trainer *t) {
    for (int32_t i = 0; i < t->n_problems; i++) {
        free(t->questions[i]);
        free(t->golds[i]);
    }
    free(t->questions);
    free(t->golds);
    free(t->order);
    if (t->actor) adamw_free(&t->opt_actor);
    if (t->critic) adamw_free(&t->opt_critic);
    model_free(t->actor);
    model_free(t->critic);
    model_free(t->ref);
    tok_free(t->tok);
}

/* ---- one step ---- */

static int optimizer_step(trainer *t, model *m, adamw_state *s, double peak, double *norm,
                          mart_err *err) {
    adamw_config ac = {.lr = (float)adamw_lr_at(t->opt_step, t->total_opt_steps, peak,
                                                t->c.warmup_frac, RL_MIN_LR_RATIO),
                       .beta1 = t->c.beta1, .beta2 = t->c.beta2, .eps = ADAM_EPS,
                       .weight_decay = t->c.weight_decay};
    *norm = model_optimizer_step(m, s, &ac, t->c.max_grad_norm);
    /* a non-finite gradient would have made every weight NaN: nothing was updated */
    if (!isfinite(*norm))
        return mart_fail(err, "%s gradient norm is %g (a non-finite loss); weights left as they "
                              "were after the previous step",
                         m == t->actor ? "actor" : "critic", *norm);
    return MART_OK;
}

/* Builds advantages (and returns for PPO) of every sample. */
static void compute_advantages(trainer *t, rl_sample *s, int32_t n) {
    if (t->c.algo == RL_ALGO_PPO) {
        for (int32_t k = 0; k < n; k++) {
            rl_sample *x = &s[k];
            float *r = mart_xcalloc((size_t)x->n_tokens, sizeof(float));
            for (int32_t i = x->n_tokens - 1; i >= 0; i--)
                if (x->trainable[i]) {
                    r[i] = x->reward; /* SPEC §2: on the last token the model generated */
                    break;
                }
            rl_gae(x->n_tokens, x->trainable, r, x->old_values, t->c.gamma, t->c.lambda,
                   x->advantages, x->returns);
            free(r);
        }
        /* Whitened over the whole rollout batch; the returns keep the raw advantages. */
        if (t->c.whiten) {
            rl_moments mo = {0};
            for (int32_t k = 0; k < n; k++)
                rl_moments_add_sum(&mo, s[k].advantages, s[k].trainable, s[k].n_tokens);
            if (mo.count == 0) return;
            double mean = mo.sum / mo.count;
            for (int32_t k = 0; k < n; k++)
                rl_moments_add_dev(&mo, s[k].advantages, s[k].trainable, s[k].n_tokens, mean);
            double scale = rl_whiten_scale(mo.dev / mo.count);
            for (int32_t k = 0; k < n; k++)
                rl_whiten(s[k].advantages, s[k].trainable, s[k].n_tokens, mean, scale);
        }
        return;
    }
    int32_t g = t->c.n_samples;
    float *rw = mart_xmalloc((size_t)n * sizeof(float)), *adv = mart_xmalloc((size_t)n * sizeof(float));
    for (int32_t k = 0; k < n; k++) rw[k] = s[k].reward;
    rl_group_advantages(rw, n / g, g, t->c.group_mode, adv);
    for (int32_t k = 0; k < n; k++)
        for (int32_t i = 0; i < s[k].n_tokens; i++)
            s[k].advantages[i] = s[k].trainable[i] ? adv[k] : 0.0f;
    free(rw);
    free(adv);
}

static int update(trainer *t, rl_sample *s, int32_t n, step_metrics *m, mart_err *err) {
    const rl_config *c = &t->c;
    mart_rng r;
    mart_rng_seed(&r, c->seed, STREAM_SHUFFLE + (uint64_t)t->step);
    int32_t *idx = mart_xmalloc((size_t)n * sizeof(int32_t));
    rl_sample **mb = mart_xmalloc((size_t)n * sizeof(rl_sample *));
    rl_stats st = {0};
    double gn_sum = 0, cgn_sum = 0;
    int64_t n_opt = 0;
    int rc = MART_OK;
    bool first = true;
    for (int32_t ep = 0; ep < c->epochs && rc == MART_OK; ep++) {
        for (int32_t i = 0; i < n; i++) idx[i] = i;
        mart_rng_shuffle_i32(&r, idx, n);
        for (int32_t b0 = 0; b0 < n && rc == MART_OK; b0 += c->mini_batch) {
            int32_t nb = n - b0 < c->mini_batch ? n - b0 : c->mini_batch;
            /* The normaliser first: every micro-batch is scaled by 1 / (trainable tokens of
             * the whole mini-batch), so the gradient does not depend on the split. */
            int64_t n_tok = 0;
            for (int32_t k = 0; k < nb; k++) {
                mb[k] = &s[idx[b0 + k]];
                n_tok += mb[k]->n_trainable;
            }
            if (n_tok == 0) continue;
            double inv = 1.0 / (double)n_tok;
            int32_t n_micro = (nb + c->micro_batch - 1) / c->micro_batch;
            model_zero_grads(t->actor);
            if (t->critic) model_zero_grads(t->critic);
            rl_stats mst = {0};
            for (int32_t u0 = 0; u0 < nb && rc == MART_OK; u0 += c->micro_batch) {
                int32_t nu = nb - u0 < c->micro_batch ? nb - u0 : c->micro_batch;
                if (c->micro_mean) {
                    /* the reference: each micro-batch's token mean, averaged over them */
                    int64_t nt_u = 0;
                    for (int32_t k = 0; k < nu; k++)
                        nt_u += mb[u0 + k]->n_trainable;
                    inv = nt_u ? 1.0 / ((double)nt_u * (double)n_micro) : 0.0;
                }
                rc = rl_actor_backward(t->actor, mb + u0, nu, &c->loss, inv, &mst, err);
                if (rc == MART_OK && t->critic)
                    rc = rl_critic_backward(t->critic, mb + u0, nu, &c->loss, inv, &mst, err);
            }
            if (rc != MART_OK) break;
            if (first) m->ratio_dev0 = mst.max_ratio_dev;
            first = false;
            double gn, cgn = 0;
            rc = optimizer_step(t, t->actor, &t->opt_actor, c->actor_lr, &gn, err);
            if (rc == MART_OK && t->critic)
                rc = optimizer_step(t, t->critic, &t->opt_critic, c->critic_lr, &cgn, err);
            if (rc != MART_OK) break;
            m->lr = adamw_lr_at(t->opt_step, t->total_opt_steps, c->actor_lr, c->warmup_frac,
                             RL_MIN_LR_RATIO);
            t->opt_step++;
            n_opt++;
            gn_sum += gn;
            cgn_sum += cgn;
            st.n_tokens += mst.n_tokens;
            st.policy_loss += mst.policy_loss;
            st.kl += mst.kl;
            st.entropy += mst.entropy;
            st.clip_frac += mst.clip_frac;
            st.value_loss += mst.value_loss;
        }
    }
    free(idx);
    free(mb);
    if (rc != MART_OK) return MART_ERR;
    double nt = st.n_tokens > 0 ? st.n_tokens : 1;
    m->policy_loss = st.policy_loss / nt;
    m->kl = st.kl / nt;
    m->entropy = st.entropy / nt;
    m->clip_frac = st.clip_frac / nt;
    m->value_loss = st.value_loss / nt;
    m->grad_norm = n_opt ? gn_sum / (double)n_opt : 0;
    m->critic_grad_norm = n_opt ? cgn_sum / (double)n_opt : 0;
    return MART_OK;
}

static int train_step(trainer *t, step_metrics *m, mart_err *err) {
    const rl_config *c = &t->c;
    memset(m, 0, sizeof *m);
    m->eval_s = -1;
    int32_t nq = c->rollout_batch, g = c->n_samples, n = nq * g;
    mart_rng r;
    mart_rng_seed(&r, c->seed, STREAM_STEP + (uint64_t)t->step);
    env_problem *probs = mart_xmalloc((size_t)n * sizeof(env_problem));
    int32_t *att = mart_xmalloc((size_t)n * sizeof(int32_t));
    for (int32_t q = 0; q < nq; q++) {
        int32_t qi = next_question(t);
        /* multi: N uniform in [min, max]; single: exactly 1 (the env config says which) */
        int32_t a = env_draw_attempts(&t->env, &r);
        for (int32_t j = 0; j < g; j++) {
            probs[q * g + j] = (env_problem){t->questions[qi], t->golds[qi]};
            att[q * g + j] = a;
        }
    }
    /* Generation: the engine reads the actor's current weights; made per step so that any
     * state it derives from the weights is fresh. */
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = c->gen_batch < n ? c->gen_batch : n;
    if (c->kv_budget_mb > 0) gc.kv_budget_mb = c->kv_budget_mb;
    gc.max_len = c->max_prompt + c->max_tokens + (t->env.max_attempts - 1) * t->feedback_room;
    /* exact products: the sampler's log-probs are then the training forward's, and PPO's
     * ratio starts at 1 even from a BF16 checkpoint (SPEC, "where mart does better") */
    gc.bf16_products = false;
    gen_engine *gen = NULL;
    env_episode *eps = mart_xcalloc((size_t)n, sizeof *eps);
    rl_sample *s = mart_xcalloc((size_t)n, sizeof *s);
    double t0 = mart_now();
    int rc = gen_create(t->actor, &gc, &gen, err);
    if (rc == MART_OK) {
        gen_params gp;
        gen_params_default(&gp);
        gp.temperature = c->temperature;
        gp.top_p = 1.0f;
        gp.seed = c->seed;
        rc = env_run(gen, t->tok, &t->env, probs, att, n, &gp,
                     (uint64_t)(t->step + 1) << STREAM_SAMPLING_SHIFT,
                     c->quiet ? NULL : "rollout", eps, err);
        gen_free(gen);
    }
    m->gen_s = mart_now() - t0;
    free(probs);
    free(att);
    if (rc != MART_OK) {
        free(eps);
        free(s);
        return mart_fail_wrap(err, "step %d: rollout", t->step + 1);
    }
    int64_t n_ok = 0, att_ok = 0, att_bad = 0, all_tokens = 0;
    for (int32_t k = 0; k < n; k++) {
        m->reward_mean += eps[k].reward;
        m->response_length += eps[k].n_sampled;
        m->sampled_tokens += eps[k].n_sampled;
        if (eps[k].correct) {
            n_ok++;
            att_ok += eps[k].n_attempts;
        } else {
            att_bad += eps[k].n_attempts;
        }
        rl_sample_from_episode(&s[k], &eps[k]);
        all_tokens += s[k].n_tokens;
        env_episode_free(&eps[k]);
    }
    free(eps);
    m->reward_mean /= n;
    m->response_length /= n;
    m->accuracy = (double)n_ok / n;
    m->attempts_success = n_ok ? (double)att_ok / (double)n_ok : 0;
    m->attempts_failure = n - n_ok ? (double)att_bad / (double)(n - n_ok) : 0;
    m->rollout_tok_s = m->gen_s > 0 ? (double)m->sampled_tokens / m->gen_s : 0;

    /* Scoring: reference log-probs for the KL term, critic values for GAE. The old log-probs
     * are the engine's sampling log-probs (rl_sample_from_episode). */
    t0 = mart_now();
    rl_sample **ps = mart_xmalloc((size_t)n * sizeof(rl_sample *));
    float **lp = mart_xmalloc((size_t)n * sizeof(float *));
    float **vals = mart_xmalloc((size_t)n * sizeof(float *));
    for (int32_t k = 0; k < n; k++) {
        ps[k] = &s[k];
        lp[k] = s[k].ref_logprobs;
        vals[k] = s[k].old_values;
    }
    if (t->ref)
        rc = rl_score(t->ref, ps, n, c->micro_batch, c->loss.temperature, lp, NULL, err);
    if (rc == MART_OK && t->critic)
        rc = rl_score(t->critic, ps, n, c->micro_batch, c->loss.temperature, NULL, vals, err);
    m->score_s = mart_now() - t0;
    int n_scorers = (t->ref != NULL) + (t->critic != NULL);
    m->score_tok_s = m->score_s > 0 ? (double)(all_tokens * n_scorers) / m->score_s : 0;
    free(lp);
    free(vals);
    free(ps);
    if (rc == MART_OK) {
        compute_advantages(t, s, n);
        t0 = mart_now();
        rc = update(t, s, n, m, err);
        m->update_s = mart_now() - t0;
        m->train_tokens = all_tokens * c->epochs;
        m->train_tok_s = m->update_s > 0 ? (double)m->train_tokens / m->update_s : 0;
    }
    for (int32_t k = 0; k < n; k++) rl_sample_free(&s[k]);
    free(s);
    if (rc != MART_OK) return mart_fail_wrap(err, "step %d", t->step + 1);
    t->step++;
    return MART_OK;
}

static void write_metrics(const trainer *t, const step_metrics *m, FILE *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", t->step);
    const struct {
        const char *k;
        double v;
    } kv[] = {
        {"reward_mean", m->reward_mean},       {"accuracy", m->accuracy},
        {"attempts_success", m->attempts_success}, {"attempts_failure", m->attempts_failure},
        {"response_length", m->response_length}, {"policy_loss", m->policy_loss},
        {"value_loss", m->value_loss},         {"kl", m->kl},
        {"entropy", m->entropy},               {"clip_frac", m->clip_frac},
        {"grad_norm", m->grad_norm},           {"critic_grad_norm", m->critic_grad_norm},
        {"lr", m->lr},                         {"rollout_tok_s", m->rollout_tok_s},
        {"train_tok_s", m->train_tok_s},       {"score_tok_s", m->score_tok_s},
        {"gen_s", m->gen_s},                   {"score_s", m->score_s},
        {"update_s", m->update_s},             {"ratio_dev0", m->ratio_dev0},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        cJSON_AddNumberToObject(o, kv[i].k, isfinite(kv[i].v) ? kv[i].v : 0.0);
    if (m->eval_s >= 0) {
        cJSON_AddNumberToObject(o, "eval_accuracy", m->eval_accuracy);
        cJSON_AddNumberToObject(o, "eval_s", m->eval_s);
    }
    mart_json_print_line(f, o);
    fflush(f);
    cJSON_Delete(o);
}

/* Periodic evaluation of the actor through the evaluation harness (greedy, k attempts);
 * transcripts and results go to RUN_DIR/eval/step_<N>/. */
static int evaluate(trainer *t, step_metrics *m, mart_err *err) {
    const rl_config *c = &t->c;
    char *names = mart_xstrdup(c->eval_bench);
    const char *list[32];
    int32_t nb = 0;
    for (char *save = NULL, *tk = strtok_r(names, ",", &save); tk && nb < 32;
         tk = strtok_r(NULL, ",", &save))
        list[nb++] = tk;
    eval_config ec;
    eval_config_default(&ec);
    ec.benches = list;
    ec.n_benches = nb;
    int32_t k = c->eval_attempts;
    ec.ks = &k;
    ec.n_ks = 1;
    ec.limit = c->eval_limit;
    ec.env.max_tokens = c->eval_max_tokens;
    ec.env.baseline_prompt = t->env.baseline_prompt;
    ec.env.repeat_question = t->env.repeat_question;
    ec.progress = !c->quiet;
    ec.quiet = true;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/eval/step_%d", c->out_dir, t->step);
    eval_results res = {0};
    double t0 = mart_now();
    int rc = eval_run(t->actor, t->tok, &ec, dir, &res, err);
    m->eval_s = mart_now() - t0;
    if (rc == MART_OK) m->eval_accuracy = res.average[0];
    eval_results_free(&res);
    free(names);
    return rc == MART_OK ? MART_OK : mart_fail_wrap(err, "evaluation after step %d", t->step);
}

int rl_train(const rl_config *cfg, mart_err *err) {
    trainer t = {0};
    t.c = *cfg;
    if (mart_mkdirs(cfg->out_dir, err) != MART_OK) return MART_ERR;
    int lock = -1;
    if (ckpt_lock(cfg->out_dir, &lock, err) != MART_OK) return MART_ERR;
    int rc = setup(&t, err);
    if (rc == MART_OK && t.c.steps <= 0) {
        t.c.steps = (t.n_problems + t.c.rollout_batch - 1) / t.c.rollout_batch;
        t.total_opt_steps = rl_schedule_steps(t.c.lr_horizon, t.n_problems, t.c.steps,
                                              t.c.rollout_batch, t.c.n_samples, t.c.mini_batch,
                                              t.c.epochs);
    }
    char mpath[4096];
    mart_path_join(mpath, sizeof mpath, cfg->out_dir, "metrics.jsonl");
    FILE *mf = NULL;
    if (rc == MART_OK && t.step > 0) rc = ckpt_trim_metrics(mpath, t.step, err);
    if (rc == MART_OK) {
        mf = fopen(mpath, t.step > 0 ? "a" : "w");
        if (!mf) rc = mart_fail(err, "%s: cannot open for writing", mpath);
    }
    if (rc == MART_OK) mart_install_stop_handler();
    bool stopped = false;
    int32_t saved_at = -1;
    while (rc == MART_OK && t.step < t.c.steps) {
        step_metrics m;
        rc = train_step(&t, &m, err);
        if (rc == MART_OK && cfg->eval_every > 0 && cfg->eval_bench &&
            t.step % cfg->eval_every == 0)
            rc = evaluate(&t, &m, err);
        if (rc != MART_OK) break;
        write_metrics(&t, &m, mf);
        if (!cfg->quiet)
            fprintf(stderr,
                    "step %d/%d | reward %+.3f acc %.1f%% | len %.0f | pl %+.4f vl %.4f kl %.4f "
                    "ent %.3f clip %.3f | gn %.3f lr %.2e | gen %.1fs (%.0f tok/s) score %.1fs "
                    "upd %.1fs (%.0f tok/s)",
                    t.step, t.c.steps, m.reward_mean, 100 * m.accuracy, m.response_length,
                    m.policy_loss, m.value_loss, m.kl, m.entropy, m.clip_frac, m.grad_norm, m.lr,
                    m.gen_s, m.rollout_tok_s, m.score_s, m.update_s, m.train_tok_s);
        if (!cfg->quiet && m.eval_s >= 0)
            fprintf(stderr, " | eval %.1f%% (%d att., %.0fs)", 100 * m.eval_accuracy,
                    cfg->eval_attempts, m.eval_s);
        if (!cfg->quiet) fputc('\n', stderr);
        stopped = mart_stop_requested() || (cfg->stop_after > 0 && t.step >= cfg->stop_after);
        bool save = stopped || (cfg->save_every > 0 && t.step % cfg->save_every == 0);
        if (save) {
            rc = save_run_dir(&t, "checkpoint", true, err);
            saved_at = t.step;
        }
        if (stopped) {
            if (!cfg->quiet && rc == MART_OK)
                fprintf(stderr, "mart train: stopped after step %d; checkpoint written, "
                                "continue with --resume\n", t.step);
            break;
        }
    }
    if (mf) fclose(mf);
    if (rc == MART_OK && !stopped) {
        if (saved_at != t.step) rc = save_run_dir(&t, "checkpoint", true, err);
        if (rc == MART_OK) rc = save_run_dir(&t, "final", false, err);
    }
    trainer_free(&t);
    ckpt_unlock(lock);
    return rc;
}
