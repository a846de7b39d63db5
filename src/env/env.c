/* The multi-attempt environment (SPEC §1-§2): prompt and feedback construction from ChatML
 * specials + encoded text pieces, the per-episode state machine, and env_run, which wires
 * the state machine into the generation engine's per-token callback. */
#include "mart/env.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* SPEC §1, exact text. "{N}" is the number of attempts, "{n}" the attempts left. */
static const char SYSTEM_MULTI[] =
    "Please reason step by step, and put your final answer within \\boxed{}. You have {N} "
    "attempts to answer the questions, and you should provide the full reasoning steps in each "
    "attempt.";
static const char SYSTEM_REPEAT[] =
    "Please reason step by step, and put your final answer within \\boxed{}. You have {N} "
    "attempts to answer the question.";
static const char SYSTEM_BASELINE[] =
    "Please reason step by step, and put your final answer within \\boxed{}.";
static const char FEEDBACK_MULTI[] =
    "Your answer is incorrect. You have {n} attempts left. Try an alternative.";
static const char FEEDBACK_REPEAT[] =
    "Your answer is incorrect. Try an alternative. You have {n} attempts to answer the "
    "question.";

/* Paper defaults (SPEC §1, §3). */
#define ENV_MIN_ATTEMPTS 1
#define ENV_MAX_ATTEMPTS 5
#define ENV_MAX_TOKENS 3000
#define ENV_CHUNK 1 /* mart checks every token; the reference's token_per_step is 64 */

void env_config_default(env_config *c) {
    memset(c, 0, sizeof *c);
    c->min_attempts = ENV_MIN_ATTEMPTS;
    c->max_attempts = ENV_MAX_ATTEMPTS;
    c->max_tokens = ENV_MAX_TOKENS;
    c->chunk = ENV_CHUNK;
    c->discount = 1.0;
    grade_config_default(&c->grade);
}

const char *env_attempt_status_name(env_attempt_status s) {
    switch (s) {
    case ENV_ATTEMPT_WRONG:
        return "wrong";
    case ENV_ATTEMPT_RIGHT:
        return "right";
    case ENV_ATTEMPT_NO_BOX:
        return "no_box";
    case ENV_ATTEMPT_BUDGET:
        return "budget";
    }
    return "?";
}

int32_t env_draw_attempts(const env_config *cfg, mart_rng *r) {
    int32_t lo = cfg->min_attempts, hi = cfg->max_attempts < lo ? lo : cfg->max_attempts;
    return (int32_t)mart_rng_range(r, lo, hi);
}

/* ---- prompt and feedback pieces ---- */

/* Replaces every `key` in tmpl by the decimal value v, appending to b. */
static void subst_int(mart_buf *b, const char *tmpl, const char *key, int32_t v) {
    size_t kl = strlen(key);
    for (const char *s = tmpl;;) {
        const char *h = strstr(s, key);
        if (!h) {
            mart_buf_append(b, s, strlen(s));
            break;
        }
        mart_buf_append(b, s, (size_t)(h - s));
        mart_buf_printf(b, "%d", v);
        s = h + kl;
    }
}

/* Ids being built. Text waits in `text` and is encoded in one piece when a special id follows
 * or the building ends, so each stretch between special tokens is tokenized as the whole
 * string would be (it matters for SentencePiece-style tokenizers, which prefix a space to
 * every piece they encode). */
typedef struct {
    int32_t *ids;
    int64_t n;
    mart_buf text;
} idvec;

static void push_text(idvec *v, const char *text, size_t len) {
    mart_buf_append(&v->text, text, len);
}

static int flush_text(idvec *v, const tok_tokenizer *tok, mart_err *err) {
    if (v->text.len == 0) return MART_OK;
    int rc = tok_encode(tok, v->text.data, v->text.len, &v->ids, &v->n, err);
    v->text.len = 0;
    return rc;
}

