/* sft: supervised training (see mart/sft.h).
 *
 * Items with "attempts" (see `mart tasks --sft-retry-frac`) are multi-attempt transcripts of
 * an imperfect solver (mart/task.h): each wrong attempt is followed by the feedback turn of
 * SPEC §1 and the next attempt, which mostly repeats the wrong one. Only right attempts and
 * repeats are targets (a slip written from scratch is context, unless train_slips;
 * task_attempt_is_target). The base model thus learns the format of later turns, and under
 * greedy decoding it mostly repeats itself: it gains little from a second attempt until RL
 * teaches it to. Feedback tokens, like the prompt, carry no loss.
 *
 * The loss is the mean -log p over the response tokens of a step. Randomness is stateless:
 * epoch e visits the examples in a permutation seeded by (seed, e), and step s draws the
 * attempts N of its examples from a generator seeded by (seed, s), so a checkpoint holds only
 * counters and a resumed run repeats the uninterrupted one exactly. */
#include "mart/sft.h"
#include "mart/ckpt.h"
#include "mart/env.h"
#include "mart/model.h"
#include "mart/task.h"
#include "mart/tok.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_ORDER 0x100000000ULL /* + epoch: the order of the examples */
#define STREAM_STEP 0x200000000ULL  /* + step: the attempts N of the step's examples */
#define ADAM_EPS 1e-8f

void sft_config_default(sft_config *c) {
    memset(c, 0, sizeof *c);
    c->config = NULL; /* "tiny" for a fresh model */
    c->steps = 1200;
    c->batch = 32;
    c->seq_len = 512;
    c->merges = 512;
    c->min_attempts = 1;
    c->max_attempts = 5;
    c->lr = 3e-3;
    c->save_every = 0;
}

/* ---- examples ---- */

typedef struct {
    char *problem, *solution;
    char **attempts; /* (n_attempts) transcript attempts, or NULL */
    int32_t n_attempts, attempts_allowed;
    int32_t *resp;   /* (n_resp) everything after the prompt */
    uint8_t *learn;  /* (n_resp) 1 = model token (loss), 0 = feedback turn */
    int32_t n_resp;
} sft_example;

/* Frees what the n examples own (not the array). */
static void clear_examples(sft_example *ex, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        free(ex[i].problem);
        free(ex[i].solution);
        for (int32_t a = 0; a < ex[i].n_attempts; a++)
            free(ex[i].attempts[a]);
        free(ex[i].attempts);
        free(ex[i].resp);
        free(ex[i].learn);
    }
}

static void free_examples(sft_example *ex, int64_t n) {
    clear_examples(ex, n);
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
                                    allowed->valueint < cJSON_GetArraySize(att) ||
                                    allowed->valueint > 99)
                              ? "\"attempts\" must be a non-empty array of strings with "
                                "\"attempts_allowed\" >= its length (at most 99)"
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
    if (n > INT32_MAX / 2) return mart_fail(err, "an example of %lld tokens", (long long)n);
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
    for (int64_t i = 0; i < 4 * n_ex; i++)
        free(corpus[i]);
    free(corpus);
    return rc;
}

/* ---- the run ---- */

typedef struct {
    sft_config c;
    env_config ecfg;
    sft_example *ex;
    int64_t n_ex;          /* examples that fit seq_len (the others are freed up front) */
    tok_tokenizer *tok;
    char *tok_json;        /* the --init folder's tokenizer.json, passed on byte for byte */
    size_t tok_json_len;
    model *m;
    adamw_state opt;
    int32_t *order;        /* (n_ex) this epoch's permutation */
    int64_t step, epoch, cursor;
    bool finished; /* --resume of a run that had already ended */
    /* the packed batch */
    int32_t *tokens, *targets, *offsets;
    float *logprobs, *dlp;
} run;

static void shuffle_order(run *r) {
    for (int64_t i = 0; i < r->n_ex; i++)
        r->order[i] = (int32_t)i;
    mart_rng g;
    mart_rng_seed(&g, r->c.seed, STREAM_ORDER + (uint64_t)r->epoch);
    mart_rng_shuffle_i32(&g, r->order, r->n_ex);
}

