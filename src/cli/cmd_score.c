/* mart score: per-token log-probabilities of token sequences (a stable contract used by
 * tools outside the project). Each input line {"tokens":[int,...]} gives one output line
 * {"logprobs":[...]} with n-1 numbers, logprobs[i] = log p(tokens[i+1] | tokens[0..i]).
 * Lines are packed into batches of up to --batch-tokens tokens, one forward pass each. */
#include "cli/cli.h"
#include "mart/model.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tokens per packed forward pass: large enough to keep the matrix products efficient,
 * small enough that the (tokens, vocab) logits of a 150k-vocabulary model stay ~1 GB. */
#define SCORE_DEFAULT_BATCH_TOKENS 2048

typedef struct {
    int32_t *tokens, *offsets, *targets;
    int64_t *lines; /* (n_seqs) input line of each sequence, for error answers */
    int32_t n_seqs, n_tokens, cap_tokens, cap_seqs;
    float *logprobs;
} score_batch;

static void batch_add(score_batch *b, const int32_t *tok, int32_t n, int64_t line) {
    if (b->n_tokens + n > b->cap_tokens) {
        while (b->n_tokens + n > b->cap_tokens)
            b->cap_tokens = b->cap_tokens ? 2 * b->cap_tokens : 1024;
        b->tokens = mart_xrealloc(b->tokens, (size_t)b->cap_tokens * sizeof *b->tokens);
        b->targets = mart_xrealloc(b->targets, (size_t)b->cap_tokens * sizeof *b->targets);
        b->logprobs = mart_xrealloc(b->logprobs, (size_t)b->cap_tokens * sizeof *b->logprobs);
    }
    if (b->n_seqs + 2 > b->cap_seqs) {
        b->cap_seqs = b->cap_seqs ? 2 * b->cap_seqs : 64;
        b->offsets = mart_xrealloc(b->offsets, (size_t)b->cap_seqs * sizeof *b->offsets);
        b->lines = mart_xrealloc(b->lines, (size_t)b->cap_seqs * sizeof *b->lines);
    }
    b->lines[b->n_seqs] = line;
    if (b->n_seqs == 0) b->offsets[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        b->tokens[b->n_tokens + i] = tok[i];
        b->targets[b->n_tokens + i] = i + 1 < n ? tok[i + 1] : -1;
    }
    b->n_tokens += n;
    b->offsets[++b->n_seqs] = b->n_tokens;
}

/* Runs the batch and prints one line per sequence, in input order. A log-probability of -inf
 * (a token of probability 0 in float) prints as -FLT_MAX, JSON having no -Infinity; a NaN
 * (a model whose weights hold NaN) fails that record with an error object. */
static int batch_flush(model *m, score_batch *b, mart_jsonl *r, FILE *out, mart_err *err) {
    if (b->n_seqs == 0) return MART_OK;
    model_batch mb = {.n_seqs = b->n_seqs, .tokens = b->tokens, .offsets = b->offsets};
    model_out mo = {.targets = b->targets, .logprobs = b->logprobs};
    if (model_forward(m, &mb, NULL, &mo, false, err) != MART_OK) return MART_ERR;
    mart_buf line = {0};
    for (int32_t s = 0; s < b->n_seqs; s++) {
        line.len = 0;
        mart_buf_append(&line, "{\"logprobs\":[", 13);
        int32_t nan_at = -1;
        for (int32_t t = b->offsets[s]; t + 1 < b->offsets[s + 1]; t++) {
            double x = b->logprobs[t];
            if (x == -INFINITY) x = -FLT_MAX;
            if (t > b->offsets[s]) mart_buf_append(&line, ",", 1);
            if (!mart_json_number(&line, x, 9) && nan_at < 0) nan_at = t - b->offsets[s];
        }
        mart_buf_append(&line, "]}\n", 3);
        if (nan_at >= 0) {
            mart_err e;
            mart_fail(&e,
                      "%s:%lld: the model gave a non-finite log-probability (logprobs[%d]): "
                      "are its weights finite?",
                      r->path, (long long)b->lines[s], nan_at);
            mart_jsonl_answer_error(r, out, "score", b->lines[s], &e);
        } else {
            fwrite(line.data, 1, line.len, out);
        }
    }
    mart_buf_free(&line);
    b->n_seqs = b->n_tokens = 0;
    return MART_OK;
}

