/* mart generate: JSONL prompts in, JSONL samples out, in input order (issue #5's stable CLI
 * contract). Every request goes to one gen_generate call, so continuous batching keeps the
 * batch full and the --n samples of a prompt share one prefill. */
#include "cli/cli.h"
#include "mart/gen.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* One input record: its tokens, or why it was refused (answered with an error object). */
typedef struct {
    int32_t *ids;
    int64_t n;
    int64_t line;  /* input line, for the error answer */
    mart_err *err; /* NULL when the prompt is good */
} prompt_ids;

/* Per-request state the callback sees: the text so far (for stop strings) and the counters. */
typedef struct {
    tok_stream ts;
    mart_buf text;
} req_state;

typedef struct {
    const tok_tokenizer *tok;
    const char *stop_str; /* NULL: none */
    mart_progress bar;
    int64_t done, sampled;
} gen_ctx;

static gen_action on_token(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                           gen_finish finish) {
    gen_ctx *c = ctx;
    req_state *s = user;
    (void)seq;
    (void)logprob;
    c->sampled++;
    gen_action act = GEN_CONTINUE;
    if (c->stop_str) {
        size_t from = s->text.len > strlen(c->stop_str) ? s->text.len - strlen(c->stop_str) : 0;
        tok_stream_push(&s->ts, c->tok, token, &s->text);
        if (memmem(s->text.data + from, s->text.len - from, c->stop_str, strlen(c->stop_str)))
            act = GEN_STOP;
    }
    if (finish != GEN_FINISH_NONE || act == GEN_STOP) {
        c->done++;
        char extra[64];
        double el = mart_now() - c->bar.t_start;
        snprintf(extra, sizeof extra, "%.0f tok/s", el > 0 ? (double)c->sampled / el : 0.0);
        mart_progress_update(&c->bar, c->done, extra);
    }
    return act;
}

/* Reads one input line: {"prompt": "..."} (encoded as is, or as a ChatML user turn with
 * chat) or {"tokens": [...]}. */
static int read_prompt(const cJSON *o, const tok_tokenizer *tok, bool chat, const char *path,
                       int64_t line, prompt_ids *out, mart_err *err) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    memset(out, 0, sizeof *out);
    if (cJSON_IsString(pr)) {
        mart_buf b = {0};
        if (chat)
            mart_buf_printf(&b, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
                            pr->valuestring);
        else
            mart_buf_append(&b, pr->valuestring, strlen(pr->valuestring));
        int rc = tok_encode(tok, b.data ? b.data : "", b.len, &out->ids, &out->n, err);
        mart_buf_free(&b);
        if (rc != MART_OK) return mart_fail_wrap(err, "%s:%lld: prompt", path, (long long)line);
    } else if (cJSON_IsArray(tk)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, tk) {
            if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble) {
                free(out->ids);
                return mart_fail(err, "%s:%lld: field \"tokens\" must hold integers", path,
                                 (long long)line);
            }
            out->ids = mart_xrealloc(out->ids, (size_t)(out->n + 1) * sizeof(int32_t));
            out->ids[out->n++] = (int32_t)it->valuedouble;
        }
    } else {
        return mart_fail(err, "%s:%lld: expected a string field \"prompt\" or an array \"tokens\"",
                         path, (long long)line);
    }
    if (out->n == 0) {
        free(out->ids);
        return mart_fail(err, "%s:%lld: empty prompt", path, (long long)line);
    }
    return MART_OK;
}

static bool is_stop_id(const int32_t *stops, int32_t n, int32_t id) {
    for (int32_t i = 0; i < n; i++)
        if (stops[i] == id) return true;
    return false;
}

/* Writes one output line. A stop token that ended the sample is in "tokens" and "logprobs"
 * but not in "text"; a stop string is cut from "text" with everything after it. "text" is
 * valid UTF-8 even when the sample stops inside a character (U+FFFD, as mart_json_quote).
 * Returns false when a log-prob was not finite (written as null). */
