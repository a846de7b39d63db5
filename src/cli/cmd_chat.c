/* mart chat: an interactive ChatML conversation with streamed output. The conversation is
 * one live generation request: when the assistant's turn ends, the callback reads the next
 * user line and appends it as a new turn (gen_seq_append), so the history's KV cache is
 * never recomputed. "/reset" starts over; an empty line or end of input quits. */
#include "cli/cli.h"
#include "mart/env.h"
#include "mart/gen.h"
#include "mart/tok.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const tok_tokenizer *tok;
    int32_t im_end;
    int32_t turn_limit; /* new tokens per assistant turn */
    int32_t turn_tokens;
    tok_stream ts;
    bool quit, reset;
    char *line;
    size_t line_cap;
} chat_ctx;

/* Prompts for and reads one user line (without its newline); false at the end of input, on
 * an empty line (quit) or on /reset. */
static bool read_user(chat_ctx *c) {
    fprintf(stderr, "\n> ");
    fflush(stderr);
    ssize_t n = getline(&c->line, &c->line_cap, stdin);
    if (n <= 0) {
        c->quit = true;
        return false;
    }
    while (n > 0 && (c->line[n - 1] == '\n' || c->line[n - 1] == '\r'))
        c->line[--n] = 0;
    if (n == 0) {
        c->quit = true;
        return false;
    }
    if (!strcmp(c->line, "/reset")) {
        c->reset = true;
        return false;
    }
    return true;
}

static gen_action on_token(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                           gen_finish finish) {
    chat_ctx *c = ctx;
    (void)user;
    (void)logprob;
    mart_buf out = {0};
    bool end_turn =
        token == c->im_end || finish != GEN_FINISH_NONE || ++c->turn_tokens >= c->turn_limit;
    if (token != c->im_end) tok_stream_push(&c->ts, c->tok, token, &out);
    if (end_turn) tok_stream_flush(&c->ts, &out);
    if (out.len) fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    mart_buf_free(&out);
    if (!end_turn) return GEN_CONTINUE;
    if (finish == GEN_FINISH_LENGTH) { /* the budget is the context: it is full */
        fprintf(stderr, "\n[context full: /reset to start over]");
        c->reset = true;
        return GEN_STOP;
    }
    putchar('\n');
    if (!read_user(c)) return GEN_STOP;
    int32_t *ids = NULL, n = 0;
    mart_err err = {{0}};
    /* a turn cut by the length limit still gets closed, as ChatML expects */
    if (token != c->im_end && c->im_end >= 0 && gen_seq_append(seq, &c->im_end, 1) != MART_OK) {
        fprintf(stderr, "[context full: /reset to start over]");
        c->reset = true;
        return GEN_STOP;
    }
    if (env_build_chat(c->tok, NULL, c->line, true, &ids, &n, &err) != MART_OK ||
        gen_seq_append(seq, ids, n) != MART_OK) {
        fprintf(stderr, "[context full: /reset to start over]");
        free(ids);
        c->reset = true;
        return GEN_STOP;
    }
    free(ids);
    c->turn_tokens = 0;
    tok_stream_init(&c->ts);
    return GEN_CONTINUE;
}

int cmd_chat(int argc, char **argv) {
    const char *model_dir = NULL, *tok_path = NULL;
    const char *system = "You are a helpful assistant.";
    int32_t max_tokens = 512, context = 4096, top_k = 0;
    float temperature = 0.7f, top_p = 0.9f;
    int64_t seed = 0;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "model directory (config.json, model.safetensors)"},
        {"tokenizer", CLI_STR, &tok_path, "tokenizer.json or its directory (default: --model)"},
        {"system", CLI_STR, &system, "system message (\"\" = none)"},
        {"max-tokens", CLI_INT, &max_tokens, "new tokens per reply at most"},
        {"context", CLI_INT, &context, "conversation length in tokens (the KV cache)"},
        {"temperature", CLI_FLOAT, &temperature, "sampling temperature (0 = greedy)"},
        {"top-p", CLI_FLOAT, &top_p, "nucleus sampling mass (1 = off)"},
        {"top-k", CLI_INT, &top_k, "sample among the k likeliest tokens (0 = off)"},
        {"seed", CLI_INT64, &seed, "sampling seed"},
    };
    int pr = cli_parse("chat", "--model DIR [options]",
                       "Interactive multi-turn chat (ChatML) with streamed replies. Type a "
                       "message and Enter; /reset starts a new conversation; an empty line or "
                       "end of input quits. The history stays in the KV cache between turns.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!model_dir) {
        fprintf(stderr, "mart chat: --model is required (see mart chat --help)\n");
        return 2;
    }
    if (max_tokens < 1 || context < 2) {
        fprintf(stderr, "mart chat: --max-tokens must be positive and --context > 1\n");
        return 2;
    }
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    gen_engine *g = NULL;
    gen_config gc;
    gen_config_default(&gc);
    gc.max_batch = 1;
    gc.max_len = context;
    if (tok_load(tok_path ? tok_path : model_dir, &tok, &err) != MART_OK ||
        model_load(model_dir, false, &m, &err) != MART_OK ||
        gen_create(m, &gc, &g, &err) != MART_OK) {
        model_free(m);
        tok_free(tok);
        return cli_error("chat", &err);
    }
    chat_ctx c = {
        .tok = tok, .im_end = tok_special_id(tok, "<|im_end|>"), .turn_limit = max_tokens};
    int32_t stops[2], n_stops = 0;
    if (c.im_end >= 0) stops[n_stops++] = c.im_end;
    if (m->cfg.eos_token_id >= 0 && m->cfg.eos_token_id != c.im_end)
        stops[n_stops++] = m->cfg.eos_token_id;
    gen_params gp;
    gen_params_default(&gp);
    gp.temperature = temperature;
    gp.top_p = top_p;
    gp.top_k = top_k;
    gp.max_new_tokens = context; /* the whole conversation; --max-tokens limits each reply */
    gp.stop_ids = stops;
    gp.n_stop_ids = n_stops;
    int status = 0;
    for (uint64_t conv = 0; !c.quit; conv++) {
        c.reset = false;
        if (!read_user(&c)) continue;
        int32_t *ids = NULL, n = 0;
        int rc = env_build_chat(tok, system, c.line, false, &ids, &n, &err);
        if (rc == MART_OK && n >= context)
            rc = mart_fail(&err, "the first message does not fit --context %d", context);
        if (rc != MART_OK) {
            free(ids);
            status = cli_error("chat", &err);
            break;
        }
        gen_request req = {ids, (int32_t)n, conv, NULL};
        gen_result res;
        gp.seed = (uint64_t)seed;
        c.turn_tokens = 0;
        tok_stream_init(&c.ts);
        rc = gen_generate(g, &req, 1, &gp, on_token, &c, &res, &err);
        free(ids);
        gen_result_free(&res);
        if (rc != MART_OK) {
            status = cli_error("chat", &err);
            break;
        }
    }
    free(c.line);
    gen_free(g);
    model_free(m);
    tok_free(tok);
    return status;
}