/* A ChatML marker: its special id, or its text when the tokenizer has none (id < 0). */
static int push_special(idvec *v, const tok_tokenizer *tok, int32_t id, const char *marker,
                        mart_err *err) {
    if (id < 0) {
        push_text(v, marker, strlen(marker));
        return MART_OK;
    }
    if (flush_text(v, tok, err) != MART_OK) return MART_ERR;
    v->ids = mart_xrealloc(v->ids, (size_t)(v->n + 1) * sizeof *v->ids);
    v->ids[v->n++] = id;
    return MART_OK;
}

/* Ends the building: encodes the text left; frees everything on failure. */
static int idvec_finish(idvec *v, const tok_tokenizer *tok, int rc, int32_t **ids, int32_t *n,
                        mart_err *err) {
    if (rc == MART_OK) rc = flush_text(v, tok, err);
    mart_buf_free(&v->text);
    if (rc != MART_OK) {
        free(v->ids);
        return MART_ERR;
    }
    *ids = v->ids;
    *n = (int32_t)v->n;
    return MART_OK;
}

/* The ChatML special ids. A tokenizer without them (a base model's, e.g. Llama 2's) gets the
 * ChatML markers as text: *im_start and *im_end are -1 and a turn ends at the tokenizer's
 * eos (*eot) instead. */
static int special_ids(const tok_tokenizer *tok, int32_t *im_start, int32_t *im_end, int32_t *eot,
                       mart_err *err) {
    *im_start = tok_special_id(tok, "<|im_start|>");
    *im_end = tok_special_id(tok, "<|im_end|>");
    if (*im_start < 0 || *im_end < 0) {
        *im_start = *im_end = -1;
        if (tok_eos_id(tok) < 0)
            return mart_fail(err, "the tokenizer has neither the ChatML special tokens "
                                  "<|im_start|>/<|im_end|> nor an eos_token to end a turn");
        if (eot) *eot = tok_eos_id(tok);
        return MART_OK;
    }
    if (eot) *eot = tok_special_id(tok, "<|endoftext|>");
    return MART_OK;
}

/* One ChatML turn without its closing <|im_end|>: <|im_start|> role "\n" body. */
static int push_turn_open(idvec *v, const tok_tokenizer *tok, int32_t im_start, const char *role,
                          const char *body, size_t body_len, mart_err *err) {
    if (push_special(v, tok, im_start, "<|im_start|>", err) != MART_OK) return MART_ERR;
    push_text(v, role, strlen(role));
    push_text(v, "\n", 1);
    push_text(v, body, body_len);
    return MART_OK;
}

/* Closes a turn: <|im_end|> "\n". */
static int push_turn_close(idvec *v, const tok_tokenizer *tok, int32_t im_end, mart_err *err) {
    if (push_special(v, tok, im_end, "<|im_end|>", err) != MART_OK) return MART_ERR;
    push_text(v, "\n", 1);
    return MART_OK;
}

static const char *system_template(const env_config *cfg) {
    return cfg->system_template   ? cfg->system_template
           : cfg->baseline_prompt ? SYSTEM_BASELINE
           : cfg->repeat_question ? SYSTEM_REPEAT
                                  : SYSTEM_MULTI;
}

static const char *feedback_template(const env_config *cfg) {
    return cfg->feedback_template ? cfg->feedback_template
           : cfg->repeat_question ? FEEDBACK_REPEAT
                                  : FEEDBACK_MULTI;
}

int env_build_chat(const tok_tokenizer *tok, const char *system, const char *user,
                   bool after_turn, int32_t **ids, int32_t *n, mart_err *err) {
    int32_t im_start, im_end;
    if (special_ids(tok, &im_start, &im_end, NULL, err) != MART_OK) return MART_ERR;
    idvec v = {0};
    int rc = MART_OK;
    if (after_turn) push_text(&v, "\n", 1);
    if (system && *system) {
        rc = push_turn_open(&v, tok, im_start, "system", system, strlen(system), err);
        if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    }
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "user", user, strlen(user), err);
    if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "assistant", "", 0, err);
    return idvec_finish(&v, tok, rc, ids, n, err);
}

