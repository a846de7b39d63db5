/* grade: math answer extraction and equivalence. Turns a model response into a final answer
 * (the final attempt's boxes) and decides whether it equals the gold answer: LaTeX is parsed
 * into expression trees and compared exactly (GMP rationals), numerically, or at random
 * points. Pure functions, thread-safe, with hard bounds on the work per comparison; a bound
 * reached gives an "undecided" verdict that names it. */
#ifndef MART_GRADE_H
#define MART_GRADE_H

#include "mart/core.h"

struct cJSON;

typedef struct {
    double rel_tol;        /* numeric closeness, relative, for decimal golds; 1e-4 as in the Qwen
                              math grader */
    bool fallback_extract; /* without a box: a final-answer phrase, then the last number of the
                              last sentence (evaluation only) */
    int64_t work_limit;    /* bound on parse/eval steps per comparison */
} grade_config;

void grade_config_default(grade_config *c);

/* Where an extracted answer was found. Anything past GRADE_FOUND_BOX came from a fallback,
 * which evaluation reports separately (the model did not box its answer). */
typedef enum {
    GRADE_FOUND_NONE,        /* no answer */
    GRADE_FOUND_BOX,         /* the final attempt's box, or its closing boxes combined */
    GRADE_FOUND_PHRASE,      /* "The final answer is ...", "answer: ..." */
    GRADE_FOUND_LAST_NUMBER, /* the last number of the last sentence */
} grade_found;

/* The final answer of text as a malloc'd string, or NULL when there is none (an unclosed box
 * is no answer). The last complete \boxed{...} / \boxed x / \fbox{...} wins, except that the
 * boxes of one closing sentence joined only by "and", commas or "x =" ("the roots are \boxed{1}
 * and \boxed{-3}") form one list answer; a box separated by other words is a superseded draft.
 * Without a box, c->fallback_extract tries a final-answer phrase, then the last number.
 * *how (may be NULL) says which rule found the answer. */
char *grade_extract_found(const char *text, size_t len, const grade_config *c, grade_found *how);
/* grade_extract_found without the source. */
char *grade_extract(const char *text, size_t len, const grade_config *c);
/* True when text holds a complete boxed answer (cheap: the environment calls it after every
 * generated token). */
bool grade_has_boxed(const char *text, size_t len);

/* The outcome of a comparison. Undecided: a bound was reached (work budget, nesting, tree
 * height, a value too large to compare exactly, too many variables or members); it counts as
 * not equal wherever a reward is given, and the reason says which bound. */
typedef enum { GRADE_UNEQUAL, GRADE_EQUAL, GRADE_UNDECIDED } grade_verdict;

typedef struct {
    grade_verdict verdict;
    const char *reason; /* static text or NULL: why undecided, or how an equal verdict was
                           reached when it needed an assumption (integer-only identities) */
} grade_result;

/* Whether pred and gold are the same answer (see docs/PERFORMANCE.md "Grader" for the rules).
 * A decimal prediction equals an exact irrational gold (\sqrt{5}, 2\pi) only if it is exact;
 * the tolerance c->rel_tol applies to golds written as decimals. Thread-safe; c may be NULL for
 * the defaults. */
grade_result grade_compare(const char *pred, const char *gold, const grade_config *c);
/* grade_compare(...).verdict == GRADE_EQUAL: the reward's view (undecided is not equal). */
bool grade_equal(const char *pred, const char *gold, const grade_config *c);
/* "equal", "unequal" or "undecided". */
const char *grade_verdict_name(grade_verdict v);

/* The gold answer of a benchmark record, malloc'd: `bench` is one of aime24, amc23, math500,
 * minerva_math, olympiadbench, gsm8k, math (MATH: the solution's last box), or NULL/other for
 * `answer_key` (default "answer"). */
int grade_gold_answer(const struct cJSON *rec, const char *bench, const char *answer_key,
                      char **gold, mart_err *err);

#endif