/* Reads the "tokens" array of one input line into *tok (n ids, each in the vocabulary). */
static int parse_line(const cJSON *obj, const char *path, int64_t line, int32_t vocab,
                      int32_t **tok, int32_t *cap, int32_t *n, mart_err *err) {
    const cJSON *a = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "tokens") : NULL;
    if (!a) return mart_fail(err, "%s:%lld: missing \"tokens\"", path, (long long)line);
    if (!cJSON_IsArray(a))
        return mart_fail(err, "%s:%lld: \"tokens\" is not an array", path, (long long)line);
    int32_t len = cJSON_GetArraySize(a);
    if (len < 1)
        return mart_fail(err, "%s:%lld: \"tokens\" is empty (at least 1 token needed)", path,
                         (long long)line);
    if (len > *cap) {
        *cap = len;
        *tok = mart_xrealloc(*tok, (size_t)len * sizeof **tok);
    }
    int32_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        double x = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (x != floor(x))
            return mart_fail(err, "%s:%lld: tokens[%d] is not an integer", path, (long long)line,
                             i);
        if (x < 0 || x >= vocab)
            return mart_fail(err, "%s:%lld: tokens[%d] = %.0f is outside the vocabulary (0..%d)",
                             path, (long long)line, i, x, vocab - 1);
        (*tok)[i] = (int32_t)x;
    }
    *n = len;
    return MART_OK;
}

/* Memory of the (tokens, vocab) logits a forward pass over n tokens holds, the largest
 * buffer scoring adds to the model. */
static double logits_bytes(const model *m, int64_t n) {
    return (double)n * m->cfg.vocab_size * sizeof(float);
}

/* Scores every record of input under the batch policy (core.h): a bad record is answered
 * with an error object in its place. Returns MART_ERR only when the run itself fails
 * (unreadable input, a failed forward pass); r->n_failed counts the answered errors. */
static int score_stream(model *m, mart_jsonl *r, int32_t batch_tokens, int64_t *n_lines,
                        int64_t *n_tok, mart_err *err) {
    score_batch b = {0};
    int32_t *tok = NULL, cap = 0, n = 0;
    int rc = MART_OK;
    for (;;) {
        cJSON *obj = NULL;
        int got = mart_jsonl_next(r, &obj, err);
        if (got == 0) break;
        if (got < 0 && r->io_error) {
            rc = MART_ERR;
            break;
        }
        if (got > 0)
            got = parse_line(obj, r->path, r->line, m->cfg.vocab_size, &tok, &cap, &n, err);
        if (got > 0 && n > batch_tokens) {
            char what[64];
            snprintf(what, sizeof what, "a line of %d tokens", n);
            if (mart_check_memory(logits_bytes(m, n), what, err) != MART_OK)
                got = mart_fail_wrap(err, "%s:%lld", r->path, (long long)r->line);
        }
        cJSON_Delete(obj);
        if (got < 0) {
            /* The batch before a bad record is printed first, so answers stay in input order. */
            if ((rc = batch_flush(m, &b, r, stdout, err)) != MART_OK) break;
            mart_jsonl_answer_error(r, stdout, "score", r->line, err);
            continue;
        }
        if (b.n_seqs > 0 && b.n_tokens + n > batch_tokens &&
            (rc = batch_flush(m, &b, r, stdout, err)) != MART_OK)
            break;
        batch_add(&b, tok, n, r->line);
        (*n_lines)++;
        *n_tok += n;
    }
    if (rc == MART_OK) rc = batch_flush(m, &b, r, stdout, err);
    free(tok);
    free(b.tokens);
    free(b.offsets);
    free(b.targets);
    free(b.lines);
    free(b.logprobs);
    return rc;
}

static int parse_dtype(const char *s, mart_dtype *d) {
    if (!strcmp(s, "f32"))
        *d = MART_DTYPE_F32;
    else if (!strcmp(s, "bf16"))
        *d = MART_DTYPE_BF16;
    else if (!strcmp(s, "f16"))
        *d = MART_DTYPE_F16;
    else
        return MART_ERR;
    return MART_OK;
}