static void checkpoint_dir(const run *r, char *buf, size_t cap) {
    mart_path_join(buf, cap, r->c.out_dir, "checkpoint");
}

static int save_checkpoint(run *r, mart_err *err) {
    char tmp[4096], dst[4096], p[4200];
    checkpoint_dir(r, dst, sizeof dst);
    snprintf(tmp, sizeof tmp, "%s/.checkpoint.tmp", r->c.out_dir);
    if (mart_path_exists(tmp) && mart_remove_tree(tmp, err) != MART_OK) return MART_ERR;
    int rc = ckpt_save_model(r->m, tmp, MART_DTYPE_F32, err);
    if (rc == MART_OK) rc = tok_save(r->tok, mart_path_join(p, sizeof p, tmp, "tokenizer.json"), err);
    const adamw_state *opts[1] = {&r->opt};
    const char *names[1] = {"model"};
    if (rc == MART_OK)
        rc = ckpt_save_moments(mart_path_join(p, sizeof p, tmp, "optimizer.safetensors"), opts,
                               names, 1, err);
    if (rc == MART_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)r->step);
        cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
        cJSON_AddNumberToObject(o, "cursor", (double)r->cursor);
        cJSON_AddNumberToObject(o, "n_examples", (double)r->n_ex);
        cJSON_AddNumberToObject(o, "adam_step", (double)r->opt.step);
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->c.seed);
        cJSON_AddStringToObject(o, "seed", seed);
        cJSON_AddNumberToObject(o, "steps", (double)r->c.steps);
        rc = ckpt_write_json(mart_path_join(p, sizeof p, tmp, "state.json"), o, err);
        cJSON_Delete(o);
    }
    if (rc == MART_OK) rc = ckpt_commit(tmp, dst, err);
    return rc == MART_OK ? MART_OK : mart_fail_wrap(err, "writing %s", dst);
}

/* The backend the run's model lives on. */
static const mart_backend *run_backend(const run *r) {
    return r->c.backend ? r->c.backend : mart_backend_cpu();
}

static int load_checkpoint(run *r, const char *dir, mart_err *err) {
    char p[4200];
    if (model_load_on(run_backend(r), dir, true, &r->m, err) != MART_OK) return MART_ERR;
    cJSON *o;
    if (ckpt_read_json(mart_path_join(p, sizeof p, dir, "state.json"), &o, err) != MART_OK)
        return MART_ERR;
    int64_t n = 0, step = 0, epoch = 0, cursor = 0, adam = 0, steps = 0;
    const int64_t big = (int64_t)1 << 40;
    int rc = MART_OK;
    if (ckpt_json_int(o, "n_examples", r->n_ex, r->n_ex, &n, p, err) ||
        ckpt_json_int(o, "steps", r->c.steps, r->c.steps, &steps, p, err) ||
        ckpt_json_int(o, "step", 0, r->c.steps, &step, p, err) ||
        ckpt_json_int(o, "epoch", 0, big, &epoch, p, err) ||
        ckpt_json_int(o, "cursor", 0, r->n_ex, &cursor, p, err) ||
        ckpt_json_int(o, "adam_step", 0, big, &adam, p, err))
        rc = mart_fail_wrap(err, "the run was started with other data or --steps");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (rc == MART_OK && (!cJSON_IsString(seed) ||
                          strtoull(seed->valuestring, NULL, 10) != (unsigned long long)r->c.seed))
        rc = mart_fail(err, "%s: the run was started with another --seed", p);
    cJSON_Delete(o);
    if (rc != MART_OK) return MART_ERR;
    adamw_init(&r->opt, r->m->be, r->m->n_params);
    adamw_state *opts[1] = {&r->opt};
    const char *names[1] = {"model"};
    if (ckpt_load_moments(mart_path_join(p, sizeof p, dir, "optimizer.safetensors"), opts, names,
                          1, err) != MART_OK)
        return MART_ERR;
    r->opt.step = adam;
    r->step = step;
    r->epoch = epoch;
    r->cursor = cursor;
    return MART_OK;
}

