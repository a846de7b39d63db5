/* grade internals: the pieces of the grader shared between its files. A comparison runs in
 * three stages: normalize (string → cleaned LaTeX), parse (cleaned LaTeX → expression tree in
 * an arena), compare (trees → equal or not, by exact GMP arithmetic, MPFR numerics, or random
 * points). Nothing here has global mutable state; every call owns its arena and context. */
#ifndef MART_GRADE_INT_H
#define MART_GRADE_INT_H

#include "mart/grade.h"

#include <stdlib.h>

#include <gmp.h>
#include <mpfr.h>

/* ---- arena: every node and string of one comparison, freed at once ---------------------- */

typedef struct garena_blk {
    struct garena_blk *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
} garena_blk;

typedef struct {
    garena_blk *head;
} garena;

void *garena_alloc(garena *a, size_t n); /* zeroed */
char *garena_strndup(garena *a, const char *s, size_t n);
void garena_free(garena *a);

/* ---- normalization ----------------------------------------------------------------------- */

/* Cleans one answer string (see grade_normalize in normalize.c for the list). Returns an
 * arena string; *is_text is set when the answer is words rather than mathematics (then it is
 * compared as lower-cased text without spaces). */
char *grade_normalize(garena *a, const char *s, size_t len, bool *is_text);

/* ---- expression trees -------------------------------------------------------------------- */

typedef enum {
    GN_NUM,    /* str/len: digits with optional '.', exponent; base */
    GN_SYM,    /* str/len: variable name (subscript and primes included, or a function
                  value "f(x)", "I(0)"); op: GC_* constant or GC_VAR */
    GN_INF,    /* \infty */
    GN_ADD,    /* k[0] + k[1] */
    GN_SUB,    /* k[0] - k[1] */
    GN_PM,     /* k[0] ± k[1] (k[0] NULL for unary ±); op: index of this ± in its tree */
    GN_NEG,    /* -k[0] */
    GN_MUL,    /* k[0] * k[1] */
    GN_DIV,    /* k[0] / k[1] */
    GN_POW,    /* k[0] ^ k[1] */
    GN_FACT,   /* k[0]! */
    GN_PCT,    /* k[0]% */
    GN_FUNC,   /* op: GF_*; k[0] argument, k[1] log base or root index (may be NULL) */
    GN_BINOM,  /* binom(k[0], k[1]) */
    GN_REL,    /* k[0] op k[1]; op: GR_* */
    GN_TUPLE,  /* open/close bracket chars; n children, order matters */
    GN_SET,    /* \{ ... \}: order does not matter */
    GN_LIST,   /* top-level a, b, c: order does not matter ("all solutions") */
    GN_UNION,  /* A \cup B \cup ... */
    GN_DIFF,   /* k[0] \setminus k[1] */
    GN_MATRIX, /* rows x cols children, row-major */
} gnode_kind;

enum { GC_VAR, GC_PI, GC_E, GC_I };
enum {
    GF_SIN,
    GF_COS,
    GF_TAN,
    GF_COT,
    GF_SEC,
    GF_CSC,
    GF_ASIN,
    GF_ACOS,
    GF_ATAN,
    GF_SINH,
    GF_COSH,
    GF_TANH,
    GF_LN,
    GF_LOG,
    GF_EXP,
    GF_SQRT,
    GF_ABS,
    GF_FLOOR,
    GF_CEIL
};
enum { GR_EQ, GR_NE, GR_LT, GR_LE, GR_GT, GR_GE, GR_IN };

typedef struct gnode {
    uint8_t kind;       /* gnode_kind */
    uint8_t op;         /* see the kind */
    char open, close;   /* GN_TUPLE brackets: '(' '[' / ')' ']' */
    int32_t n;          /* number of children */
    int32_t rows, cols; /* GN_MATRIX */
    int32_t base;       /* GN_NUM: 10 unless a base subscript (1011_2) */
    int32_t len;        /* GN_NUM / GN_SYM text length */
    int32_t height;     /* 1 + the tallest child: bounds the recursion of every tree walk */
    const char *str;    /* GN_NUM / GN_SYM text (arena) */
    struct gnode **k;   /* children (n) */
} gnode;

/* Parses a normalized answer. Returns NULL when it is not mathematics the grader reads (the
 * caller then compares strings) or when it exceeds a bound: then *limit names the bound (the
 * work budget, *work counting steps; the nesting depth; the tree height). */
gnode *grade_parse(garena *a, const char *s, int64_t *work, int64_t work_limit, const char **limit);

/* ---- comparison -------------------------------------------------------------------------- */

#define GRADE_MAX_SYMS 16 /* distinct variables per comparison */
#define GRADE_POINTS 3    /* random points for expressions with variables */

typedef struct {
    const grade_config *cfg;
    garena *ar; /* the comparison's arena, for trees rewritten while comparing */
    const char *alias_from, *alias_to; /* a variable renamed (g(t) = 3t vs g(x) = 3x), or NULL */
    int32_t alias_from_len, alias_to_len;
    int64_t work;      /* steps spent; stop at cfg->work_limit */
    bool exhausted;    /* the work budget ran out: undecided */
    bool too_big;      /* a value exceeded its size bound (exactly or numerically) */
    const char *limit; /* the first bound that left a part undecided (static text) or NULL */
    const char *how;   /* how an equal verdict was reached when it assumed something, or NULL */
    bool integers;     /* the random points are the positive integers (integer-only identities) */
    bool used_mpfr;    /* numeric evaluation ran (MPFR caches to release) */
    uint32_t pm_signs; /* bit j: sign of the j-th ± of the tree being evaluated */
    bool pct_ignore;   /* evaluate x% as x (unit) instead of x/100 */
    int n_syms;        /* variables seen in both trees */
    const char *sym_name[GRADE_MAX_SYMS];
    int32_t sym_len[GRADE_MAX_SYMS];
    int point;                   /* which random point the variables take; -1: none */
    mpq_t sym_q[GRADE_MAX_SYMS]; /* value of each variable at the current point */
    mpfr_t sym_f[GRADE_MAX_SYMS];
} gctx;

/* Exact value (Gaussian rational) of a tree at the current point; false when it is not a
 * rational (π, √2, ...), unsupported, or too costly. re/im are initialized by the caller. */
bool grade_eval_exact(gctx *c, const gnode *n, mpq_t re, mpq_t im);
/* Numeric value (MPFR complex, precision of re/im) at the current point; false when it is
 * undefined (NaN, outside a function's real domain) or too costly. */
bool grade_eval_num(gctx *c, const gnode *n, mpfr_t re, mpfr_t im);

/* Working precision of numeric evaluation, bits (~38 decimal digits: far below the 1e-4
 * tolerance yet cheap). */
#define GRADE_PREC 128

#endif