char *env_system_text(const env_config *cfg, int32_t attempts) {
    mart_buf b = {0};
    subst_int(&b, system_template(cfg), "{N}", attempts);
    return b.data ? b.data : mart_xstrdup("");
}

char *env_feedback_text(const env_config *cfg, int32_t left) {
    mart_buf b = {0};
    subst_int(&b, feedback_template(cfg), "{n}", left);
    return b.data ? b.data : mart_xstrdup("");
}

int env_build_prompt(const tok_tokenizer *tok, const env_config *cfg, const char *question,
                     int32_t attempts, int32_t **ids, int32_t *n, mart_err *err) {
    int32_t im_start, im_end;
    if (special_ids(tok, &im_start, &im_end, NULL, err) != MART_OK) return MART_ERR;
    char *sys = env_system_text(cfg, attempts);
    idvec v = {0};
    size_t ql = strlen(question);
    int rc = push_turn_open(&v, tok, im_start, "system", sys, strlen(sys), err);
    if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "user", question, ql, err);
    if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "assistant", "", 0, err);
    free(sys);
    if (idvec_finish(&v, tok, rc, ids, n, err) != MART_OK)
        return mart_fail_wrap(err, "building the prompt");
    return MART_OK;
}

int env_build_feedback(const tok_tokenizer *tok, const env_config *cfg, const char *question,
                       int32_t left, bool turn_closed, int32_t **ids, int32_t *n, mart_err *err) {
    int32_t im_start, im_end;
    if (special_ids(tok, &im_start, &im_end, NULL, err) != MART_OK) return MART_ERR;
    char *msg = env_feedback_text(cfg, left);
    idvec v = {0};
    /* The model's turn is closed by <|im_end|>: ours unless the model sampled it itself. */
    int rc = MART_OK;
    if (turn_closed)
        push_text(&v, "\n", 1);
    else
        rc = push_turn_close(&v, tok, im_end, err);
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "system", msg, strlen(msg), err);
    if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    if (rc == MART_OK && cfg->repeat_question) {
        rc = push_turn_open(&v, tok, im_start, "user", question, strlen(question), err);
        if (rc == MART_OK) rc = push_turn_close(&v, tok, im_end, err);
    }
    if (rc == MART_OK) rc = push_turn_open(&v, tok, im_start, "assistant", "", 0, err);
    free(msg);
    if (idvec_finish(&v, tok, rc, ids, n, err) != MART_OK)
        return mart_fail_wrap(err, "building the feedback turn");
    return MART_OK;
}

/* ---- episodes ---- */

void env_episode_free(env_episode *e) {
    if (!e) return;
    free(e->tokens);
    free(e->trainable);
    free(e->logprobs);
    for (int32_t i = 0; i < e->n_attempts; i++) {
        free(e->attempts[i].text);
        free(e->attempts[i].answer);
    }
    free(e->attempts);
    memset(e, 0, sizeof *e);
}

float env_episode_reward(const env_episode *e, const env_config *cfg) {
    bool boxed = false;
    for (int32_t i = 0; i < e->n_attempts; i++) {
        if (e->attempts[i].status == ENV_ATTEMPT_RIGHT)
            return (float)pow(cfg->discount, (double)e->n_attempts);
        /* the study's baseline: "boxed" anywhere in the text, whatever the parser found */
        if (cfg->study_baseline ? e->attempts[i].text && strstr(e->attempts[i].text, "boxed")
                                : e->attempts[i].answer != NULL)
            boxed = true;
    }
    /* SPEC §2: -0.5 when some attempt gave a (wrong) boxed answer, -1 when none did. */
    return boxed ? -0.5f : -1.0f;
}

