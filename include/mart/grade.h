/* grade: math answer extraction and equivalence. Turns a model response into a final answer
 * (last complete \boxed{...}) and decides whether it equals the gold answer: LaTeX is parsed
 * into expression trees and compared exactly (GMP rationals), numerically, or at random
 * points. Pure functions, thread-safe, with a hard bound on the work per comparison. */
#ifndef MART_GRADE_H
#define MART_GRADE_H

#include "mart/core.h"

struct cJSON;

typedef struct {
    double rel_tol;        /* numeric closeness, relative; 1e-4 as in the Qwen math grader */
    bool fallback_extract; /* "the answer is ..." when there is no box (evaluation only) */
    int64_t work_limit;    /* bound on parse/eval steps per comparison */
} grade_config;

void grade_config_default(grade_config *c);

/* The content of the last complete \boxed{...} / \boxed x / \fbox{...} in text, as a
 * malloc'd string, or NULL when there is none (an unclosed box is no answer). */
char *grade_extract(const char *text, size_t len, const grade_config *c);
/* True when text holds a complete boxed answer (cheap: the environment calls it after every
 * generated token). */
bool grade_has_boxed(const char *text, size_t len);
/* Whether pred and gold are the same answer (see docs/PERFORMANCE.md "Grader" for the rules).
 * What cannot be decided within c->work_limit, or involves values too large to compare
 * exactly (10^{10^6}), is not equal. Thread-safe; c may be NULL for the defaults. */
bool grade_equal(const char *pred, const char *gold, const grade_config *c);

/* The gold answer of a benchmark record, malloc'd: `bench` is one of aime24, amc23, math500,
 * minerva_math, olympiadbench, gsm8k, math (MATH: the solution's last box), or NULL/other for
 * `answer_key` (default "answer"). */
int grade_gold_answer(const struct cJSON *rec, const char *bench, const char *answer_key,
                      char **gold, mart_err *err);

#endif
