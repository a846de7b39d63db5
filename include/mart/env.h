/* env: the multi-attempt environment of ../shared/SPEC.md. Builds the ChatML prompt, watches
 * each generated token for a complete \boxed{...}, grades attempts, appends the feedback turn
 * to the live sequence, and turns an episode into tokens + masks + reward for RL. Episodes
 * are token-in/token-out: sampled ids are never decoded and re-encoded. */
#ifndef MART_ENV_H
#define MART_ENV_H

#include "mart/gen.h"
#include "mart/grade.h"
#include "mart/tok.h"

typedef struct {
    int32_t min_attempts, max_attempts; /* N drawn uniformly in training; paper: 1..5 */
    int32_t max_tokens;          /* sampled tokens per episode, all attempts: 3000 (SPEC §3) */
    int32_t chunk;               /* check for a box every `chunk` tokens; 1 = every token (mart),
                                    64 = the reference's token_per_step */
    double discount;             /* reward for a correct answer = discount^attempts_used (SPEC §2);
                                    1 = no discount (paper) */
    bool repeat_question;        /* the "repeat question" prompt/feedback variant */
    bool baseline_prompt;        /* single-turn: the plain Qwen math system prompt */
    bool study_baseline;         /* the study's single-turn baseline task (SPEC §3): no stop at
                                    a boxed answer (the turn runs to its end or the budget); the
                                    answer read with the Qwen parser's fallbacks (last box, else
                                    "the answer is", else the last number); reward +1 right,
                                    -0.5 wrong when the text contains "boxed", -1 otherwise */
    const char *system_template; /* NULL = SPEC's; "{N}" = attempts allowed */
    const char *feedback_template; /* NULL = SPEC's system text of the feedback turn;
                                      "{n}" = attempts left */
    grade_config grade;
} env_config;

void env_config_default(env_config *c);

typedef struct {
    const char *question;
    const char *gold;
} env_problem;

typedef enum {
    ENV_ATTEMPT_WRONG = 1,  /* boxed answer, wrong */
    ENV_ATTEMPT_RIGHT = 2,  /* boxed answer, right */
    ENV_ATTEMPT_NO_BOX = 3, /* turn ended without a boxed answer */
    ENV_ATTEMPT_BUDGET = 4, /* token budget ran out */
} env_attempt_status;

typedef struct {
    char *text;   /* the model's text of this attempt */
    char *answer; /* extracted answer or NULL */
    env_attempt_status status;
    int32_t n_tokens; /* sampled tokens in this attempt */
} env_attempt;

typedef struct {
    int32_t attempts_allowed;
    int32_t *tokens; /* (n_tokens) prompt, then every model and feedback token */
    int32_t n_tokens;
    int32_t n_prompt;
    uint8_t *trainable;    /* (n_tokens) 1 iff the model sampled the token */
    float *logprobs;       /* (n_tokens) sampling log-probs; 0 where not trainable */
    env_attempt *attempts; /* (n_attempts) */
    int32_t n_attempts;
    bool correct;
    float reward; /* SPEC §2 */
    int32_t n_sampled;
} env_episode;

void env_episode_free(env_episode *e);

/* ---- the per-episode state machine (no model needed: tests drive it with scripted ids) ----
 *
 *   env_session s;
 *   env_episode_begin(&s, tok, cfg, &problem, n_attempts, &ep, &err);  // ep.tokens = prompt
 *   for each sampled id:
 *       switch (env_episode_on_token(&s, id, logprob, engine_out_of_room)) {
 *       case ENV_STEP_CONTINUE: sample the next token; break;
 *       case ENV_STEP_FEEDBACK: feed s.feedback[0..s.n_feedback) to the model, go on; break;
 *       case ENV_STEP_DONE:     ep is complete (reward set); stop; break;
 *       }
 *   env_session_free(&s); ... env_episode_free(&ep);
 */
typedef enum {
    ENV_STEP_CONTINUE = 0, /* keep sampling */
    ENV_STEP_FEEDBACK = 1, /* the feedback turn s.feedback (already recorded in the episode,
                              not trainable) must be appended before sampling goes on */
    ENV_STEP_DONE = 2,     /* the episode is over; its reward is set */
} env_step;

typedef struct {
    const tok_tokenizer *tok;    /* not owned */
    const env_config *cfg;       /* not owned */
    const char *question, *gold; /* not owned */
    env_episode *ep;             /* the episode being written (owned by the caller) */
    int32_t remaining;           /* attempts left, the current one included */
    int32_t attempt_tokens;      /* sampled tokens in the current attempt */
    mart_buf text;               /* bytes of the current attempt (for grading only) */
    int64_t box_from;            /* offset of the first "box" in text, -1 when none: every box
                                    form contains it, so the check starts there (O(1) per token
                                    until a box begins) */
    int32_t *feedback;           /* (n_feedback) the last feedback turn's ids */
    int32_t n_feedback;
    int32_t id_im_start, id_im_end, id_eot; /* ChatML specials; id_eot may be -1. Without
                                               ChatML tokens: -1, -1 and the eos (the
                                               markers are text) */
    int32_t cap;                            /* capacity of ep->tokens/trainable/logprobs */
    bool done;
} env_session;