static void ep_reserve(env_session *s, int32_t extra) {
    env_episode *e = s->ep;
    if (e->n_tokens + extra <= s->cap) return;
    int32_t cap = s->cap ? s->cap : 256;
    while (cap < e->n_tokens + extra)
        cap *= 2;
    e->tokens = mart_xrealloc(e->tokens, (size_t)cap * sizeof *e->tokens);
    e->trainable = mart_xrealloc(e->trainable, (size_t)cap * sizeof *e->trainable);
    e->logprobs = mart_xrealloc(e->logprobs, (size_t)cap * sizeof *e->logprobs);
    s->cap = cap;
}

static void ep_push(env_session *s, const int32_t *ids, int32_t n, bool trainable, float logprob) {
    ep_reserve(s, n);
    env_episode *e = s->ep;
    for (int32_t i = 0; i < n; i++) {
        e->tokens[e->n_tokens] = ids[i];
        e->trainable[e->n_tokens] = trainable;
        e->logprobs[e->n_tokens] = trainable ? logprob : 0.0f;
        e->n_tokens++;
    }
}

int env_episode_begin(env_session *s, const tok_tokenizer *tok, const env_config *cfg,
                      const env_problem *p, int32_t attempts, env_episode *ep, mart_err *err) {
    assert(attempts >= 1);
    memset(s, 0, sizeof *s);
    memset(ep, 0, sizeof *ep);
    s->tok = tok;
    s->cfg = cfg;
    s->question = p->question;
    s->gold = p->gold;
    s->ep = ep;
    s->remaining = attempts;
    s->box_from = -1;
    if (special_ids(tok, &s->id_im_start, &s->id_im_end, &s->id_eot, err) != MART_OK)
        return MART_ERR;
    int32_t *ids = NULL, n = 0;
    if (env_build_prompt(tok, cfg, p->question, attempts, &ids, &n, err) != MART_OK)
        return MART_ERR;
    ep->attempts_allowed = attempts;
    ep_push(s, ids, n, false, 0);
    ep->n_prompt = n;
    free(ids);
    return MART_OK;
}

void env_session_free(env_session *s) {
    mart_buf_free(&s->text);
    free(s->feedback);
    memset(s, 0, sizeof *s);
}

/* Closes the current attempt with a status and its extracted answer (owned). */
static void close_attempt(env_session *s, env_attempt_status st, char *answer) {
    env_episode *e = s->ep;
    e->attempts = mart_xrealloc(e->attempts, (size_t)(e->n_attempts + 1) * sizeof *e->attempts);
    env_attempt *a = &e->attempts[e->n_attempts++];
    a->text = mart_xmalloc(s->text.len + 1);
    if (s->text.len) memcpy(a->text, s->text.data, s->text.len);
    a->text[s->text.len] = 0;
    a->answer = answer;
    a->status = st;
    a->n_tokens = s->attempt_tokens;
    if (st == ENV_ATTEMPT_RIGHT) e->correct = true;
    s->text.len = 0;
    s->box_from = -1;
    s->attempt_tokens = 0;
}

/* The grader sees the attempt from just before its first "box" (room for the backslash and
 * "\frame"): nothing earlier can be part of a box. */
static size_t box_scan_from(const env_session *s) {
    return s->box_from >= 8 ? (size_t)s->box_from - 8 : 0;
}

/* Mid-attempt: whether a complete box is there (a bare `\boxed 5` counts once a space
 * follows the word). */
static bool has_box(const env_session *s) {
    if (s->box_from < 0) return false;
    size_t from = box_scan_from(s);
    return grade_has_boxed(s->text.data + from, s->text.len - from);
}

/* The attempt's boxed answer (malloc'd) or NULL. Only boxes count in the environment, so
 * the grader's evaluation-only "the answer is" fallback is off here. */
