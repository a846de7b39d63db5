/* mart pretrain: supervised training of a fresh model on worked solutions, the base model of
 * the demo. Builds the byte tokenizer (with BPE merges learned from the corpus), creates a
 * model of a built-in shape, and trains it on ChatML examples that use exactly the prompt of
 * the multi-attempt task (SPEC §1) with N drawn from 1..5, followed by the worked solution.
 *
 * Items with "attempts" (see `mart tasks --sft-retry-frac`) are multi-attempt transcripts of
 * an imperfect solver (include/mart/task.h): each wrong attempt is followed by the feedback
 * turn of SPEC §1 and the next attempt, which mostly repeats the wrong one. Only right
 * attempts and repeats are targets (a slip written from scratch is context, unless
 * --train-slips; task_attempt_is_target). The base model
 * thus learns the format of later turns, and under greedy decoding it mostly repeats itself:
 * it gains little from a second attempt (about 3 points in the demo, docs/DEMO.md) until RL
 * teaches it to, and the single-turn and multi-attempt runs start from this same base.
 * Feedback tokens, like the prompt, carry no loss. --repeat-question writes the prompt and
 * feedback turns of SPEC §1's "repeat question" variant.
 *
 * The loss is the mean -log p over response tokens only (the prompt is given, not learned),
 * optimised with AdamW, linear warmup then cosine decay, gradient clipping at norm 1. */
#include "cli/cli.h"
#include "mart/env.h"
#include "mart/model.h"
#include "mart/task.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRETRAIN_WARMUP_FRAC 0.05 /* linear warmup over the first 5% of steps */
#define PRETRAIN_MIN_LR_FRAC 0.1  /* cosine decays to 10% of the peak (as SPEC §3) */
#define PRETRAIN_CLIP 1.0f

typedef struct {
    char *problem, *solution;
    char **attempts;          /* (n_attempts) transcript attempts, or NULL */
    int32_t n_attempts, attempts_allowed;
    int32_t *resp;            /* (n_resp) everything after the prompt */
    uint8_t *learn;           /* (n_resp) 1 = model token (loss), 0 = feedback turn */
    int32_t n_resp;
} sft_example;

static void free_examples(sft_example *ex, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        free(ex[i].problem);
        free(ex[i].solution);
        for (int32_t a = 0; a < ex[i].n_attempts; a++) free(ex[i].attempts[a]);
        free(ex[i].attempts);
        free(ex[i].resp);
        free(ex[i].learn);
    }
    free(ex);
}

static int load_examples(const char *path, sft_example **out, int64_t *n_out, mart_err *err) {
    cJSON **objs;
    int64_t n;
    if (mart_jsonl_load(path, &objs, &n, err) != MART_OK) return MART_ERR;
    sft_example *ex = mart_xcalloc((size_t)(n ? n : 1), sizeof *ex);
    for (int64_t i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetObjectItem(objs[i], "problem");
        const cJSON *s = cJSON_GetObjectItem(objs[i], "solution");
        const cJSON *att = cJSON_GetObjectItem(objs[i], "attempts");
        const cJSON *allowed = cJSON_GetObjectItem(objs[i], "attempts_allowed");
        const char *bad = !cJSON_IsString(p) || !cJSON_IsString(s)
                              ? "needs string fields \"problem\" and \"solution\""
                          : att && (!cJSON_IsArray(att) || cJSON_GetArraySize(att) < 1 ||
                                    !cJSON_IsNumber(allowed) ||
                                    allowed->valueint < cJSON_GetArraySize(att))
                              ? "\"attempts\" must be a non-empty array of strings with "
                                "\"attempts_allowed\" >= its length"
                              : NULL;
        for (const cJSON *a = att ? att->child : NULL; a && !bad; a = a->next)
            if (!cJSON_IsString(a)) bad = "\"attempts\" must hold strings";
        if (bad) {
            free_examples(ex, i);
            mart_jsonl_free(objs, n);
            return mart_fail(err, "%s:%lld: %s", path, (long long)(i + 1), bad);
        }
        ex[i].problem = mart_xstrdup(p->valuestring);
        ex[i].solution = mart_xstrdup(s->valuestring);
        if (att) {
            ex[i].n_attempts = cJSON_GetArraySize(att);
            ex[i].attempts_allowed = allowed->valueint;
            ex[i].attempts = mart_xcalloc((size_t)ex[i].n_attempts, sizeof(char *));
            int32_t a = 0;
            for (const cJSON *x = att->child; x; x = x->next)
                ex[i].attempts[a++] = mart_xstrdup(x->valuestring);
        }
    }
    mart_jsonl_free(objs, n);
    if (n == 0) {
        free(ex);
        return mart_fail(err, "%s: no examples", path);
    }
    *out = ex;
    *n_out = n;
    return MART_OK;
}