/* --init-random: writes a fresh random model of a built-in shape (tests, scale benchmark). */
static int init_random(const char *name, const char *dir, const char *dtype, int64_t seed,
                       bool stats, mart_err *err) {
    model_config cfg;
    if (model_config_builtin(name, &cfg, err) != MART_OK) return MART_ERR;
    if (dtype && parse_dtype(dtype, &cfg.dtype) != MART_OK)
        return mart_fail(err, "--dtype: '%s' is not f32, bf16 or f16", dtype);
    double t0 = mart_now();
    model *m = model_create(&cfg, false, false);
    model_init_random(m, (uint64_t)seed);
    double t1 = mart_now();
    int rc = model_save(m, dir, err);
    if (stats && rc == MART_OK)
        fprintf(stderr,
                "init-random %s: %lld parameters, init %.2f s, save %.2f s, peak RSS %.2f GiB\n",
                name, (long long)m->n_params, t1 - t0, mart_now() - t1,
                (double)mart_rss_bytes(true) / (1 << 30));
    model_free(m);
    return rc;
}

int cmd_score(int argc, char **argv) {
    const char *model_dir = NULL, *input = "-", *init = NULL, *dtype = NULL;
    int32_t batch_tokens = SCORE_DEFAULT_BATCH_TOKENS;
    int64_t seed = 1;
    bool stats = false;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "model directory (config.json + model.safetensors)"},
        {"input", CLI_STR, &input, "JSONL file of {\"tokens\":[...]} lines; - for stdin"},
        {"batch-tokens", CLI_INT, &batch_tokens, "tokens packed into one forward pass"},
        {"stats", CLI_FLAG, &stats, "print load time, tokens/s and peak memory to stderr"},
        {"init-random", CLI_STR, &init,
         "instead of scoring, write a random model of this built-in shape (tiny, small, 40m, "
         "qwen2.5-0.5b, qwen2.5-1.5b) to --model DIR"},
        {"dtype", CLI_STR, &dtype, "with --init-random: f32, bf16 or f16 (default: the shape's)"},
        {"seed", CLI_INT64, &seed, "with --init-random: initialisation seed"},
    };
    int p = cli_parse("score", "--model DIR [--input FILE.jsonl]",
                      "Prints {\"logprobs\":[...]} for each input line {\"tokens\":[...]} of n "
                      "tokens: n-1 numbers, logprobs[i] = log p(tokens[i+1] | tokens[0..i]) "
                      "(natural log). A bad line is answered with {\"line\": N, \"error\": ...} "
                      "and the exit status is 1 once all lines are answered.",
                      opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (p != 0) return p > 0 ? 0 : 2;
    mart_err err = {{0}};
    if (!model_dir) {
        fprintf(stderr, "mart score: --model DIR is required (see mart score --help)\n");
        return 2;
    }
    if (batch_tokens < 1) {
        fprintf(stderr, "mart score: --batch-tokens must be positive\n");
        return 2;
    }
    if (init) {
        if (init_random(init, model_dir, dtype, seed, stats, &err) != MART_OK)
            return cli_error("score", &err);
        return 0;
    }
    double t0 = mart_now();
    model *m;
    if (model_load(model_dir, false, &m, &err) != MART_OK) return cli_error("score", &err);
    double t1 = mart_now();
    if (mart_check_memory(logits_bytes(m, batch_tokens), "--batch-tokens", &err) != MART_OK) {
        model_free(m);
        return cli_error("score", &err);
    }
    int64_t n_lines = 0, n_tok = 0;
    mart_jsonl r;
    int rc = mart_jsonl_open(&r, input, &err);
    if (rc == MART_OK) rc = score_stream(m, &r, batch_tokens, &n_lines, &n_tok, &err);
    double t2 = mart_now();
    if (stats)
        fprintf(stderr,
                "score: %lld parameters, load %.2f s; %lld sequences, %lld tokens in %.2f s "
                "(%.1f tokens/s); peak RSS %.2f GiB\n",
                (long long)m->n_params, t1 - t0, (long long)n_lines, (long long)n_tok, t2 - t1,
                t2 > t1 ? (double)n_tok / (t2 - t1) : 0.0,
                (double)mart_rss_bytes(true) / (1 << 30));
    model_free(m);
    int status = rc == MART_OK ? cli_batch_status("score", &r) : cli_error("score", &err);
    mart_jsonl_close(&r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mart_fail(&err, "cannot write to stdout");
        status = cli_error("score", &err);
    }
    return status;
}