static char *extract_box(const env_session *s) {
    if (s->box_from < 0) return NULL;
    grade_config gc = s->cfg->grade;
    gc.fallback_extract = false;
    size_t from = box_scan_from(s);
    return grade_extract(s->text.data + from, s->text.len - from, &gc);
}

/* The Qwen math parser's last resort: the last match of -?\d*\.?\d+ in the text with its
 * commas removed, malloc'd, or NULL. */
static char *last_number(const char *text, size_t len) {
    char *t = mart_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != ',') t[n++] = text[i];
    t[n] = 0;
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (t[j] == '-') j++;
        size_t d0 = j;
        while (j < n && t[j] >= '0' && t[j] <= '9')
            j++;
        size_t int_end = j;
        if (j < n && t[j] == '.' && j + 1 < n && t[j + 1] >= '0' && t[j + 1] <= '9') {
            j++;
            while (j < n && t[j] >= '0' && t[j] <= '9')
                j++;
        } else if (int_end == d0) {
            i++;
            continue;
        }
        best = t + i;
        best_len = j - i;
        i = j;
    }
    char *r = best ? mart_xstrdup(best) : NULL;
    if (r) r[best_len] = 0;
    free(t);
    return r;
}

/* The study's baseline answer: the last box, else "the answer is ...", else the last number. */
static char *extract_baseline(const env_session *s) {
    grade_config gc = s->cfg->grade;
    gc.fallback_extract = true;
    char *a = grade_extract(s->text.data, s->text.len, &gc);
    return a ? a : last_number(s->text.data, s->text.len);
}

/* A problem without a gold answer (NULL) can never be solved. */
static bool is_right(const env_session *s, const char *answer) {
    return s->gold && grade_equal(answer, s->gold, &s->cfg->grade);
}

static env_step finish(env_session *s) {
    s->done = true;
    s->ep->reward = env_episode_reward(s->ep, s->cfg);
    return ENV_STEP_DONE;
}

env_step env_episode_on_token(env_session *s, int32_t id, float logprob, bool out_of_room) {
    assert(!s->done);
    assert(id >= 0 && isfinite(logprob));
    env_episode *e = s->ep;
    const env_config *cfg = s->cfg;
    ep_push(s, &id, 1, true, logprob);
    e->n_sampled++;
    s->attempt_tokens++;
    bool turn_end =
        (s->id_im_end >= 0 && id == s->id_im_end) || (s->id_eot >= 0 && id == s->id_eot);
    if (!turn_end) {
        size_t len = 0, old = s->text.len;
        const char *b = tok_token_bytes(s->tok, id, &len);
        if (b) mart_buf_append(&s->text, b, len);
        if (s->box_from < 0 && s->text.len >= 3) {
            size_t from = old >= 2 ? old - 2 : 0;
            const char *h = memmem(s->text.data + from, s->text.len - from, "box", 3);
            if (h) s->box_from = h - s->text.data;
        }
    }
    bool budget_end = out_of_room || (cfg->max_tokens > 0 && e->n_sampled >= cfg->max_tokens);
    int32_t chunk = cfg->chunk > 0 ? cfg->chunk : 1;
    bool check = turn_end || budget_end || s->attempt_tokens % chunk == 0;
    /* At the end of the turn or budget the text is final: a trailing `\boxed 5` counts. */
    char *answer = NULL;
    if (cfg->study_baseline) {
        if (turn_end || budget_end) answer = extract_baseline(s);
    } else if (turn_end || budget_end || (check && has_box(s))) {
        answer = extract_box(s);
    }
    env_attempt_status st;
    if (answer)
        st = is_right(s, answer) ? ENV_ATTEMPT_RIGHT : ENV_ATTEMPT_WRONG;
    else if (turn_end)
        st = ENV_ATTEMPT_NO_BOX;
    else if (budget_end)
        st = ENV_ATTEMPT_BUDGET;
    else
        return ENV_STEP_CONTINUE;

    close_attempt(s, st, answer);
    if (st == ENV_ATTEMPT_RIGHT || st == ENV_ATTEMPT_BUDGET || s->remaining <= 1 || budget_end)
        return finish(s);
    /* A wrong or missing answer with attempts left (SPEC §1): remaining drops by one and the
     * feedback turn tells the model how many are left. */
    s->remaining--;
    free(s->feedback);
    s->feedback = NULL;
    s->n_feedback = 0;
    mart_err err;
    if (env_build_feedback(s->tok, cfg, s->question, s->remaining, id == s->id_im_end, &s->feedback,
                           &s->n_feedback, &err) != MART_OK)
        return finish(s); /* the prompt encoded, so this cannot fail on input */
    ep_push(s, s->feedback, s->n_feedback, false, 0);
    return ENV_STEP_FEEDBACK;
}