/* Encodes what follows the prompt: the solution, or the transcript's attempts separated by
 * feedback turns (each attempt closed by the model's <|im_end|>), with the loss mask. */
static int build_response(sft_example *e, const tok_tokenizer *tok, const env_config *ecfg,
                          int32_t im_end, bool train_slips, mart_err *err) {
    int64_t n = 0;
    int32_t n_parts = e->n_attempts > 0 ? e->n_attempts : 1;
    for (int32_t a = 0; a < n_parts; a++) {
        const char *text = e->n_attempts > 0 ? e->attempts[a] : e->solution;
        int64_t start = n;
        if (tok_encode(tok, text, strlen(text), &e->resp, &n, err) != MART_OK) return MART_ERR;
        e->resp = mart_xrealloc(e->resp, (size_t)(n + 1) * sizeof(int32_t));
        e->resp[n++] = im_end;
        e->learn = mart_xrealloc(e->learn, (size_t)n);
        bool learn = e->n_attempts == 0 ||
                     task_attempt_is_target(e->solution, (const char *const *)e->attempts, a,
                                            train_slips);
        memset(e->learn + start, learn ? 1 : 0, (size_t)(n - start));
        if (a + 1 == n_parts) break;
        int32_t *fb = NULL, nfb = 0;
        if (env_build_feedback(tok, ecfg, e->problem, e->attempts_allowed - a - 1, true, &fb,
                               &nfb, err) != MART_OK)
            return MART_ERR;
        e->resp = mart_xrealloc(e->resp, (size_t)(n + nfb) * sizeof(int32_t));
        e->learn = mart_xrealloc(e->learn, (size_t)(n + nfb));
        memcpy(e->resp + n, fb, (size_t)nfb * sizeof(int32_t));
        memset(e->learn + n, 0, (size_t)nfb);
        n += nfb;
        free(fb);
    }
    e->n_resp = (int32_t)n;
    return MART_OK;
}

/* A byte tokenizer whose merges are learned on the pieces the model will read. The
 * environment encodes each turn's text ("system\n" + text, "user\n" + question, then the
 * response) separately between the special tokens, so the corpus holds exactly these pieces. */
static int build_tokenizer(const sft_example *ex, int64_t n_ex, const env_config *ecfg,
                           int32_t merges, tok_tokenizer **tok, mart_err *err) {
    int32_t span = ecfg->max_attempts - ecfg->min_attempts + 1;
    char **corpus = mart_xmalloc((size_t)(4 * n_ex) * sizeof *corpus);
    for (int64_t i = 0; i < n_ex; i++) {
        char *sys = env_system_text(ecfg, ecfg->min_attempts + (int32_t)(i % span));
        corpus[4 * i] = mart_xstrcat("system\n", sys);
        free(sys);
        corpus[4 * i + 1] = mart_xstrcat("user\n", ex[i].problem);
        corpus[4 * i + 2] = mart_xstrdup(ex[i].solution);
        if (ex[i].n_attempts > 1) {
            char *fb = env_feedback_text(ecfg, ex[i].attempts_allowed - 1);
            corpus[4 * i + 3] = mart_xstrcat("system\n", fb);
            free(fb);
        } else {
            corpus[4 * i + 3] = mart_xstrdup("");
        }
    }
    int rc = tok_build_bytes((const char *const *)corpus, 4 * n_ex, merges, tok, err);
    for (int64_t i = 0; i < 4 * n_ex; i++) free(corpus[i]);
    free(corpus);
    return rc;
}