static bool write_result(const tok_tokenizer *tok, const gen_result *r, const int32_t *stops,
                         int32_t n_stops, const char *stop_str, mart_buf *line) {
    line->len = 0;
    mart_buf_append(line, "{\"tokens\":[", 11);
    for (int32_t i = 0; i < r->n_tokens; i++)
        mart_buf_printf(line, "%s%d", i ? "," : "", r->tokens[i]);
    /* A stop token sampled as the last token the budget allowed ends the sample as well. */
    int32_t n_text = r->n_tokens;
    bool stopped = r->finish == GEN_FINISH_STOP;
    if (n_text > 0 && is_stop_id(stops, n_stops, r->tokens[n_text - 1])) {
        n_text--;
        stopped = true;
    }
    /* Ids the tokenizer does not know (a model's padded vocabulary) have no text. */
    mart_buf text = {0};
    tok_stream ts;
    tok_stream_init(&ts);
    for (int32_t i = 0; i < n_text; i++)
        tok_stream_push(&ts, tok, r->tokens[i], &text);
    tok_stream_flush(&ts, &text);
    size_t text_len = text.len;
    if (stop_str && text.len) {
        const char *hit = memmem(text.data, text.len, stop_str, strlen(stop_str));
        if (hit) text_len = (size_t)(hit - text.data);
    }
    mart_buf_append(line, "],\"text\":", 9);
    mart_json_quote(line, text.data ? text.data : "", text_len);
    mart_buf_free(&text);
    mart_buf_append(line, ",\"logprobs\":[", 13);
    bool finite = true;
    for (int32_t i = 0; i < r->n_tokens; i++) {
        if (i) mart_buf_append(line, ",", 1);
        finite &= mart_json_number(line, (double)r->logprobs[i], 6);
    }
    mart_buf_printf(line, "],\"finish\":\"%s\"}\n", stopped ? "stop" : "length");
    return finite;
}

/* Memory the request, result and logit arrays of n_req samples take at most (the KV cache,
 * bounded by --kv-mb, comes on top). */
static double requests_bytes(double n_req, int32_t max_tokens, int32_t batch, int32_t vocab) {
    double per_req = (double)(sizeof(gen_request) + sizeof(req_state) + sizeof(gen_result)) +
                     (double)max_tokens * (sizeof(int32_t) + sizeof(float) + 8.0);
    return n_req * per_req + (double)batch * vocab * sizeof(float);
}