void env_episode_cancel_feedback(env_session *s) {
    assert(!s->done && s->ep->n_tokens >= s->n_feedback);
    s->ep->n_tokens -= s->n_feedback;
    s->n_feedback = 0;
    finish(s);
}

void env_episode_force_end(env_session *s) {
    if (s->done) return;
    if (s->attempt_tokens > 0 || s->ep->n_attempts == 0) {
        char *answer = s->cfg->study_baseline ? extract_baseline(s) : extract_box(s);
        env_attempt_status st = !answer               ? ENV_ATTEMPT_BUDGET
                                : is_right(s, answer) ? ENV_ATTEMPT_RIGHT
                                                      : ENV_ATTEMPT_WRONG;
        close_attempt(s, st, answer);
    }
    finish(s);
}

/* ---- env_run: the state machine inside the generation engine's callback ---- */

typedef struct {
    env_done_fn on_done;
    void *ctx;
    env_session *sessions;
    bool halted; /* on_done said stop */
} run_ctx;

static gen_action on_gen_token(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                               gen_finish fin) {
    run_ctx *rc = ctx;
    env_session *s = user;
    if (s->done || rc->halted) return GEN_STOP;
    env_step st = env_episode_on_token(s, token, logprob, fin == GEN_FINISH_LENGTH);
    if (st == ENV_STEP_FEEDBACK) {
        if (gen_seq_append(seq, s->feedback, s->n_feedback) == MART_OK) return GEN_CONTINUE;
        env_episode_cancel_feedback(s);
        st = ENV_STEP_DONE;
    }
    if (st == ENV_STEP_DONE) {
        if (rc->on_done && !rc->on_done(rc->ctx, (int32_t)(s - rc->sessions), s->ep))
            rc->halted = true;
        return GEN_STOP;
    }
    return GEN_CONTINUE;
}