/* Examples, tokenizer, model and optimiser, fresh or from the checkpoint. */
static int setup(run *r, mart_err *err) {
    const sft_config *c = &r->c;
    if (c->steps < 1 || c->batch < 1 || c->seq_len < 16 || c->merges < 0 ||
        c->min_attempts < 1 || c->max_attempts < c->min_attempts || c->max_attempts > 99)
        return mart_fail(err, "need steps >= 1, batch >= 1, seq-len >= 16, merges >= 0, "
                              "1 <= min-attempts <= max-attempts <= 99");
    if (!(c->lr >= 0.0 && c->lr < 10.0) || !(c->weight_decay >= 0.0 && c->weight_decay < 1.0))
        return mart_fail(err, "--lr must be a finite number in [0, 10) and --weight-decay in "
                              "[0, 1)");
    if ((int64_t)c->batch * c->seq_len > ((int64_t)1 << 28))
        return mart_fail(err, "--batch %d x --seq-len %d tokens a step is more than this trainer "
                              "holds (2^28)", c->batch, c->seq_len);
    char ckpt[4096], p[4200];
    checkpoint_dir(r, ckpt, sizeof ckpt);
    bool have = c->resume ? ckpt_recover(c->out_dir, "checkpoint") : mart_is_dir(ckpt);
    /* Finished already (the final model written, its checkpoint removed): nothing to do. */
    if (c->resume && !have && mart_path_exists(mart_path_join(p, sizeof p, c->out_dir,
                                                              "model.safetensors")) &&
        ckpt_last_step(c->out_dir) >= c->steps) {
        r->finished = true;
        return MART_OK;
    }
    if (ckpt_check_fresh_start(c->out_dir, c->resume, have, c->save_every, "pretraining", err) !=
        MART_OK)
        return MART_ERR;
    if (load_examples(c->data_path, &r->ex, &r->n_ex, err) != MART_OK) return MART_ERR;
    env_config_default(&r->ecfg);
    r->ecfg.min_attempts = c->min_attempts;
    r->ecfg.max_attempts = c->max_attempts;
    r->ecfg.repeat_question = c->repeat_question;
    if (c->init_dir) {
        if (mart_read_file(mart_path_join(p, sizeof p, c->init_dir, "tokenizer.json"),
                           &r->tok_json, &r->tok_json_len, err) != MART_OK)
            return MART_ERR;
    }
    /* The tokenizer: the checkpoint's when resuming (the same bytes), else --init's, else
     * one built on the data. */
    if (have && c->resume) {
        if (tok_load(mart_path_join(p, sizeof p, ckpt, "tokenizer.json"), &r->tok, err) != MART_OK)
            return MART_ERR;
    } else if (c->init_dir) {
        if (tok_load(mart_path_join(p, sizeof p, c->init_dir, "tokenizer.json"), &r->tok, err) !=
            MART_OK)
            return MART_ERR;
    } else {
        double t0 = mart_now();
        if (build_tokenizer(r->ex, r->n_ex, &r->ecfg, c->merges, &r->tok, err) != MART_OK)
            return MART_ERR;
        if (!c->quiet)
            fprintf(stderr, "mart pretrain: tokenizer of %d tokens (%d merges) built in %.1fs\n",
                    tok_vocab_size(r->tok), c->merges, mart_now() - t0);
    }
    int32_t im_end = tok_special_id(r->tok, "<|im_end|>");
    if (im_end < 0)
        return mart_fail(err, "%s: the tokenizer has no <|im_end|> token (the chat format of "
                              "SPEC §1 needs it)", c->init_dir ? c->init_dir : "tokenizer");
    /* Encode every example once; those that cannot fit seq_len with the most attempts' prompt
     * are left out here, so that the data order does not depend on them. */
    int64_t kept = 0;
    for (int64_t i = 0; i < r->n_ex; i++) {
        sft_example *e = &r->ex[i];
        if (build_response(e, r->tok, &r->ecfg, im_end, c->train_slips, err) != MART_OK)
            return mart_fail_wrap(err, "%s:%lld", c->data_path, (long long)(i + 1));
        int32_t *prompt = NULL, np = 0;
        int32_t att = e->n_attempts > 0 ? e->attempts_allowed : c->max_attempts;
        if (env_build_prompt(r->tok, &r->ecfg, e->problem, att, &prompt, &np, err) != MART_OK)
            return mart_fail_wrap(err, "%s:%lld", c->data_path, (long long)(i + 1));
        free(prompt);
        if ((int64_t)np + e->n_resp <= c->seq_len) {
            sft_example tmp = r->ex[kept];
            r->ex[kept++] = *e;
            *e = tmp;
        }
    }
    if (kept == 0)
        return mart_fail(err, "%s: every example is longer than --seq-len %d", c->data_path,
                         c->seq_len);
    clear_examples(r->ex + kept, r->n_ex - kept);
    r->ex = mart_xrealloc(r->ex, (size_t)kept * sizeof *r->ex);
    if (kept < r->n_ex && !c->quiet)
        fprintf(stderr, "mart pretrain: %lld of %lld examples are longer than --seq-len %d; "
                        "left out\n", (long long)(r->n_ex - kept), (long long)r->n_ex, c->seq_len);
    r->n_ex = kept;

    if (have && c->resume) {
        if (load_checkpoint(r, ckpt, err) != MART_OK) return mart_fail_wrap(err, "resuming from %s", ckpt);
    } else {
        if (c->init_dir) {
            if (model_load_on(run_backend(r), c->init_dir, true, &r->m, err) != MART_OK)
                return MART_ERR;
            if (r->m->cfg.vocab_size < tok_vocab_size(r->tok))
                return mart_fail(err, "%s: tokenizer.json has %d tokens but the model only %d",
                                 c->init_dir, tok_vocab_size(r->tok), r->m->cfg.vocab_size);
        } else {
            model_config cfg;
            if (model_config_builtin(c->config, &cfg, err) != MART_OK) return MART_ERR;
            cfg.vocab_size = tok_vocab_size(r->tok);
            cfg.eos_token_id = im_end;
            if (cfg.max_position_embeddings < c->seq_len) cfg.max_position_embeddings = c->seq_len;
            r->m = model_create_on(run_backend(r), &cfg, false, true);
            model_init_random(r->m, c->seed);
        }
        adamw_init(&r->opt, r->m->be, r->m->n_params);
    }
    if (r->m->cfg.max_position_embeddings < c->seq_len)
        return mart_fail(err, "--seq-len %d exceeds the model's %d positions", c->seq_len,
                         r->m->cfg.max_position_embeddings);
    r->order = mart_xmalloc((size_t)r->n_ex * sizeof(int32_t));
    shuffle_order(r);
    int64_t cap = (int64_t)c->batch * c->seq_len;
    r->tokens = mart_xmalloc((size_t)cap * sizeof(int32_t));
    r->targets = mart_xmalloc((size_t)cap * sizeof(int32_t));
    r->logprobs = mart_xmalloc((size_t)cap * sizeof(float));
    r->dlp = mart_xmalloc((size_t)cap * sizeof(float));
    r->offsets = mart_xmalloc((size_t)(c->batch + 1) * sizeof(int32_t));
    return MART_OK;
}

