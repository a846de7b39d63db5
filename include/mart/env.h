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
    int32_t max_tokens;      /* sampled tokens per episode, all attempts: 3000 (SPEC §3) */
    int32_t chunk;           /* check for a box every `chunk` tokens; 1 = every token (mart),
                                64 = the reference's token_per_step */
    double discount;         /* reward for a correct answer = discount^(attempts_used-1) */
    bool repeat_question;    /* the "repeat question" prompt/feedback variant */
    bool baseline_prompt;    /* single-turn: the plain Qwen math system prompt */
    grade_config grade;
} env_config;

void env_config_default(env_config *c);

typedef struct {
    const char *question;
    const char *gold;
} env_problem;

typedef enum {
    ENV_ATTEMPT_WRONG = 1,   /* boxed answer, wrong */
    ENV_ATTEMPT_RIGHT = 2,   /* boxed answer, right */
    ENV_ATTEMPT_NO_BOX = 3,  /* turn ended without a boxed answer */
    ENV_ATTEMPT_BUDGET = 4,  /* token budget ran out */
} env_attempt_status;

typedef struct {
    char *text;              /* the model's text of this attempt */
    char *answer;            /* extracted answer or NULL */
    env_attempt_status status;
    int32_t n_tokens;        /* sampled tokens in this attempt */
} env_attempt;

typedef struct {
    int32_t attempts_allowed;
    int32_t *tokens;         /* (n_tokens) prompt, then every model and feedback token */
    int32_t n_tokens;
    int32_t n_prompt;
    uint8_t *trainable;      /* (n_tokens) 1 iff the model sampled the token */
    float *logprobs;         /* (n_tokens) sampling log-probs; 0 where not trainable */
    env_attempt *attempts;   /* (n_attempts) */
    int32_t n_attempts;
    bool correct;
    float reward;            /* SPEC §2 */
    int32_t n_sampled;
} env_episode;

void env_episode_free(env_episode *e);

/* Runs one episode per problem through the generation engine (continuous batching across
 * episodes). attempts[i] is the number of attempts problem i gets. Sampling settings come
 * from p (its max_new_tokens is replaced by cfg->max_tokens). Episodes are returned in input
 * order. `progress_label` may be NULL (no bar). */
int env_run(gen_engine *g, const tok_tokenizer *tok, const env_config *cfg,
            const env_problem *problems, const int32_t *attempts, int32_t n,
            const gen_params *p, uint64_t stream_base, const char *progress_label,
            env_episode *out, mart_err *err);

#endif
