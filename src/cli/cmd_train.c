/* mart train: RL training (PPO or GRPO) on the multi-attempt or the single-turn task. */
#include "cli/cli.h"

#include <string.h>

#include "mart/rl.h"

int cmd_train(int argc, char **argv) {
    rl_config c;
    rl_config_default(&c);
    const char *task = "multi", *algo = "ppo", *adv = "grpo";
    int64_t seed = 0;
    double kl = c.loss.kl_coef, temp = c.temperature, clip = c.loss.clip_eps;
    double vclip = c.loss.value_clip, lambda = c.lambda, gnorm = c.max_grad_norm;
    double wd = c.weight_decay, kl_clamp = c.loss.kl_clamp;
    const char *vh_init = "normal";
    bool no_whiten = false, reference_exact = false;
    cli_opt opts[] = {
        {"model", CLI_STR, &c.model_dir, "base model directory (config.json, safetensors, tokenizer.json)"},
        {"data", CLI_STR, &c.data_path, "training problems, JSONL"},
        {"out", CLI_STR, &c.out_dir, "run directory: metrics.jsonl, checkpoint/, final/"},
        {"task", CLI_STR, &task, "multi (N attempts drawn in [min, max]), single (the N = 1 control: the multi-attempt template with one attempt) or baseline (the study's single-turn baseline: plain Qwen prompt, no stop at the box, Qwen parser's fallbacks; SPEC §3)"},
        {"algo", CLI_STR, &algo, "ppo (actor, critic, reference) or grpo (no critic)"},
        {"advantage", CLI_STR, &adv, "GRPO baseline: grpo ((r-mean)/std) or rloo (leave one out)"},
        {"steps", CLI_INT, &c.steps, "rollout steps (0 = one pass over the data)"},
        {"rollout-batch", CLI_INT, &c.rollout_batch, "questions per step"},
        {"n-samples", CLI_INT, &c.n_samples, "episodes per question (GRPO group size; 8 for grpo when left at 1)"},
        {"mini-batch", CLI_INT, &c.mini_batch, "episodes per optimiser step"},
        {"micro-batch", CLI_INT, &c.micro_batch, "episodes per forward/backward (gradient accumulation)"},
        {"epochs", CLI_INT, &c.epochs, "update passes over each rollout batch"},
        {"max-tokens", CLI_INT, &c.max_tokens, "sampled tokens per episode, all attempts together"},
        {"max-prompt", CLI_INT, &c.max_prompt, "prompt tokens (sets the sequence room)"},
        {"min-attempts", CLI_INT, &c.min_attempts, "fewest attempts per question (--task multi)"},
        {"max-attempts", CLI_INT, &c.max_attempts, "most attempts per question (--task multi)"},
        {"baseline-prompt", CLI_FLAG, &c.baseline_prompt, "single: the plain Qwen math system prompt instead of the multi-attempt one with N = 1"},
        {"discount", CLI_DOUBLE, &c.discount, "a right answer earns discount^attempts_used (SPEC §2; 1 = no discount)"},
        {"repeat-question", CLI_FLAG, &c.repeat_question, "the \"repeat question\" variant of SPEC §1: the feedback turn is followed by the question again"},
        {"gen-batch", CLI_INT, &c.gen_batch, "sequences decoded together"},
        {"kv-budget-mb", CLI_INT64, &c.kv_budget_mb, "KV-cache memory of the rollout engine, MiB (0 = the engine's default, 4096)"},
        {"temperature", CLI_DOUBLE, &temp, "sampling temperature"},
        {"actor-lr", CLI_DOUBLE, &c.actor_lr, "actor peak learning rate (warm-up, then cosine to 10%)"},
        {"warmup", CLI_DOUBLE, &c.warmup_frac, "share of the schedule's optimiser steps in linear learning-rate warm-up (SPEC: 0.03)"},
        {"lr-horizon", CLI_DOUBLE, &c.lr_horizon, "passes over the data the learning-rate schedule is sized for, whatever --steps is (the reference: 160); 0 = this run's steps (decay to 10% by the end)"},
        {"no-whiten", CLI_FLAG, &no_whiten, "PPO: keep raw GAE advantages (the reference whitens them over the rollout batch)"},
        {"chunk", CLI_INT, &c.chunk, "check for a boxed answer every N sampled tokens (1: every token, mart; 64: the reference)"},
        {"micro-mean", CLI_FLAG, &c.micro_mean, "token mean per micro-batch, averaged over micro-batches (the reference) instead of one mean over the mini-batch"},
        {"value-head-init", CLI_STR, &vh_init, "PPO critic's value head: normal (std 1/(hidden+1), the reference) or zero"},
        {"kl-clamp", CLI_DOUBLE, &kl_clamp, "clamp |logp_ref - logp| in the k3 KL at this value, zero gradient beyond (0 = no clamp, the reference)"},
        {"reference-exact", CLI_FLAG, &reference_exact, "the study's configuration exactly: --chunk 64 --micro-mean (the other defaults already are the reference's)"},
        {"critic-lr", CLI_DOUBLE, &c.critic_lr, "critic peak learning rate"},
        {"kl-coef", CLI_DOUBLE, &kl, "weight of the k3 KL to the reference, in the loss (0 = no reference model)"},
        {"clip", CLI_DOUBLE, &clip, "PPO ratio clip"},
        {"value-clip", CLI_DOUBLE, &vclip, "value clip around the old values"},
        {"lambda", CLI_DOUBLE, &lambda, "GAE lambda (gamma is 1)"},
        {"max-grad-norm", CLI_DOUBLE, &gnorm, "gradient clipping (global L2 norm)"},
        {"weight-decay", CLI_DOUBLE, &wd, "AdamW weight decay"},
        {"seed", CLI_INT64, &seed, "seed of every random draw"},
        {"resume", CLI_FLAG, &c.resume, "continue from RUN_DIR/checkpoint"},
        {"save-every", CLI_INT, &c.save_every, "steps between checkpoints (0 = at the end only)"},
        {"question-key", CLI_STR, &c.question_key, "JSONL field of the question"},
        {"answer-key", CLI_STR, &c.answer_key, "JSONL field of the gold answer"},
        {"eval-every", CLI_INT, &c.eval_every, "steps between evaluations (0 = none; needs --eval-bench)"},
        {"eval-bench", CLI_STR, &c.eval_bench, "benchmarks (names or .jsonl paths), comma-separated"},
        {"eval-attempts", CLI_INT, &c.eval_attempts, "attempts allowed in evaluation"},
        {"eval-limit", CLI_INT, &c.eval_limit, "first problems of each benchmark (0 = all)"},
        {"eval-max-tokens", CLI_INT, &c.eval_max_tokens, "generated tokens per evaluation episode"},
        {"quiet", CLI_FLAG, &c.quiet, "no progress bar or per-step line"},
    };
    int rc = cli_parse("train", "--model DIR --data FILE.jsonl --out RUN_DIR [options]",
                       "Reinforcement learning on the multi-attempt task (PPO or GRPO), with the "
                       "study's settings as defaults. Writes RUN_DIR/metrics.jsonl (one line per "
                       "step), RUN_DIR/checkpoint/ (every --save-every steps and on Ctrl-C) and "
                       "RUN_DIR/final/. Batch sizes count episodes, except --rollout-batch "
                       "(questions; episodes = questions x --n-samples).",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!c.model_dir || !c.data_path || !c.out_dir) {
        mart_fail(&err, "--model, --data and --out are required (see mart train --help)");
        return cli_error("train", &err);
    }
    if (!strcmp(task, "multi")) c.multi = true;
    else if (!strcmp(task, "single")) c.multi = false;
    else if (!strcmp(task, "baseline")) c.multi = false, c.study_baseline = true;
    else return cli_error("train", (mart_fail(&err, "--task: 'multi', 'single' or 'baseline', not '%s'", task), &err));
    if (!strcmp(vh_init, "normal")) c.value_head_zero = false;
    else if (!strcmp(vh_init, "zero")) c.value_head_zero = true;
    else return cli_error("train", (mart_fail(&err, "--value-head-init: 'normal' or 'zero', not '%s'", vh_init), &err));
    c.whiten = !no_whiten;
    if (reference_exact) {
        c.chunk = RL_CHUNK_REFERENCE;
        c.micro_mean = true;
    }
    if (!strcmp(algo, "ppo")) c.algo = RL_ALGO_PPO;
    else if (!strcmp(algo, "grpo")) c.algo = RL_ALGO_GRPO;
    else return cli_error("train", (mart_fail(&err, "--algo: 'ppo' or 'grpo', not '%s'", algo), &err));
    if (!strcmp(adv, "grpo")) c.group_mode = RL_GROUP_GRPO;
    else if (!strcmp(adv, "rloo")) c.group_mode = RL_GROUP_RLOO;
    else return cli_error("train", (mart_fail(&err, "--advantage: 'grpo' or 'rloo', not '%s'", adv), &err));
    if (c.algo == RL_ALGO_GRPO && c.n_samples == 1) c.n_samples = 8;
    if (c.eval_every > 0 && !c.eval_bench) {
        mart_fail(&err, "--eval-every needs --eval-bench");
        return cli_error("train", &err);
    }
    c.seed = (uint64_t)seed;
    c.temperature = (float)temp;
    c.loss.temperature = (float)temp;
    c.loss.kl_coef = (float)kl;
    c.loss.kl_clamp = (float)kl_clamp;
    c.loss.clip_eps = (float)clip;
    c.loss.value_clip = (float)vclip;
    c.lambda = (float)lambda;
    c.max_grad_norm = (float)gnorm;
    c.weight_decay = (float)wd;
    if (rl_train(&c, &err) != MART_OK) return cli_error("train", &err);
    return cli_stop_status(); /* stopped by a signal: the checkpoint is written, not final/ */
}
