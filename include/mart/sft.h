/* sft: supervised training on worked solutions, the base model of the demo and an SFT warm
 * start for real ones. Builds (or loads) the tokenizer, creates (or loads) the model, and
 * trains it on ChatML examples written with exactly the prompt of the multi-attempt task
 * (SPEC §1) with N drawn per example, the loss on the response tokens only. Shares the
 * learning-rate schedule and the clip-then-AdamW step with the RL trainer (mart/model.h)
 * and its checkpoints (mart/ckpt.h): atomic, resumed bit for bit, written on Ctrl-C. */
#ifndef MART_SFT_H
#define MART_SFT_H

#include "mart/backend.h"
#include "mart/core.h"

#define SFT_WARMUP_FRAC 0.05 /* linear warm-up over the first 5% of the steps */
#define SFT_MIN_LR_RATIO 0.1 /* cosine decays to 10% of the peak (as SPEC §3) */
#define SFT_MAX_GRAD_NORM 1.0f
#define SFT_BETA1 0.9f
#define SFT_BETA2 0.95f

typedef struct {
    const char *data_path;   /* JSONL: problem, solution (and optionally attempts,
                                attempts_allowed: a multi-attempt transcript, mart/task.h) */
    const char *out_dir;     /* model folder written at the end; metrics.jsonl, checkpoint/ */
    const char *config;      /* built-in shape of a fresh model ("tiny") */
    const char *init_dir;    /* fine-tune this model folder instead (NULL = fresh model); its
                                tokenizer.json is passed on byte for byte */
    const mart_backend *backend; /* where the model lives and computes (NULL = the CPU) */
    int64_t steps;           /* optimiser steps */
    int32_t batch;           /* examples per step */
    int32_t seq_len;         /* longest example in tokens; longer ones are left out up front */
    int32_t merges;          /* BPE merges of a fresh byte tokenizer */
    int32_t min_attempts, max_attempts; /* N written in the system prompt */
    double lr, weight_decay;
    uint64_t seed;
    bool repeat_question;    /* SPEC §1's "repeat question" variant */
    bool train_slips;        /* every transcript attempt is a target (task_attempt_is_target) */
    bool resume;             /* continue from OUT/checkpoint */
    int32_t save_every;      /* steps between checkpoints (0 = only on a stop) */
    int32_t stop_after;      /* tests: behave as if Ctrl-C came after this many steps (0 = off) */
    bool quiet;              /* no progress bar or console lines */
} sft_config;

void sft_config_default(sft_config *c);

/* Runs (or with c->resume continues) a supervised run. Writes OUT/metrics.jsonl (one line a
 * step), OUT/checkpoint/ every save_every steps and when a stop is requested (SIGINT/SIGTERM:
 * the checkpoint of the last finished step, then MART_OK with *stopped set), and at the end
 * the model folder OUT (config.json, model.safetensors, tokenizer.json; the checkpoint is then
 * removed). A resumed run gives the same bytes as an uninterrupted one. Errors: bad data
 * (file:line), a folder that already holds a run without --resume, a non-finite loss. */
int sft_train(const sft_config *c, bool *stopped, mart_err *err);

#endif
