/* task: the built-in synthetic math task family of the demo. Generates problems with exact
 * integer answers and short worked solutions ending in \boxed{answer}, in the MATH format
 * (problem / answer / solution / type / level), of graded difficulty: multi-digit arithmetic,
 * modular arithmetic, small linear equations and word problems. Splits are disjoint and
 * determined by the seed alone. Owns nothing beyond the items it returns. */
#ifndef MART_TASK_H
#define MART_TASK_H

#include "mart/core.h"

typedef enum {
    TASK_ADD = 0,  /* a + b */
    TASK_SUB = 1,  /* a - b, a >= b */
    TASK_MUL = 2,  /* a * b */
    TASK_MOD = 3,  /* remainder of a divided by m */
    TASK_EQ = 4,   /* solve a*x + b = c for an integer x */
    TASK_WORD = 5, /* one-step word problems (+, -, *, /) */
    TASK_N_KINDS = 6
} task_kind;

#define TASK_MAX_LEVEL 3 /* levels 1 (easy) .. 3 (hard) */

typedef struct {
    char *problem;  /* the question text */
    char *answer;   /* the exact answer, an integer in decimal */
    char *solution; /* a worked solution ending in \boxed{answer} */
    task_kind kind;
    int32_t level;  /* 1..TASK_MAX_LEVEL */
    /* sft items only, optional: a multi-attempt transcript of the imperfect solver below.
     * attempts_allowed = N of the prompt; attempts[0..n_attempts) are its worked solutions,
     * all but the last wrong; n_attempts == 0 when the item is a plain solution. */
    char **attempts;
    int32_t n_attempts, attempts_allowed;
} task_item;

/* A worked solution of it with a near-miss wrong final answer (a carry, a digit, another
 * remainder), malloc'd: what an imperfect solver writes. */
char *task_wrong_solution(const task_item *it, mart_rng *r);

/* Draws one problem of the given kind and level from r (level clamped to 1..MAX). */
void task_generate_one(mart_rng *r, task_kind kind, int32_t level, task_item *out);
void task_item_free(task_item *it);
void task_items_free(task_item *items, int64_t n);
/* "add", "sub", "mul", "mod", "eq", "word". */
const char *task_kind_name(task_kind k);

/* The three disjoint splits written by `mart tasks`. */
typedef struct {
    uint64_t seed;
    int64_t n_train; /* RL prompts */
    int64_t n_test;  /* evaluation */
    int64_t n_sft;   /* worked solutions for pretraining */
    double sft_retry_frac; /* fraction of sft items that are multi-attempt transcripts */
    double sft_repeat;     /* the solver's probability of repeating itself (TASK_SOLVER_REPEAT) */
} task_config;

/* The imperfect solver of the sft transcripts. Told that it is wrong, it repeats its last
 * attempt word for word with probability sft_repeat (default TASK_SOLVER_REPEAT), and
 * otherwise solves the problem again from scratch, wrong with a level-dependent probability
 * (a near miss). Under greedy decoding a model that imitates it mostly repeats itself, so the
 * base gains little from a second attempt; sampling shows it the alternative, which RL on the
 * multi-attempt task can learn to prefer (docs/DEMO.md). */
#define TASK_SOLVER_REPEAT 0.8
#define TASK_SOLVER_ERR_L1 0.15
#define TASK_SOLVER_ERR_L2 0.35
#define TASK_SOLVER_ERR_L3 0.5

void task_config_default(task_config *c);

/* Whether attempt a of a transcript is a pretraining target (`mart pretrain`). By default
 * only right attempts and word-for-word repeats are: a wrong attempt written from scratch is
 * context, so the base learns to repeat itself or to solve correctly, not to make the
 * solver's slips. With train_slips every attempt is a target (an honest imperfect solver;
 * docs/DEMO.md shows that a base trained so learns to avoid the rejected answer). */
bool task_attempt_is_target(const char *solution, const char *const *attempts, int32_t a,
                            bool train_slips);

typedef struct {
    task_item *train, *test, *sft;
    int64_t n_train, n_test, n_sft;
} task_splits;

/* Generates the splits: no problem text appears twice within or across splits. Each split
 * draws from its own RNG stream (test first, then train, then sft skipping problems already
 * taken), so the same config always gives the same items. Fails only when the problem space
 * is too small for the requested sizes. */
int task_generate_splits(const task_config *c, task_splits *out, mart_err *err);
void task_splits_free(task_splits *s);

/* Writes items as JSONL ({"problem","answer","solution","type","level"}, plus
 * "attempts_allowed" and "attempts" for transcripts), atomically. */
int task_write_jsonl(const char *path, const task_item *items, int64_t n, mart_err *err);
/* Generates the splits of c and writes DIR/train.jsonl, test.jsonl and sft.jsonl (DIR is
 * created), as `mart tasks` does. */
int task_write_splits(const task_config *c, const char *dir, mart_err *err);

#endif