static void run_free(run *r) {
    free_examples(r->ex, r->n_ex);
    if (r->tok) tok_free(r->tok);
    free(r->tok_json);
    adamw_free(&r->opt);
    model_free(r->m);
    free(r->order);
    free(r->tokens);
    free(r->targets);
    free(r->logprobs);
    free(r->dlp);
    free(r->offsets);
}

/* One optimiser step on the next batch: the loss and the gradient norm. */
static int train_step(run *r, double *loss, float *gnorm, float *lr, int32_t *ntok_out,
                      mart_err *err) {
    const sft_config *c = &r->c;
    mart_rng g;
    mart_rng_seed(&g, c->seed, STREAM_STEP + (uint64_t)r->step);
    int32_t nseq = 0, ntok = 0, nresp = 0;
    while (nseq < c->batch) {
        if (r->cursor == r->n_ex) {
            r->epoch++;
            r->cursor = 0;
            shuffle_order(r);
        }
        sft_example *e = &r->ex[r->order[r->cursor++]];
        int32_t att = env_draw_attempts(&r->ecfg, &g);
        if (e->n_attempts > 0) att = e->attempts_allowed;
        int32_t *prompt = NULL, np = 0;
        if (env_build_prompt(r->tok, &r->ecfg, e->problem, att, &prompt, &np, err) != MART_OK)
            return MART_ERR;
        int32_t len = np + e->n_resp;
        assert(len <= c->seq_len);
        r->offsets[nseq] = ntok;
        memcpy(r->tokens + ntok, prompt, (size_t)np * sizeof(int32_t));
        memcpy(r->tokens + ntok + np, e->resp, (size_t)e->n_resp * sizeof(int32_t));
        free(prompt);
        /* position t predicts token t+1; the loss covers the response tokens only */
        for (int32_t t = 0; t < len; t++) {
            r->targets[ntok + t] = t + 1 < len ? r->tokens[ntok + t + 1] : -1;
            r->dlp[ntok + t] = (t + 1 >= np && t + 1 < len && e->learn[t + 1 - np]) ? 1.0f : 0.0f;
        }
        for (int32_t t = 0; t < e->n_resp; t++)
            nresp += e->learn[t];
        ntok += len;
        nseq++;
    }
    r->offsets[nseq] = ntok;
    for (int32_t t = 0; t < ntok; t++)
        r->dlp[t] *= nresp > 0 ? -1.0f / (float)nresp : 0.0f;
    model_batch b = {.n_seqs = nseq, .tokens = r->tokens, .offsets = r->offsets, .slots = NULL};
    model_out o = {.targets = r->targets, .logprobs = r->logprobs};
    model_zero_grads(r->m);
    if (model_forward(r->m, &b, NULL, &o, true, err) != MART_OK) return MART_ERR;
    double l = 0;
    for (int32_t t = 0; t < ntok; t++)
        l += (double)r->dlp[t] * (double)r->logprobs[t];
    if (!isfinite(l))
        return mart_fail(err, "step %lld: the loss is %g; stopped before the update (the last "
                              "checkpoint is kept)", (long long)r->step + 1, l);
    model_backward(r->m, r->dlp, NULL, NULL);
    adamw_config ac = {.lr = (float)adamw_lr_at(r->step, c->steps, c->lr, SFT_WARMUP_FRAC,
                                                SFT_MIN_LR_RATIO),
                       .beta1 = SFT_BETA1, .beta2 = SFT_BETA2, .eps = ADAM_EPS,
                       .weight_decay = (float)c->weight_decay};
    *gnorm = model_optimizer_step(r->m, &r->opt, &ac, SFT_MAX_GRAD_NORM);
    if (!isfinite(*gnorm))
        return mart_fail(err, "step %lld: the gradient norm is %g; stopped before the update "
                              "(the last checkpoint is kept)", (long long)r->step + 1,
                         (double)*gnorm);
    *loss = l;
    *lr = ac.lr;
    *ntok_out = ntok;
    r->step++;
    return MART_OK;
}