static double lr_at(int64_t step, int64_t steps, double peak) {
    int64_t warm = (int64_t)(PRETRAIN_WARMUP_FRAC * (double)steps);
    if (warm < 1) warm = 1;
    if (step < warm) return peak * (double)(step + 1) / (double)warm;
    double t = (double)(step - warm) / (double)(steps - warm > 1 ? steps - warm : 1);
    double lo = PRETRAIN_MIN_LR_FRAC * peak;
    return lo + 0.5 * (peak - lo) * (1.0 + cos(M_PI * t));
}

int cmd_pretrain(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *config = NULL, *init = NULL;
    int64_t steps = 1200, seed = 0;
    int32_t batch = 32, seq_len = 512, merges = 512, min_att = 1, max_att = 5;
    float lr = 3e-3f, wd = 0.0f;
    bool repeat_question = false, train_slips = false;
    cli_opt opts[] = {
        {"data", CLI_STR, &data, "JSONL with fields problem and solution (e.g. sft.jsonl)"},
        {"out", CLI_STR, &out, "model folder to write (config.json, model.safetensors, "
                               "tokenizer.json, metrics.jsonl)"},
        {"config", CLI_STR, &config, "built-in model shape (tiny, small, 40m); default tiny"},
        {"init", CLI_STR, &init,
         "start from this model folder (weights and tokenizer.json) instead of a fresh "
         "model: supervised fine-tuning; --config and --merges do not apply"},
        {"steps", CLI_INT64, &steps, "optimiser steps"},
        {"batch", CLI_INT, &batch, "examples per step"},
        {"lr", CLI_FLOAT, &lr, "peak learning rate (warmup 5%, cosine to 10%)"},
        {"weight-decay", CLI_FLOAT, &wd, "AdamW decoupled weight decay"},
        {"seq-len", CLI_INT, &seq_len, "longest example in tokens (longer ones are skipped)"},
        {"merges", CLI_INT, &merges, "BPE merges learned for the byte tokenizer (fresh models)"},
        {"min-attempts", CLI_INT, &min_att, "smallest N written in the system prompt"},
        {"max-attempts", CLI_INT, &max_att, "largest N written in the system prompt"},
        {"seed", CLI_INT64, &seed, "random seed (initialisation, order, N)"},
        {"repeat-question", CLI_FLAG, &repeat_question,
         "the \"repeat question\" variant of SPEC §1 (prompt and feedback turns), as "
         "`mart train --repeat-question` uses it"},
        {"train-slips", CLI_FLAG, &train_slips,
         "every attempt of a transcript is a target, wrong ones written from scratch too (by "
         "default they are context: see docs/DEMO.md)"},
    };
    int rc = cli_parse("pretrain", "--data FILE.jsonl --out DIR [options]",
                       "Trains a fresh model from scratch (or fine-tunes --init DIR) on worked "
                       "solutions (supervised, loss on the response only) with the "
                       "multi-attempt prompt of SPEC §1, N drawn per example; writes a Hugging "
                       "Face model folder.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!data || !out) {
        mart_fail(&err, "--data FILE and --out DIR are required");
        return cli_error("pretrain", &err);
    }
    if (steps < 1 || batch < 1 || seq_len < 16 || merges < 0 || min_att < 1 || max_att < min_att) {
        mart_fail(&err, "need steps >= 1, batch >= 1, seq-len >= 16, merges >= 0, "
                        "1 <= min-attempts <= max-attempts");
        return cli_error("pretrain", &err);
    }
    if (init && config) {
        mart_fail(&err, "--init DIR and --config are exclusive (the model folder has its shape)");
        return cli_error("pretrain", &err);
    }
    if (!config) config = "tiny";
    double t0 = mart_now();
    sft_example *ex = NULL;
    int64_t n_ex = 0;
    if (load_examples(data, &ex, &n_ex, &err) != MART_OK) return cli_error("pretrain", &err);

    env_config ecfg;
    env_config_default(&ecfg);
    ecfg.min_attempts = min_att;
    ecfg.max_attempts = max_att;
    ecfg.repeat_question = repeat_question;
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    FILE *mf = NULL;
    int32_t *tokens = NULL, *offsets = NULL, *targets = NULL;
    float *logprobs = NULL, *dlp = NULL;
    int32_t *order = NULL;
    adamw_state opt = {0};
    char path[4096], *init_tok_json = NULL;
    size_t init_tok_len = 0;
    if (init) {
        rc = mart_read_file(mart_path_join(path, sizeof path, init, "tokenizer.json"),
                            &init_tok_json, &init_tok_len, &err);
        if (rc == MART_OK) rc = tok_load(path, &tok, &err);
        if (rc != MART_OK) goto done;
        fprintf(stderr, "mart pretrain: %lld examples, tokenizer of %d tokens from %s\n",
                (long long)n_ex, tok_vocab_size(tok), init);
    } else {
        rc = build_tokenizer(ex, n_ex, &ecfg, merges, &tok, &err);
        if (rc != MART_OK) goto done;
        fprintf(stderr, "mart pretrain: %lld examples, tokenizer of %d tokens (%d merges) built "
                        "in %.1fs\n", (long long)n_ex, tok_vocab_size(tok), merges,
                mart_now() - t0);
    }
    int32_t im_end = tok_special_id(tok, "<|im_end|>");
    if (im_end < 0) {
        rc = mart_fail(&err, "%s: the tokenizer has no <|im_end|> token (the chat format of "
                             "SPEC §1 needs it)", init ? init : "tokenizer");
        goto done;
    }
    for (int64_t i = 0; i < n_ex; i++)
        if ((rc = build_response(&ex[i], tok, &ecfg, im_end, train_slips, &err)) != MART_OK)
            goto done;

    if (init) {
        if ((rc = model_load(init, true, &m, &err)) != MART_OK) goto done;
        if (m->cfg.vocab_size < tok_vocab_size(tok)) {
            rc = mart_fail(&err, "%s: tokenizer.json has %d tokens but the model only %d", init,
                           tok_vocab_size(tok), m->cfg.vocab_size);
            goto done;
        }
        if (m->cfg.max_position_embeddings < seq_len) {
            rc = mart_fail(&err, "--seq-len %d exceeds the model's %d positions", seq_len,
                           m->cfg.max_position_embeddings);
            goto done;
        }
        config = init;
    } else {
        model_config cfg;
        if ((rc = model_config_builtin(config, &cfg, &err)) != MART_OK) goto done;
        cfg.vocab_size = tok_vocab_size(tok);
        cfg.eos_token_id = im_end;
        if (cfg.max_position_embeddings < seq_len) cfg.max_position_embeddings = seq_len;
        m = model_create(&cfg, false, true);
        model_init_random(m, (uint64_t)seed);
    }
    adamw_init(&opt, m->be, m->n_params);
    if ((rc = mart_mkdirs(out, &err)) != MART_OK) goto done;
    mf = fopen(mart_path_join(path, sizeof path, out, "metrics.jsonl"), "w");
    if (!mf) {
        rc = mart_fail(&err, "%s: cannot write", path);
        goto done;
    }
    fprintf(stderr, "mart pretrain: model %s, %.2fM parameters, %lld steps of %d examples\n",
            config, (double)m->n_params / 1e6, (long long)steps, batch);

    int64_t cap = (int64_t)batch * seq_len;
    tokens = mart_xmalloc((size_t)cap * sizeof(int32_t));
    targets = mart_xmalloc((size_t)cap * sizeof(int32_t));
    logprobs = mart_xmalloc((size_t)cap * sizeof(float));
    dlp = mart_xmalloc((size_t)cap * sizeof(float));
    offsets = mart_xmalloc((size_t)(batch + 1) * sizeof(int32_t));
    order = mart_xmalloc((size_t)n_ex * sizeof(int32_t));
    for (int64_t i = 0; i < n_ex; i++) order[i] = (int32_t)i;
    mart_rng rng;
    mart_rng_seed(&rng, (uint64_t)seed, 1);
    mart_rng_shuffle_i32(&rng, order, n_ex);
    int64_t cursor = 0, skipped = 0, total_tokens = 0;
    double ema = 0, t_train = mart_now();
    mart_progress bar;
    mart_progress_start(&bar, "pretrain", steps);
    for (int64_t step = 0; step < steps && !mart_stop_requested(); step++) {
        int32_t nseq = 0, ntok = 0, nresp = 0;
        while (nseq < batch) {
            if (cursor == n_ex) {
                mart_rng_shuffle_i32(&rng, order, n_ex);
                cursor = 0;
            }
            sft_example *e = &ex[order[cursor++]];
            int32_t *prompt = NULL, np = 0;
            int32_t att = env_draw_attempts(&ecfg, &rng);
            if (e->n_attempts > 0) att = e->attempts_allowed;
            if ((rc = env_build_prompt(tok, &ecfg, e->problem, att, &prompt, &np, &err)) !=
                MART_OK)
                goto done;
            int32_t len = np + e->n_resp;
            if (len > seq_len) {
                free(prompt);
                if (++skipped > n_ex) {
                    rc = mart_fail(&err, "every example is longer than --seq-len %d", seq_len);
                    goto done;
                }
                continue;
            }
            offsets[nseq] = ntok;
            memcpy(tokens + ntok, prompt, (size_t)np * sizeof(int32_t));
            memcpy(tokens + ntok + np, e->resp, (size_t)e->n_resp * sizeof(int32_t));
            free(prompt);
            /* position t predicts token t+1; the loss covers the response tokens only */
            for (int32_t t = 0; t < len; t++) {
                targets[ntok + t] = t + 1 < len ? tokens[ntok + t + 1] : -1;
                dlp[ntok + t] = (t + 1 >= np && t + 1 < len && e->learn[t + 1 - np]) ? 1.0f : 0.0f;
            }
            for (int32_t t = 0; t < e->n_resp; t++) nresp += e->learn[t];
            ntok += len;
            nseq++;
        }
        offsets[nseq] = ntok;
        for (int32_t t = 0; t < ntok; t++) dlp[t] *= -1.0f / (float)nresp;
        model_batch b = {.n_seqs = nseq, .tokens = tokens, .offsets = offsets, .slots = NULL};
        model_out o = {.targets = targets, .logprobs = logprobs};
        model_zero_grads(m);
        if ((rc = model_forward(m, &b, NULL, &o, true, &err)) != MART_OK) goto done;
        double loss = 0;
        for (int32_t t = 0; t < ntok; t++) loss += (double)dlp[t] * (double)logprobs[t];
        model_backward(m, dlp, NULL, NULL);
        float gnorm = model_clip_grad_norm(m, PRETRAIN_CLIP);
        adamw_config ac = {.lr = (float)lr_at(step, steps, lr), .beta1 = 0.9f, .beta2 = 0.95f,
                           .eps = 1e-8f, .weight_decay = wd};
        model_adamw_step(m, &opt, &ac);
        total_tokens += ntok;
        ema = step == 0 ? loss : 0.95 * ema + 0.05 * loss;
        double el = mart_now() - t_train;
        fprintf(mf, "{\"step\":%lld,\"loss\":%.5f,\"lr\":%.3g,\"grad_norm\":%.4f,"
                    "\"tokens\":%d,\"tokens_per_s\":%.0f,\"elapsed_s\":%.2f}\n",
                (long long)step + 1, loss, (double)ac.lr, (double)gnorm, ntok,
                (double)total_tokens / (el > 0 ? el : 1e-9), el);
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.3f  lr %.2g  %.0f tok/s", ema, (double)ac.lr,
                 (double)total_tokens / (el > 0 ? el : 1e-9));
        mart_progress_update(&bar, step + 1, extra);
    }
    mart_progress_finish(&bar);
    fclose(mf);
    mf = NULL;
    if ((rc = model_save(m, out, &err)) != MART_OK) goto done;
    /* a loaded tokenizer is passed on byte for byte */
    mart_path_join(path, sizeof path, out, "tokenizer.json");
    rc = init ? mart_write_file_atomic(path, init_tok_json, init_tok_len, &err)
              : tok_save(tok, path, &err);
    if (rc != MART_OK) goto done;
    fprintf(stderr, "mart pretrain: final loss %.3f (smoothed), wrote %s in %.1fs\n", ema, out,
            mart_now() - t0);
done:
    if (mf) fclose(mf);
    free_examples(ex, n_ex);
    free(init_tok_json);
    free(order), free(tokens), free(targets), free(logprobs), free(dlp), free(offsets);
    adamw_free(&opt);
    if (m) model_free(m);
    if (tok) tok_free(tok);
    return rc == MART_OK ? 0 : cli_error("pretrain", &err);
}