int env_run_ex(gen_engine *g, const tok_tokenizer *tok, const env_config *cfg,
               const env_problem *problems, const int32_t *attempts, int32_t n, const gen_params *p,
               const uint64_t *streams, env_done_fn on_done, void *ctx, env_episode *out,
               mart_err *err) {
    if (n <= 0) return MART_OK;
    env_session *ss = mart_xcalloc((size_t)n, sizeof *ss);
    gen_request *reqs = mart_xcalloc((size_t)n, sizeof *reqs);
    gen_result *res = mart_xcalloc((size_t)n, sizeof *res);
    int rc = MART_OK;
    int32_t begun = 0;
    for (; begun < n; begun++) {
        int32_t i = begun;
        if (env_episode_begin(&ss[i], tok, cfg, &problems[i], attempts[i], &out[i], err) !=
            MART_OK) {
            rc = mart_fail_wrap(err, "problem %d", i);
            break;
        }
        reqs[i].prompt = out[i].tokens;
        reqs[i].n_prompt = out[i].n_prompt;
        reqs[i].stream = streams[i];
        reqs[i].user = &ss[i];
    }
    if (rc == MART_OK) {
        gen_params gp = *p;
        gp.max_new_tokens = cfg->max_tokens;
        int32_t stops[2], n_stops = 0;
        if (ss[0].id_im_end >= 0) stops[n_stops++] = ss[0].id_im_end;
        if (ss[0].id_eot >= 0) stops[n_stops++] = ss[0].id_eot;
        gp.stop_ids = stops;
        gp.n_stop_ids = n_stops;
        run_ctx c = {on_done, ctx, ss, false};
        /* Requests get their own copy of the prompt: the session grows (and may move)
         * ep->tokens from the callback while the engine may still read the prompt. */
        int32_t **prompts = mart_xcalloc((size_t)n, sizeof *prompts);
        for (int32_t i = 0; i < n; i++) {
            prompts[i] = mart_xmalloc((size_t)out[i].n_prompt * sizeof(int32_t));
            memcpy(prompts[i], out[i].tokens, (size_t)out[i].n_prompt * sizeof(int32_t));
            reqs[i].prompt = prompts[i];
        }
        rc = gen_generate(g, reqs, n, &gp, on_gen_token, &c, res, err);
        if (rc == MART_OK && c.halted) rc = mart_fail(err, "halted");
        for (int32_t i = 0; i < n; i++) {
            if (rc == MART_OK && !ss[i].done) {
                env_episode_force_end(&ss[i]);
                if (on_done && !on_done(ctx, i, &out[i])) rc = mart_fail(err, "halted");
            }
            free(prompts[i]);
            gen_result_free(&res[i]);
        }
        free(prompts);
    }
    for (int32_t i = 0; i < begun; i++)
        env_session_free(&ss[i]);
    if (rc != MART_OK)
        for (int32_t i = 0; i < n; i++)
            env_episode_free(&out[i]);
    free(ss);
    free(reqs);
    free(res);
    return rc;
}

typedef struct {
    mart_progress bar;
    int64_t done, correct, sampled;
} run_progress;

static bool progress_done(void *ctx, int32_t i, const env_episode *ep) {
    run_progress *rp = ctx;
    rp->done++;
    rp->correct += ep->correct;
    rp->sampled += ep->n_sampled;
    double el = mart_now() - rp->bar.t_start;
    char extra[96];
    snprintf(extra, sizeof extra, "acc %.1f%% | %.0f tok/s",
             100.0 * (double)rp->correct / (double)rp->done,
             el > 0 ? (double)rp->sampled / el : 0.0);
    mart_progress_update(&rp->bar, rp->done, extra);
    return true;
}

int env_run(gen_engine *g, const tok_tokenizer *tok, const env_config *cfg,
            const env_problem *problems, const int32_t *attempts, int32_t n, const gen_params *p,
            uint64_t stream_base, const char *progress_label, env_episode *out, mart_err *err) {
    uint64_t *streams = mart_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *streams);
    for (int32_t i = 0; i < n; i++)
        streams[i] = stream_base + (uint64_t)i;
    run_progress rp = {0};
    if (progress_label) mart_progress_start(&rp.bar, progress_label, n);
    int rc = env_run_ex(g, tok, cfg, problems, attempts, n, p, streams,
                        progress_label ? progress_done : NULL, &rp, out, err);
    if (progress_label) mart_progress_finish(&rp.bar);
    free(streams);
    return rc;
}

int env_feedback_room(const tok_tokenizer *tok, const env_config *cfg,
                      const char *const *questions, int32_t n, int32_t *room, mart_err *err) {
    *room = 0;
    for (int32_t i = 0; i < (cfg->repeat_question ? n : 1); i++) {
        int32_t *fb = NULL, nfb = 0;
        if (env_build_feedback(tok, cfg, cfg->repeat_question ? questions[i] : "", 99, false, &fb,
                               &nfb, err) != MART_OK)
            return MART_ERR;
        free(fb);
        if (nfb > *room) *room = nfb;
    }
    return MART_OK;
}