/* The final model folder: the weights in the model's dtype and the tokenizer (an --init
 * folder's passed on byte for byte). */
static int save_final(run *r, mart_err *err) {
    char p[4200];
    if (model_save(r->m, r->c.out_dir, err) != MART_OK) return MART_ERR;
    mart_path_join(p, sizeof p, r->c.out_dir, "tokenizer.json");
    return r->tok_json ? mart_write_file_atomic(p, r->tok_json, r->tok_json_len, err)
                       : tok_save(r->tok, p, err);
}

int sft_train(const sft_config *cfg, bool *stopped, mart_err *err) {
    *stopped = false;
    run r = {0};
    r.c = *cfg;
    if (!cfg->data_path || !cfg->out_dir) return mart_fail(err, "data and out are required");
    if (cfg->init_dir && cfg->config)
        return mart_fail(err, "--init DIR and --config are exclusive (the model folder has its "
                              "shape)");
    if (!r.c.config) r.c.config = "tiny";
    if (mart_mkdirs(cfg->out_dir, err) != MART_OK) return MART_ERR;
    int lock = -1;
    if (ckpt_lock(cfg->out_dir, &lock, err) != MART_OK) return MART_ERR;
    double t0 = mart_now();
    int rc = setup(&r, err);
    if (rc == MART_OK && r.finished) {
        if (!cfg->quiet)
            fprintf(stderr, "mart pretrain: %s already holds the finished run\n", cfg->out_dir);
        run_free(&r);
        ckpt_unlock(lock);
        return MART_OK;
    }
    char mpath[4200];
    mart_path_join(mpath, sizeof mpath, cfg->out_dir, "metrics.jsonl");
    if (rc == MART_OK && r.step > 0) rc = ckpt_trim_metrics(mpath, r.step, err);
    FILE *mf = NULL;
    if (rc == MART_OK && !(mf = fopen(mpath, r.step > 0 ? "a" : "w")))
        rc = mart_fail(err, "%s: cannot open for writing", mpath);
    if (rc == MART_OK && !cfg->quiet)
        fprintf(stderr, "mart pretrain: %lld examples, model %s, %.2fM parameters, %lld steps of "
                        "%d examples%s\n",
                (long long)r.n_ex, cfg->init_dir ? cfg->init_dir : r.c.config,
                (double)r.m->n_params / 1e6, (long long)cfg->steps, cfg->batch,
                r.step > 0 ? " (resumed)" : "");
    if (rc == MART_OK) mart_install_stop_handler();
    mart_progress bar;
    if (rc == MART_OK && !cfg->quiet) mart_progress_start(&bar, "pretrain", cfg->steps);
    int64_t first = r.step, tokens = 0;
    double ema = 0, t_train = mart_now();
    while (rc == MART_OK && r.step < cfg->steps) {
        double loss = 0;
        float gnorm = 0, lr = 0;
        int32_t ntok = 0;
        rc = train_step(&r, &loss, &gnorm, &lr, &ntok, err);
        if (rc != MART_OK) break;
        tokens += ntok;
        double el = mart_now() - t_train;
        ema = r.step == first + 1 ? loss : 0.95 * ema + 0.05 * loss;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)r.step);
        cJSON_AddNumberToObject(o, "loss", loss);
        cJSON_AddNumberToObject(o, "lr", lr);
        cJSON_AddNumberToObject(o, "grad_norm", gnorm);
        cJSON_AddNumberToObject(o, "tokens", ntok);
        cJSON_AddNumberToObject(o, "tokens_per_s", (double)tokens / (el > 0 ? el : 1e-9));
        cJSON_AddNumberToObject(o, "elapsed_s", el);
        mart_json_print_line(mf, o);
        cJSON_Delete(o);
        fflush(mf);
        if (!cfg->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.3f  lr %.2g  %.0f tok/s", ema, (double)lr,
                     (double)tokens / (el > 0 ? el : 1e-9));
            mart_progress_update(&bar, r.step, extra);
        }
        *stopped = mart_stop_requested() || (cfg->stop_after > 0 && r.step >= cfg->stop_after);
        if (*stopped || (cfg->save_every > 0 && r.step % cfg->save_every == 0 &&
                         r.step < cfg->steps))
            rc = save_checkpoint(&r, err);
        if (*stopped) break;
    }
    if (rc == MART_OK && !cfg->quiet) mart_progress_finish(&bar);
    if (mf) fclose(mf);
    if (rc == MART_OK && *stopped && !cfg->quiet)
        fprintf(stderr, "mart pretrain: stopped after step %lld; checkpoint written, continue "
                        "with --resume\n", (long long)r.step);
    if (rc == MART_OK && !*stopped) {
        rc = save_final(&r, err);
        char ckpt[4096];
        checkpoint_dir(&r, ckpt, sizeof ckpt);
        if (rc == MART_OK && mart_path_exists(ckpt)) rc = mart_remove_tree(ckpt, err);
        if (rc == MART_OK && !cfg->quiet)
            fprintf(stderr, "mart pretrain: final loss %.3f (smoothed), wrote %s in %.1fs\n", ema,
                    cfg->out_dir, mart_now() - t0);
    }
    run_free(&r);
    ckpt_unlock(lock);
    return rc;
}