/* Starts an episode of `attempts` attempts (>= 1) on problem p: fills ep (zeroed first) with
 * the prompt ids, none trainable. The session keeps pointers to tok, cfg and p's strings:
 * they must outlive it. A tokenizer without the ChatML specials gets the markers as text and
 * its eos ends a turn. Errors: no ChatML specials and no eos_token, a failed encode. */
int env_episode_begin(env_session *s, const tok_tokenizer *tok, const env_config *cfg,
                      const env_problem *p, int32_t attempts, env_episode *ep, mart_err *err);
/* Consumes one id sampled by the model (recorded as trainable with its log-prob) and says
 * what happens next. `out_of_room` = the engine cannot sample after this token (its own
 * length limit); the session also stops by itself after cfg->max_tokens sampled tokens. The
 * turn ends on <|im_end|> or <|endoftext|>. Must not be called once DONE was returned. */
env_step env_episode_on_token(env_session *s, int32_t id, float logprob, bool out_of_room);
/* The engine could not take the feedback turn just returned (no room left): removes it
 * from the episode and ends the episode (the failed attempt stays the last one). */
void env_episode_cancel_feedback(env_session *s);
/* Ends an episode the engine stopped without the session deciding it (treated as the
 * budget running out). No-op when already done. */
void env_episode_force_end(env_session *s);
void env_session_free(env_session *s);

/* The prompt ids for `attempts` attempts, malloc'd into *ids (n ids). */
int env_build_prompt(const tok_tokenizer *tok, const env_config *cfg, const char *question,
                     int32_t attempts, int32_t **ids, int32_t *n, mart_err *err);
/* The feedback turn's ids with `left` attempts left; `turn_closed` = the model already
 * sampled <|im_end|> (the turn then starts with "\n"); otherwise (a box mid-turn, or the
 * model's <|endoftext|>) it opens with our <|im_end|>. malloc'd into *ids. */
int env_build_feedback(const tok_tokenizer *tok, const env_config *cfg, const char *question,
                       int32_t left, bool turn_closed, int32_t **ids, int32_t *n, mart_err *err);
/* The most tokens a feedback turn takes for any of the n questions (only the repeat-question
 * variant repeats the question in the turn; otherwise one turn is measured), with two digits
 * of attempts left: the room to reserve per feedback turn when sizing sequences. */
int env_feedback_room(const tok_tokenizer *tok, const env_config *cfg,
                      const char *const *questions, int32_t n, int32_t *room, mart_err *err);
/* The text of the system turn for `attempts` attempts and of the feedback turn's system
 * message with `left` attempts left, as cfg selects them (malloc'd, without the role line). */
/* A chat exchange's next prompt in ChatML: an optional system turn (system NULL or ""), the
 * user's turn, then the assistant's header, as ids (*ids malloc'd). after_turn: the sequence
 * already holds an earlier turn closed by <|im_end|>, so this starts with its "\n". The
 * prompts of the environment are built the same way. */
int env_build_chat(const tok_tokenizer *tok, const char *system, const char *user,
                   bool after_turn, int32_t **ids, int32_t *n, mart_err *err);
char *env_system_text(const env_config *cfg, int32_t attempts);
char *env_feedback_text(const env_config *cfg, int32_t left);
/* SPEC §2's reward of a finished episode (from its attempts). */
float env_episode_reward(const env_episode *e, const env_config *cfg);
/* "wrong", "right", "no_box", "budget". */
const char *env_attempt_status_name(env_attempt_status s);
/* Draws N uniformly in [cfg->min_attempts, cfg->max_attempts] from r. */
int32_t env_draw_attempts(const env_config *cfg, mart_rng *r);

/* Runs one episode per problem through the generation engine (continuous batching across
 * episodes; the KV cache is kept across attempts, a feedback turn is only prefilled).
 * attempts[i] is the number of attempts problem i gets; episode i samples from RNG stream
 * stream_base + i. Sampling settings come from p, except max_new_tokens (= cfg->max_tokens)
 * and the stop ids (<|im_end|>, <|endoftext|>). Episodes are returned in input order (free
 * each with env_episode_free). `progress_label` may be NULL (no bar). */
int env_run(gen_engine *g, const tok_tokenizer *tok, const env_config *cfg,
            const env_problem *problems, const int32_t *attempts, int32_t n, const gen_params *p,
            uint64_t stream_base, const char *progress_label, env_episode *out, mart_err *err);

/* Called when episode i is complete (from the generation loop; serialised). */
/* Called as episode i completes. Returns false to halt the run: every other episode stops at
 * its next token and env_run_ex fails with "halted" (the caller says why: a failed write, a
 * stop request). */
typedef bool (*env_done_fn)(void *ctx, int32_t i, const env_episode *ep);
/* env_run with a completion hook instead of the built-in progress bar (on_done may be NULL)
 * and a sampling stream of its own for each request (streams: (n)), so that an episode's
 * samples can depend on what it is, not on where it sits in a batch. */
int env_run_ex(gen_engine *g, const tok_tokenizer *tok, const env_config *cfg,
               const env_problem *problems, const int32_t *attempts, int32_t n, const gen_params *p,
               const uint64_t *streams, env_done_fn on_done, void *ctx, env_episode *out,
               mart_err *err);

#endif