/* Adds id to the stop list unless it is negative or already there. */
static void add_stop(int32_t *stops, int32_t *n, int32_t id) {
    if (id >= 0 && !is_stop_id(stops, *n, id)) stops[(*n)++] = id;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *tok_path = NULL, *input = NULL, *stop_str = NULL;
    int32_t max_tokens = 256, n_samples = 1, batch = 64, top_k = 0, max_len = 0;
    float temperature = 1.0f, top_p = 1.0f;
    int64_t seed = 0, kv_mb = 0;
    bool chat = false, exact = false;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "model directory (config.json, model.safetensors)"},
        {"tokenizer", CLI_STR, &tok_path, "tokenizer.json or its directory (default: --model)"},
        {"input", CLI_STR, &input,
         "JSONL of {\"prompt\": \"...\"} or {\"tokens\": [...]} lines (default: stdin)"},
        {"max-tokens", CLI_INT, &max_tokens, "new tokens per sample at most"},
        {"temperature", CLI_FLOAT, &temperature, "sampling temperature (0 = greedy)"},
        {"top-p", CLI_FLOAT, &top_p, "nucleus sampling mass (1 = off)"},
        {"top-k", CLI_INT, &top_k, "sample among the k likeliest tokens (0 = off)"},
        {"seed", CLI_INT64, &seed, "sampling seed (sample j of line i uses stream i*n+j)"},
        {"n", CLI_INT, &n_samples, "samples per prompt (one output line each, consecutive)"},
        {"stop", CLI_STR, &stop_str, "also stop when the text contains this string"},
        {"chat", CLI_FLAG, &chat, "wrap each \"prompt\" as a ChatML user turn"},
        {"batch", CLI_INT, &batch, "sequences decoded together"},
        {"max-len", CLI_INT, &max_len,
         "KV-cache length per sequence (0 = longest prompt + "
         "--max-tokens)"},
        {"kv-mb", CLI_INT64, &kv_mb, "KV-cache memory budget in MiB (0 = default)"},
        {"exact-products", CLI_FLAG, &exact,
         "keep float32 activations in the products with BF16 weights. By default they are "
         "rounded to bfloat16 for the CPU's BF16 dot products (about 2x faster at large "
         "batches), like BF16 inference engines; log-probs then differ from the training "
         "forward pass by ~1e-3 relative"},
    };
    int pr = cli_parse(
        "generate", "--model DIR [--input FILE.jsonl] [options]",
        "Samples continuations of each input line and prints, in input order, one line "
        "{\"tokens\": [ids], \"text\": \"...\", \"logprobs\": [...], \"finish\": "
        "\"stop\"|\"length\"} per sample. Log-probs are those of the sampling distribution "
        "(after temperature, top-k, top-p). Sampling stops at <|im_end|>, <|endoftext|> and "
        "the model's eos (the stop token stays in tokens, not in text). \"text\" is valid "
        "UTF-8 (U+FFFD where a sample ends inside a character). A bad line is answered with "
        "one {\"line\": N, \"error\": ...} and the exit status is 1 once all lines are "
        "answered; settings needing more memory than is available are refused up front.",
        opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!model_dir) {
        fprintf(stderr, "mart generate: --model is required (see mart generate --help)\n");
        return 2;
    }
    if (max_tokens < 1 || n_samples < 1 || batch < 1 || max_len < 0 || kv_mb < 0) {
        fprintf(stderr, "mart generate: --max-tokens, --n and --batch must be positive\n");
        return 2;
    }
    if (stop_str && !*stop_str) stop_str = NULL;
    if (mart_check_memory((double)(kv_mb > 0 ? kv_mb : 0) * 1024 * 1024 +
                              requests_bytes(n_samples, max_tokens, batch, 0),
                          "--kv-mb, --n and --max-tokens", &err) != MART_OK)
        return cli_error("generate", &err);
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    if (tok_load(tok_path ? tok_path : model_dir, &tok, &err) != MART_OK ||
        model_load(model_dir, false, &m, &err) != MART_OK) {
        tok_free(tok);
        return cli_error("generate", &err);
    }
    int status = 0;
    prompt_ids *prompts = NULL;
    int64_t n_prompts = 0, n_good = 0;
    mart_jsonl r;
    if (mart_jsonl_open(&r, input, &err) != MART_OK) {
        status = cli_error("generate", &err);
    } else {
        for (;;) {
            cJSON *o;
            int rc = mart_jsonl_next(&r, &o, &err);
            if (rc == 0) break;
            if (rc < 0 && r.io_error) {
                status = cli_error("generate", &err);
                break;
            }
            prompt_ids p = {0};
            if (rc < 0 || read_prompt(o, tok, chat, r.path, r.line, &p, &err) != MART_OK) {
                p.err = mart_xmalloc(sizeof *p.err);
                *p.err = err;
            }
            p.line = r.line;
            n_good += p.err == NULL;
            cJSON_Delete(o);
            prompts = mart_xrealloc(prompts, (size_t)(n_prompts + 1) * sizeof *prompts);
            prompts[n_prompts++] = p;
        }
    }
    int64_t n_req = n_good * n_samples;
    if (!status && n_req > INT32_MAX) {
        mart_fail(&err, "too many samples (%lld)", (long long)n_req);
        status = cli_error("generate", &err);
    }
    if (!status &&
        mart_check_memory((double)(kv_mb > 0 ? kv_mb : 0) * 1024 * 1024 +
                              requests_bytes((double)n_req, max_tokens, batch, m->cfg.vocab_size),
                          "the samples asked for (prompts x --n x --max-tokens)", &err) != MART_OK)
        status = cli_error("generate", &err);
    gen_result *res = NULL;
    int32_t stops[3], n_stops = 0;
    add_stop(stops, &n_stops, tok_special_id(tok, "<|im_end|>"));
    add_stop(stops, &n_stops, tok_special_id(tok, "<|endoftext|>"));
    add_stop(stops, &n_stops, m->cfg.eos_token_id);
    if (!status && n_req > 0) {
        int64_t longest = 0;
        for (int64_t i = 0; i < n_prompts; i++)
            longest = prompts[i].n > longest ? prompts[i].n : longest;
        gen_config gc;
        gen_config_default(&gc);
        gc.max_batch = batch;
        gc.max_len = max_len > 0 ? max_len : (int32_t)(longest + max_tokens);
        if (max_len == 0 && longest + max_tokens > INT32_MAX) gc.max_len = INT32_MAX;
        if (kv_mb > 0) gc.kv_budget_mb = kv_mb;
        gc.bf16_products = !exact;
        gen_params gp;
        gen_params_default(&gp);
        gp.temperature = temperature;
        gp.top_p = top_p;
        gp.top_k = top_k;
        gp.seed = (uint64_t)seed;
        gp.max_new_tokens = max_tokens;
        gp.stop_ids = stops;
        gp.n_stop_ids = n_stops;
        gen_request *reqs = mart_xcalloc((size_t)n_req, sizeof *reqs);
        req_state *st = mart_xcalloc((size_t)n_req, sizeof *st);
        res = mart_xcalloc((size_t)n_req, sizeof *res);
        int64_t k = 0;
        for (int64_t i = 0; i < n_prompts; i++) {
            const prompt_ids *p = &prompts[i];
            for (int32_t j = 0; !p->err && j < n_samples; j++, k++) {
                tok_stream_init(&st[k].ts);
                reqs[k] =
                    (gen_request){p->ids, (int32_t)p->n, (uint64_t)(i * n_samples + j), &st[k]};
            }
        }
        gen_ctx c = {tok, stop_str, {0}, 0, 0};
        gen_engine *g = NULL;
        mart_progress_start(&c.bar, "generate", n_req);
        if (gen_create(m, &gc, &g, &err) != MART_OK ||
            gen_generate(g, reqs, (int32_t)n_req, &gp, on_token, &c, res, &err) != MART_OK) {
            status = cli_error("generate", &err);
        }
        mart_progress_finish(&c.bar);
        gen_free(g);
        for (int64_t i = 0; i < n_req; i++)
            mart_buf_free(&st[i].text);
        free(reqs);
        free(st);
    }
    /* Answers in input order: the samples of a good prompt, one error object for a bad one. */
    mart_buf line = {0};
    int64_t k = 0;
    for (int64_t i = 0; !status && i < n_prompts; i++) {
        if (prompts[i].err) {
            mart_jsonl_answer_error(&r, stdout, "generate", prompts[i].line, prompts[i].err);
            continue;
        }
        for (int32_t j = 0; j < n_samples; j++, k++) {
            if (!write_result(tok, &res[k], stops, n_stops, stop_str, &line)) {
                mart_fail(&err,
                          "%s:%lld: sample %d has a non-finite log-probability: are the "
                          "model's weights finite?",
                          r.path, (long long)prompts[i].line, j);
                mart_jsonl_answer_error(&r, stdout, "generate", prompts[i].line, &err);
            } else {
                fwrite(line.data, 1, line.len, stdout);
            }
        }
    }
    mart_buf_free(&line);
    for (int64_t i = 0; res && i < n_req; i++)
        gen_result_free(&res[i]);
    free(res);
    if (!status) status = cli_batch_status("generate", &r);
    mart_jsonl_close(&r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mart_fail(&err, "writing the output failed");
        status = cli_error("generate", &err);
    }
    for (int64_t i = 0; i < n_prompts; i++) {
        free(prompts[i].ids);
        free(prompts[i].err);
    }
    free(prompts);
    model_free(m);
    tok_free(tok);
    return status;
}
