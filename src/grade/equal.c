/* grade equivalence: decides whether two answers are the same. Strings first (cheap), then
 * multiple-choice letters and text, then expression trees, rewritten into the shape they are
 * compared in (inequalities as sets, scaled matrices, set differences), compared structurally
 * (sets and "all solutions" lists ignore order, tuples and intervals do not) down to scalars,
 * which are compared exactly, numerically, or at random points when they have variables.
 * Each comparison ends equal, unequal, or undecided when a bound was reached. */
#include "grade/grade_int.h"

#include <ctype.h>
#include <string.h>

/* Tolerance for numeric closeness (relative) when the gold is written as a decimal, as in the
 * Qwen2.5-Math evaluation toolkit. */
#define GRADE_REL_TOL 1e-4
/* Tolerance when the gold is exact (\sqrt{5}, 2\pi, a formula): both sides are evaluated at
 * 128 bits, so only rounding may differ. A decimal that approximates an exact irrational gold
 * (-2.236 for -\sqrt{5}) is not the answer, and x + 1000 vs x + 1000.1 is no 1e-4 match. */
#define GRADE_SYMBOLIC_TOL 1e-20
/* Integer-only identities (\lceil \log_2(n+1) \rceil = \lfloor \log_2 n \rfloor + 1) are
 * decided at n = 1 .. GRADE_INT_POINTS: enough to pass every power of two up to 64 and every
 * square up to 8^2. */
#define GRADE_INT_POINTS 64
#define HOW_INTEGERS "equal at the integers 1..64: floor/ceiling taken to mean an integer variable"
#define LIMIT_BIG "a value too large to compare exactly"
#define LIMIT_WORK "work limit reached"
#define LIMIT_SYMS "more than 16 variables"
#define LIMIT_ITEMS "more than 256 members in a list or set"
/* Steps of parsing and evaluation per comparison: a 10 kB answer needs about 2·10^4. */
#define GRADE_WORK_LIMIT 200000
/* Most items of a list, set or ± expansion compared element-wise. */
#define MAX_ITEMS 256
/* In a sign pattern: the ± of this tree are already chosen (bits 0..15 say how). */
#define SIGNS_FIXED (1u << 31)

void grade_config_default(grade_config *c) {
    c->rel_tol = GRADE_REL_TOL;
    c->fallback_extract = false;
    c->work_limit = GRADE_WORK_LIMIT;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* The string without spaces, except one between two digits ("2 3" is not "23"). */
static void strip_spaces(char *d, const char *s) {
    const char *start = s;
    for (; *s; s++) {
        if (*s != ' ') {
            *d++ = *s;
            continue;
        }
        const char *next = s;
        while (*next == ' ')
            next++;
        if (s > start && isdigit((unsigned char)s[-1]) && isdigit((unsigned char)*next)) *d++ = ' ';
        s = next - 1;
    }
    *d = 0;
}

/* A multiple-choice label at the start of s (spaces stripped): "(B)", "B)", or "B" as the
 * whole answer; lower case "(b)" too when `lower`. Returns the letter in upper case and sets
 * *rest to what follows it (the option's value, "" for none); 0 when there is no label. */
static char choice_label(const char *s, bool lower, const char **rest) {
    while (*s == '{')
        s++;
    bool paren = *s == '(';
    s += paren;
    char ch = *s;
    bool upper = ch >= 'A' && ch <= 'E', low = lower && paren && ch >= 'a' && ch <= 'e';
    if (!upper && !low) return 0;
    s++;
    if (*s == ')')
        s++;
    else if (paren)
        return 0;
    while (*s == '}')
        s++;
    if (!paren && s[-1] != ')' && *s) return 0; /* "Bx" is no label */
    if (*s && strchr("+*/^=.,", *s)) return 0;  /* "(C) + 1" is no option's value */
    *rest = s;
    return (char)(ch & ~0x20);
}

/* The value of a number word (seven, twelve, forty), or -1. */
static int number_word(const char *s) {
    static const char *const small[] = {"zero",    "one",     "two",       "three",    "four",
                                        "five",    "six",     "seven",     "eight",    "nine",
                                        "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                        "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
    static const char *const tens[] = {"twenty", "thirty",  "forty",  "fifty",
                                       "sixty",  "seventy", "eighty", "ninety"};
    for (int k = 0; k < 20; k++)
        if (!strcmp(s, small[k])) return k;
    for (int k = 0; k < 8; k++)
        if (!strcmp(s, tens[k])) return 20 + 10 * k;
    if (!strcmp(s, "hundred")) return 100;
    return -1;
}

static bool collect_syms(gctx *c, const gnode *n) {
    if (!n) return true;
    if (n->kind == GN_SYM && n->op == GC_VAR) {
        bool seen = false;
        for (int k = 0; k < c->n_syms && !seen; k++)
            seen = c->sym_len[k] == n->len && !memcmp(c->sym_name[k], n->str, (size_t)n->len);
        if (!seen) {
            if (c->n_syms == GRADE_MAX_SYMS) return false;
            c->sym_name[c->n_syms] = n->str;
            c->sym_len[c->n_syms++] = n->len;
        }
    }
    for (int32_t i = 0; i < n->n; i++)
        if (!collect_syms(c, n->k[i])) return false;
    return true;
}

/* Records the first bound that left a part of the comparison undecided. */
static void undecided(gctx *c, const char *why) {
    if (!c->limit) c->limit = why;
}

/* Gives every variable its value at random point `pt`: a rational in about [0.9, 8.5] drawn
 * from the variable's name, so that both sides and every run agree; in integer mode, the
 * integer pt + 1. */
static void set_point(gctx *c, int pt) {
    c->point = pt;
    for (int k = 0; k < c->n_syms; k++) {
        if (c->integers) {
            mpq_set_si(c->sym_q[k], pt + 1, 1);
            mpfr_set_q(c->sym_f[k], c->sym_q[k], MPFR_RNDN);
            continue;
        }
        uint64_t h = mart_fnv1a(MART_FNV_OFFSET, c->sym_name[k], (size_t)c->sym_len[k]);
        mart_rng r;
        mart_rng_seed(&r, h, (uint64_t)pt);
        /* the later points lie in (0, 1), inside the domain of \arcsin, \arccos */
        long num =
            pt < GRADE_POINTS ? (long)mart_rng_range(&r, 11, 60) : (long)mart_rng_range(&r, 1, 9);
        long den = (long)mart_rng_range(&r, 7, 13);
        mpq_set_si(c->sym_q[k], num, (unsigned long)den);
        mpq_canonicalize(c->sym_q[k]);
        mpfr_set_q(c->sym_f[k], c->sym_q[k], MPFR_RNDN);
    }
}

static bool has_kind(const gnode *n, gnode_kind kind) {
    if (!n) return false;
    if (n->kind == kind) return true;
    for (int32_t i = 0; i < n->n; i++)
        if (has_kind(n->k[i], kind)) return true;
    return false;
}

static bool has_decimal(const gnode *n) {
    if (!n) return false;
    if (n->kind == GN_NUM &&
        (memchr(n->str, '.', (size_t)n->len) || memchr(n->str, 'e', (size_t)n->len) ||
         memchr(n->str, 'E', (size_t)n->len)))
        return true;
    for (int32_t i = 0; i < n->n; i++)
        if (has_decimal(n->k[i])) return true;
    return false;
}

/* The tolerance for comparing a prediction with `gold` numerically: rel_tol when the gold is
 * written with decimals, GRADE_SYMBOLIC_TOL when it is exact. */
static double tolerance(const gctx *c, const gnode *gold) {
    return has_decimal(gold) ? c->cfg->rel_tol : GRADE_SYMBOLIC_TOL;
}

/* Whether n holds an integer-only function (floor, ceiling). */
static bool has_int_func(const gnode *n) {
    if (!n) return false;
    if (n->kind == GN_FUNC && (n->op == GF_FLOOR || n->op == GF_CEIL)) return true;
    for (int32_t i = 0; i < n->n; i++)
        if (has_int_func(n->k[i])) return true;
    return false;
}

static bool has_syms(const gnode *n) {
    if (!n) return false;
    if (n->kind == GN_SYM && n->op == GC_VAR) return true;
    for (int32_t i = 0; i < n->n; i++)
        if (has_syms(n->k[i])) return true;
    return false;
}

/* |a - b| <= tol · max(|a|, |b|); infinities equal only themselves. */
static bool close_enough(double tol, mpfr_t ar, mpfr_t ai, mpfr_t br, mpfr_t bi) {
    if (mpfr_inf_p(ar) || mpfr_inf_p(br) || mpfr_inf_p(ai) || mpfr_inf_p(bi))
        return mpfr_equal_p(ar, br) && mpfr_equal_p(ai, bi) && !mpfr_inf_p(ai);
    mpfr_t d, t, m;
    mpfr_inits2(GRADE_PREC, d, t, m, (mpfr_ptr)0);
    mpfr_sub(d, ar, br, MPFR_RNDN);
    mpfr_sub(t, ai, bi, MPFR_RNDN);
    mpfr_hypot(d, d, t, MPFR_RNDN);
    mpfr_hypot(m, ar, ai, MPFR_RNDN);
    mpfr_hypot(t, br, bi, MPFR_RNDN);
    mpfr_max(m, m, t, MPFR_RNDN);
    mpfr_mul_d(m, m, tol, MPFR_RNDN);
    /* an answer that should be 0 must come out as 0 to working precision */
    bool ok = mpfr_zero_p(d) || mpfr_cmp(d, m) <= 0;
    if (ok && mpfr_sgn(m) == 0) ok = mpfr_zero_p(d);
    mpfr_clears(d, t, m, (mpfr_ptr)0);
    return ok;
}

/* Value equality of scalar trees a (prediction) and b (gold) with ± signs sa / sb, at every
 * point. With variables, GRADE_POINTS points where both are defined are needed (a point
 * outside both domains, such as x > 1 for \arcsin x, is skipped; up to twice as many are
 * tried). Undecided when a value is too large to compare exactly (10^{10^6} vs 10^{10^6} + 1:
 * no tolerance guess) or the work budget runs out. */
static grade_verdict values_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b,
                                  uint32_t sb) {
    bool vars = has_syms(a) || has_syms(b);
    int points = !vars ? 1 : c->integers ? GRADE_INT_POINTS : 2 * GRADE_POINTS;
    int defined = 0, wanted = !vars ? 1 : c->integers ? GRADE_INT_POINTS : GRADE_POINTS;
    mpq_t ar, ai, br, bi;
    mpq_inits(ar, ai, br, bi, NULL);
    mpfr_t fr, fi, gr, gi;
    mpfr_inits2(GRADE_PREC, fr, fi, gr, gi, (mpfr_ptr)0);
    grade_verdict v = GRADE_EQUAL;
    for (int pt = 0; pt < points && v == GRADE_EQUAL && defined < wanted; pt++) {
        if (vars)
            set_point(c, pt);
        else
            c->point = -1;
        c->pm_signs = sa;
        c->too_big = false;
        bool ea = grade_eval_exact(c, a, ar, ai);
        c->pm_signs = sb;
        bool eb = ea && grade_eval_exact(c, b, br, bi);
        if (!c->exhausted && ea && eb) {
            if (!mpq_equal(ar, br) || !mpq_equal(ai, bi)) v = GRADE_UNEQUAL;
            defined++;
            continue;
        }
        bool big = c->too_big;
        c->pm_signs = sa;
        c->used_mpfr = true;
        bool na = !c->exhausted && grade_eval_num(c, a, fr, fi);
        c->pm_signs = sb;
        bool nb = !c->exhausted && grade_eval_num(c, b, gr, gi);
        big |= c->too_big;
        if (vars && !c->integers && !na && !nb && !big && !c->exhausted)
            continue; /* outside both domains */
        defined++;
        if (c->exhausted) {
            undecided(c, LIMIT_WORK);
            v = GRADE_UNDECIDED;
        } else if (big) {
            undecided(c, LIMIT_BIG);
            v = GRADE_UNDECIDED;
        } else if (!na || !nb || !close_enough(tolerance(c, b), fr, fi, gr, gi))
            v = GRADE_UNEQUAL;
    }
    if (v == GRADE_EQUAL && defined == 0) v = GRADE_UNEQUAL; /* defined nowhere */
    c->too_big = false;
    mpq_clears(ar, ai, br, bi, NULL);
    mpfr_clears(fr, fi, gr, gi, (mpfr_ptr)0);
    return v;
}

/* Powers too large to evaluate (10^{10^{10}} vs 10^{10000000000}): equal when base and
 * exponent are; unequal when the bases are one positive rational other than 1 and the
 * exponents differ. Undecided otherwise. */
static grade_verdict powers_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b,
                                  uint32_t sb) {
    if (a->kind != GN_POW || b->kind != GN_POW) return GRADE_UNDECIDED;
    grade_verdict base = values_equal(c, a->k[0], sa, b->k[0], sb);
    if (base != GRADE_EQUAL) return GRADE_UNDECIDED;
    grade_verdict expo = values_equal(c, a->k[1], sa, b->k[1], sb);
    if (expo != GRADE_UNEQUAL || has_syms(a->k[0])) return expo;
    mpq_t re, im;
    mpq_inits(re, im, NULL);
    c->pm_signs = sa;
    c->point = -1;
    bool plain = grade_eval_exact(c, a->k[0], re, im) && mpq_sgn(im) == 0 && mpq_sgn(re) > 0 &&
                 mpq_cmp_ui(re, 1, 1) != 0;
    mpq_clears(re, im, NULL);
    return plain ? GRADE_UNEQUAL : GRADE_UNDECIDED;
}

/* Formulas of integer-only functions (floor, ceiling) in one variable: the variable is an
 * integer in the question, and random rational points never meet the integers where such
 * formulas jump (\lfloor \sqrt{n} \rfloor vs \lceil \sqrt{n} \rceil - 1 differ exactly at
 * the squares). Decided at the positive integers; c->how says so when that differs from the
 * verdict at rational points `at_reals`. */
static grade_verdict integers_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b,
                                    uint32_t sb, grade_verdict at_reals) {
    if (c->n_syms != 1 || !(has_int_func(a) || has_int_func(b)) || !has_syms(a) || !has_syms(b))
        return at_reals;
    c->integers = true;
    grade_verdict v = values_equal(c, a, sa, b, sb);
    c->integers = false;
    if (v == GRADE_EQUAL && at_reals != GRADE_EQUAL) c->how = HOW_INTEGERS;
    return v;
}

static grade_verdict scalar_verdict(gctx *c, const gnode *a, uint32_t sa, const gnode *b,
                                    uint32_t sb) {
    const char *limit = c->limit;
    grade_verdict v = values_equal(c, a, sa, b, sb);
    if (v == GRADE_UNDECIDED && !c->exhausted) v = powers_equal(c, a, sa, b, sb);
    if (v != GRADE_UNDECIDED) v = integers_equal(c, a, sa, b, sb, v);
    if (v != GRADE_UNDECIDED) c->limit = limit; /* decided after all */
    return v;
}

static bool scalar_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b, uint32_t sb) {
    bool pct = has_kind(a, GN_PCT) || has_kind(b, GN_PCT);
    /* 8\% against 8 (a unit) or against 0.08 (a value) */
    c->pct_ignore = false;
    grade_verdict v = scalar_verdict(c, a, sa, b, sb);
    if (v == GRADE_UNEQUAL && pct) {
        c->pct_ignore = true;
        v = scalar_verdict(c, a, sa, b, sb);
        c->pct_ignore = false;
    }
    return v == GRADE_EQUAL;
}

/* An equation's left side that only names the answer: x, a_1, f(x), m_{max}. */
static bool names_answer(const gnode *n) {
    if (n->kind == GN_SYM && n->op != GC_PI) return true;
    if (n->kind == GN_MUL && n->k[0]->kind == GN_SYM && n->k[0]->op == GC_VAR &&
        (n->k[1]->kind == GN_SYM || n->k[1]->kind == GN_TUPLE))
        return true; /* f(x) parses as f·x */
    return false;
}

/* ---- items: lists, sets and ± expanded into their members -------------------------------- */

typedef struct {
    const gnode *n;
    uint32_t signs;
} gitem;

static void pm_indices(const gnode *n, uint32_t *mask) {
    if (!n) return;
    if (n->kind == GN_PM) *mask |= 1u << n->op;
    for (int32_t i = 0; i < n->n; i++)
        pm_indices(n->k[i], mask);
}

/* Appends the members of n (each ± choice of a scalar or a tuple is a member: (\pm 1, 3) is
 * (1, 3) and (-1, 3)); false when too many. */
static bool add_items(gctx *c, const gnode *n, gitem *items, int *count) {
    if (n->kind == GN_LIST || n->kind == GN_SET) {
        for (int32_t i = 0; i < n->n; i++)
            if (!add_items(c, n->k[i], items, count)) return false;
        return true;
    }
    uint32_t mask = 0;
    if (n->kind != GN_MATRIX) pm_indices(n, &mask);
    /* every sign pattern over the ± of this member */
    uint32_t sub = 0;
    do {
        if (*count >= MAX_ITEMS) {
            undecided(c, LIMIT_ITEMS);
            return false;
        }
        items[(*count)++] = (gitem){n, sub | SIGNS_FIXED};
        sub = (sub - mask) & mask;
    } while (sub != 0);
    return true;
}

static bool node_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b, uint32_t sb);

/* Every member of X equals some member of Y (sets: repetition does not count); X holds the
 * prediction's members when x_pred, else the gold's. */
static bool items_covered(gctx *c, const gitem *X, int nx, const gitem *Y, int ny, bool x_pred) {
    for (int i = 0; i < nx; i++) {
        bool found = false;
        for (int j = 0; j < ny && !found; j++)
            found = x_pred ? node_equal(c, X[i].n, X[i].signs, Y[j].n, Y[j].signs)
                           : node_equal(c, Y[j].n, Y[j].signs, X[i].n, X[i].signs);
        if (!found || c->exhausted) return false;
    }
    return true;
}

/* Every member of A matches a distinct member of B and none is left over. */
static bool items_match(gctx *c, const gitem *A, int na, const gitem *B, int nb) {
    if (na != nb) return false;
    bool used[MAX_ITEMS] = {0};
    for (int i = 0; i < na; i++) {
        bool found = false;
        for (int j = 0; j < nb && !found; j++) {
            if (used[j]) continue;
            if (node_equal(c, A[i].n, A[i].signs, B[j].n, B[j].signs)) used[j] = found = true;
            if (c->exhausted) return false;
        }
        if (!found) return false;
    }
    return true;
}

static bool is_group(const gnode *n) {
    return n->kind == GN_LIST || n->kind == GN_SET;
}

static int flip_rel(int op) {
    switch (op) {
    case GR_LT:
        return GR_GT;
    case GR_GT:
        return GR_LT;
    case GR_LE:
        return GR_GE;
    case GR_GE:
        return GR_LE;
    default:
        return op;
    }
}

/* Two equations with the same solutions: (l1 - r1) / (l2 - r2) is one nonzero constant at
 * every random point (y = -2x against 2x + y = 0). */
static bool equations_proportional(gctx *c, const gnode *a, const gnode *b) {
    if (!has_syms(a) || !has_syms(b)) return false;
    gnode da = {.kind = GN_SUB, .n = 2, .k = a->k}, db = {.kind = GN_SUB, .n = 2, .k = b->k};
    mpfr_t ar, ai, br, bi, r0;
    mpfr_inits2(GRADE_PREC, ar, ai, br, bi, r0, (mpfr_ptr)0);
    bool ok = true;
    c->pm_signs = 0;
    c->used_mpfr = true;
    for (int pt = 0; pt < GRADE_POINTS && ok; pt++) {
        set_point(c, pt);
        ok = grade_eval_num(c, &da, ar, ai) && grade_eval_num(c, &db, br, bi) && mpfr_zero_p(ai) &&
             mpfr_zero_p(bi) && mpfr_regular_p(ar) && mpfr_regular_p(br);
        if (!ok) break;
        mpfr_div(ar, ar, br, MPFR_RNDN);
        if (pt == 0)
            mpfr_set(r0, ar, MPFR_RNDN);
        else {
            mpfr_set_zero(ai, 1);
            ok = close_enough(tolerance(c, b), ar, ai, r0, ai);
        }
    }
    mpfr_clears(ar, ai, br, bi, r0, (mpfr_ptr)0);
    return ok;
}

/* ---- rewriting: answers in the shape they are compared in --------------------------------- */

static gnode *mk_node(gctx *c, gnode_kind kind, int32_t n) {
    gnode *x = garena_alloc(c->ar, sizeof *x);
    x->kind = (uint8_t)kind;
    x->n = n;
    x->height = 1;
    if (n) x->k = garena_alloc(c->ar, sizeof(gnode *) * (size_t)n);
    return x;
}

static gnode *mk_node1(gctx *c, gnode_kind kind, const gnode *a) {
    gnode *x = mk_node(c, kind, 1);
    x->k[0] = (gnode *)a;
    x->height = 1 + a->height;
    return x;
}

static gnode *mk_node2(gctx *c, gnode_kind kind, const gnode *a, const gnode *b) {
    gnode *x = mk_node(c, kind, 2);
    x->k[0] = (gnode *)a;
    x->k[1] = (gnode *)b;
    x->height = 1 + (a->height > b->height ? a->height : b->height);
    return x;
}

static gnode *mk_interval(gctx *c, const gnode *lo, bool lo_closed, const gnode *hi,
                          bool hi_closed) {
    gnode *iv = mk_node2(c, GN_TUPLE, lo, hi);
    iv->open = lo_closed ? '[' : '(';
    iv->close = hi_closed ? ']' : ')';
    return iv;
}

static bool is_var(const gnode *n) {
    return n->kind == GN_SYM && n->op == GC_VAR;
}

static bool same_sym(const gnode *a, const gnode *b) {
    return a->len == b->len && !memcmp(a->str, b->str, (size_t)a->len);
}

static bool has_sym(const gnode *n, const gnode *v) {
    if (n->kind == GN_SYM && same_sym(n, v)) return true;
    for (int32_t i = 0; i < n->n; i++)
        if (n->k[i] && has_sym(n->k[i], v)) return true;
    return false;
}

/* An inequality in one variable as the set it describes: x > 2 → (2, \infty),
 * -1 \le x < 3 → [-1, 3), |x| \ge 2 → (-\infty, -2] \cup [2, \infty). NULL when r is not such
 * an inequality (the ends must not hold the variable). */
static gnode *rel_set(gctx *c, const gnode *r) {
    if (r->kind != GN_REL) return NULL;
    int op = r->op;
    const gnode *l = r->k[0], *rt = r->k[1], *var;
    gnode *inf = mk_node(c, GN_INF, 0), *ninf = mk_node1(c, GN_NEG, inf);
    if (l->kind == GN_REL && is_var(l->k[1])) { /* a < x < b, a > x > b */
        int op1 = l->op;
        bool up = (op1 == GR_LT || op1 == GR_LE) && (op == GR_LT || op == GR_LE);
        bool down = (op1 == GR_GT || op1 == GR_GE) && (op == GR_GT || op == GR_GE);
        var = l->k[1];
        if ((!up && !down) || has_sym(l->k[0], var) || has_sym(rt, var)) return NULL;
        return up ? mk_interval(c, l->k[0], op1 == GR_LE, rt, op == GR_LE)
                  : mk_interval(c, rt, op == GR_GE, l->k[0], op1 == GR_GE);
    }
    bool abs_l = l->kind == GN_FUNC && l->op == GF_ABS && is_var(l->k[0]);
    bool abs_r = rt->kind == GN_FUNC && rt->op == GF_ABS && is_var(rt->k[0]);
    if ((is_var(rt) || abs_r) && !is_var(l) && !abs_l) { /* 2 < x is x > 2 */
        const gnode *t = l;
        l = rt;
        rt = t;
        op = flip_rel(op);
        abs_l = abs_r;
    }
    var = abs_l ? l->k[0] : l;
    if (!is_var(var) || op == GR_EQ || op == GR_NE || op == GR_IN || has_sym(rt, var)) return NULL;
    bool below = op == GR_LT || op == GR_LE, closed = op == GR_LE || op == GR_GE;
    if (!abs_l)
        return below ? mk_interval(c, ninf, false, rt, closed)
                     : mk_interval(c, rt, closed, inf, false);
    gnode *neg = mk_node1(c, GN_NEG, rt);
    if (below) return mk_interval(c, neg, closed, rt, closed); /* |x| < a */
    return mk_node2(c, GN_UNION, mk_interval(c, ninf, false, neg, closed),
                    mk_interval(c, rt, closed, inf, false));
}

/* "x < 1 or x > 4" (a list of inequalities) as the union of their sets; NULL otherwise. */
static gnode *or_set(gctx *c, const gnode *l) {
    if (l->kind != GN_LIST || l->n > MAX_ITEMS) return NULL;
    int32_t n = 0;
    gnode **parts = garena_alloc(c->ar, sizeof(gnode *) * (size_t)l->n * 2);
    for (int32_t i = 0; i < l->n; i++) {
        gnode *s = rel_set(c, l->k[i]);
        if (!s) return NULL;
        if (s->kind == GN_UNION)
            for (int32_t j = 0; j < s->n; j++)
                parts[n++] = s->k[j];
        else
            parts[n++] = s;
    }
    gnode *u = mk_node(c, GN_UNION, n);
    memcpy(u->k, parts, sizeof(gnode *) * (size_t)n);
    return u;
}

static bool has_structure(const gnode *n) {
    return has_kind(n, GN_MATRIX) || has_kind(n, GN_TUPLE) || has_kind(n, GN_LIST) ||
           has_kind(n, GN_SET);
}

/* A scalar applied to a matrix, as the matrix of scaled entries: -M, s M, M s, M / s. */
static const gnode *matrix_scaled(gctx *c, const gnode *n) {
    bool neg = n->kind == GN_NEG, mul = n->kind == GN_MUL, div = n->kind == GN_DIV;
    if (!neg && !mul && !div) return n;
    const gnode *m = matrix_scaled(c, n->k[0]), *s = neg ? NULL : n->k[1];
    bool left = true; /* the matrix is k[0] */
    if (mul && m->kind != GN_MATRIX) {
        m = matrix_scaled(c, n->k[1]);
        s = n->k[0];
        left = false;
    }
    if (m->kind != GN_MATRIX || (s && has_structure(s))) return n;
    gnode *r = mk_node(c, GN_MATRIX, m->n);
    r->rows = m->rows;
    r->cols = m->cols;
    for (int32_t i = 0; i < m->n; i++) {
        gnode *e = neg    ? mk_node1(c, GN_NEG, m->k[i])
                   : left ? mk_node2(c, n->kind, m->k[i], s)
                          : mk_node2(c, GN_MUL, s, m->k[i]);
        r->k[i] = e;
        if (e->height + 1 > r->height) r->height = e->height + 1;
    }
    return r;
}

/* Real value of a constant scalar, or false (for ordering points). */
static bool real_value(gctx *c, const gnode *n, mpfr_t v) {
    mpfr_t im;
    mpfr_init2(im, GRADE_PREC);
    c->point = -1;
    c->pm_signs = 0;
    c->used_mpfr = true;
    bool ok = !has_syms(n) && grade_eval_num(c, n, v, im) && mpfr_zero_p(im);
    mpfr_clear(im);
    return ok;
}

/* A \setminus B as what it leaves: finite sets member by member; an interval (or the reals,
 * (-\infty, \infty)) without finitely many inner points as the union of the pieces. Returns
 * n itself when it is no such difference. */
static const gnode *set_difference(gctx *c, const gnode *n);

static bool node_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b, uint32_t sb);

static const gnode *set_difference(gctx *c, const gnode *n) {
    if (n->kind != GN_DIFF) return n;
    const gnode *A = n->k[0], *B = n->k[1];
    if (B->kind != GN_SET || B->n > MAX_ITEMS) return n;
    if (A->kind == GN_SET) {
        gnode *r = mk_node(c, GN_SET, A->n);
        int32_t k = 0;
        for (int32_t i = 0; i < A->n; i++) {
            bool gone = false;
            for (int32_t j = 0; j < B->n && !gone; j++)
                gone = node_equal(c, A->k[i], 0, B->k[j], 0);
            if (!gone) r->k[k++] = A->k[i];
        }
        r->n = k;
        r->height = n->height;
        return r;
    }
    if (A->kind != GN_TUPLE || A->n != 2) return n;
    /* the points in increasing order, each strictly inside the interval */
    int32_t m = B->n;
    const gnode **pts = garena_alloc(c->ar, sizeof(gnode *) * (size_t)m);
    mpfr_t *val = garena_alloc(c->ar, sizeof(mpfr_t) * (size_t)(m + 2));
    for (int32_t i = 0; i < m + 2; i++)
        mpfr_init2(val[i], GRADE_PREC);
    bool ok = real_value(c, A->k[0], val[m]) && real_value(c, A->k[1], val[m + 1]);
    for (int32_t i = 0; i < m && ok; i++) {
        pts[i] = B->k[i];
        ok = real_value(c, B->k[i], val[i]) && mpfr_cmp(val[i], val[m]) > 0 &&
             mpfr_cmp(val[i], val[m + 1]) < 0;
    }
    for (int32_t i = 1; i < m && ok; i++) /* insertion sort: a few points */
        for (int32_t j = i; j > 0 && mpfr_cmp(val[j - 1], val[j]) > 0; j--) {
            mpfr_swap(val[j - 1], val[j]);
            const gnode *t = pts[j - 1];
            pts[j - 1] = pts[j];
            pts[j] = t;
        }
    for (int32_t i = 1; i < m && ok; i++)
        ok = mpfr_cmp(val[i - 1], val[i]) < 0;
    for (int32_t i = 0; i < m + 2; i++)
        mpfr_clear(val[i]);
    if (!ok) return n;
    gnode *u = mk_node(c, GN_UNION, m + 1);
    for (int32_t i = 0; i <= m; i++)
        u->k[i] = mk_interval(c, i ? pts[i - 1] : A->k[0], i ? false : A->open == '[',
                              i < m ? pts[i] : A->k[1], i < m ? false : A->close == ']');
    u->height = n->height + 2;
    return u;
}

/* x, or x = y naming one variable twice ("x = x \in [a, b]"). */
static bool names_variable(const gnode *n) {
    return is_var(n) || (n->kind == GN_REL && n->op == GR_EQ && is_var(n->k[0]) &&
                         is_var(n->k[1]) && same_sym(n->k[0], n->k[1]));
}

/* The answer itself, in the shape it is compared in: "x \in S" is S, "t(0, 4]" is (0, 4],
 * a scalar times a matrix is a matrix, a set difference is what it leaves. */
static const gnode *answer_shape(gctx *c, const gnode *n) {
    if (n->kind == GN_REL && n->op == GR_IN && names_variable(n->k[0])) n = n->k[1];
    if (n->kind == GN_MUL && is_var(n->k[0]) && n->k[1]->kind == GN_TUPLE && n->k[1]->n == 2)
        n = n->k[1];
    n = set_difference(c, n);
    return matrix_scaled(c, n);
}

/* A product whose only variable is a trailing unit letter (7m, \frac{5}{2} m: metres) as the
 * number alone; NULL otherwise. Used only against an answer without variables, so that 3m + 2
 * or an answer in m stays a formula. */
static const gnode *unit_stripped(const gnode *n) {
    if (n->kind != GN_MUL || !is_var(n->k[1]) || n->k[1]->len != 1 ||
        !strchr("mgsJKWN", n->k[1]->str[0]) || has_syms(n->k[0]) || has_structure(n->k[0]))
        return NULL;
    return n->k[0];
}

/* g(t) = 3t against g(x) = 3x: one function of one variable, defined twice; the right sides
 * are compared with the prediction's variable renamed. */
static bool definitions_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b, uint32_t sb) {
    const gnode *fa = a->k[0], *fb = b->k[0];
    if (a->op != GR_EQ || b->op != GR_EQ || !is_var(fa) || !is_var(fb) || fa->len != 4 ||
        fb->len != 4 || fa->str[1] != '(' || fb->str[1] != '(' || fa->str[0] != fb->str[0] ||
        fa->str[2] == fb->str[2] || c->alias_from)
        return false;
    c->alias_from = fa->str + 2;
    c->alias_to = fb->str + 2;
    c->alias_from_len = c->alias_to_len = 1;
    bool eq = node_equal(c, a->k[1], sa, b->k[1], sb);
    c->alias_from = c->alias_to = NULL;
    return eq;
}

static bool node_equal(gctx *c, const gnode *a, uint32_t sa, const gnode *b, uint32_t sb) {
    if (++c->work > c->cfg->work_limit) c->exhausted = true;
    if (c->exhausted) return false;
    a = answer_shape(c, a);
    b = answer_shape(c, b);
    /* "x = 5" against "5": the left side only names the answer */
    if (a->kind == GN_REL && a->op == GR_EQ && b->kind != GN_REL && names_answer(a->k[0]))
        a = a->k[1];
    if (b->kind == GN_REL && b->op == GR_EQ && a->kind != GN_REL && names_answer(b->k[0]))
        b = b->k[1];
    /* 7m against 7: a unit letter beside an answer without variables */
    const gnode *ua = unit_stripped(a), *ub = unit_stripped(b);
    if (ua && !has_syms(b))
        a = ua;
    else if (ub && !has_syms(a))
        b = ub;
    /* inequalities against sets: x > 2 vs (2, \infty), x < 1 or x > 4 vs a union */
    bool set_a = a->kind == GN_TUPLE || a->kind == GN_UNION;
    bool set_b = b->kind == GN_TUPLE || b->kind == GN_UNION;
    bool rel_a = a->kind == GN_REL || a->kind == GN_LIST,
         rel_b = b->kind == GN_REL || b->kind == GN_LIST;
    if ((set_a || rel_a) && (set_b || rel_b) && !(set_a && set_b)) {
        const gnode *ra = set_a ? NULL : a->kind == GN_LIST ? or_set(c, a) : rel_set(c, a);
        const gnode *rb = set_b ? NULL : b->kind == GN_LIST ? or_set(c, b) : rel_set(c, b);
        if ((ra || set_a) && (rb || set_b)) { /* both sides are sets now */
            a = ra ? ra : a;
            b = rb ? rb : b;
        }
    }

    uint32_t ma = 0, mb = 0;
    if (!is_group(a) && a->kind != GN_TUPLE && a->kind != GN_MATRIX) pm_indices(a, &ma);
    if (!is_group(b) && b->kind != GN_TUPLE && b->kind != GN_MATRIX) pm_indices(b, &mb);
    if (sa & SIGNS_FIXED) ma = 0;
    if (sb & SIGNS_FIXED) mb = 0;
    if (is_group(a) || is_group(b) || ma || mb) {
        if ((a->kind == GN_SET && b->kind == GN_TUPLE) ||
            (b->kind == GN_SET && a->kind == GN_TUPLE))
            return false;
        /* a bare list against one tuple "(15,-29)" vs "15, -29": compare members */
        const gnode *ga = a->kind == GN_TUPLE && b->kind == GN_LIST && a->open == '(' ? b : NULL;
        const gnode *gb = b->kind == GN_TUPLE && a->kind == GN_LIST && b->open == '(' ? a : NULL;
        if (ga || gb) {
            const gnode *t = ga ? a : b, *l = ga ? b : a;
            bool nested = t->n != l->n || t->close != ')';
            for (int32_t i = 0; i < l->n; i++)
                nested |= l->k[i]->kind == GN_TUPLE;
            if (!nested) {
                for (int32_t i = 0; i < t->n; i++)
                    if (!(t == a ? node_equal(c, t->k[i], 0, l->k[i], 0)
                                 : node_equal(c, l->k[i], 0, t->k[i], 0)))
                        return false;
                return true;
            }
        }
        gitem *A = mart_xmalloc(sizeof(gitem) * MAX_ITEMS * 2), *B = A + MAX_ITEMS;
        int na = 0, nb = 0;
        bool ok = add_items(c, a, A, &na) && add_items(c, b, B, &nb);
        if (a->kind == GN_SET && b->kind == GN_SET) /* {1, 1} = {1} */
            ok =
                ok && items_covered(c, A, na, B, nb, true) && items_covered(c, B, nb, A, na, false);
        else
            ok = ok && items_match(c, A, na, B, nb);
        free(A);
        return ok;
    }
    if (a->kind == GN_TUPLE || b->kind == GN_TUPLE) {
        if (a->kind == GN_MATRIX || b->kind == GN_MATRIX) { /* column vector as a tuple */
            const gnode *m = a->kind == GN_MATRIX ? a : b, *t = m == a ? b : a;
            if ((m->rows != 1 && m->cols != 1) || m->n != t->n || t->open != '(') return false;
            for (int32_t i = 0; i < t->n; i++)
                if (!(m == a ? node_equal(c, m->k[i], 0, t->k[i], 0)
                             : node_equal(c, t->k[i], 0, m->k[i], 0)))
                    return false;
            return true;
        }
        if (a->kind != b->kind || a->n != b->n || a->open != b->open || a->close != b->close)
            return false;
        for (int32_t i = 0; i < a->n; i++)
            if (!node_equal(c, a->k[i], sa, b->k[i], sb)) return false;
        return true;
    }
    if (a->kind == GN_MATRIX || b->kind == GN_MATRIX) {
        if (a->kind != b->kind || a->rows != b->rows || a->cols != b->cols || a->n != b->n)
            return false;
        for (int32_t i = 0; i < a->n; i++)
            if (!node_equal(c, a->k[i], sa, b->k[i], sb)) return false;
        return true;
    }
    if (a->kind == GN_UNION || b->kind == GN_UNION) {
        if (a->kind != b->kind || a->n != b->n) return false;
        if (a->n > MAX_ITEMS) return false;
        gitem *A = mart_xmalloc(sizeof(gitem) * (size_t)a->n * 2), *B = A + a->n;
        for (int32_t i = 0; i < a->n; i++) {
            A[i] = (gitem){a->k[i], sa};
            B[i] = (gitem){b->k[i], sb};
        }
        bool ok = items_match(c, A, a->n, B, b->n);
        free(A);
        return ok;
    }
    if (a->kind == GN_REL || b->kind == GN_REL) {
        if (a->kind != b->kind) return false;
        if (a->op == b->op && node_equal(c, a->k[0], sa, b->k[0], sb) &&
            node_equal(c, a->k[1], sa, b->k[1], sb))
            return true;
        if (a->op == flip_rel(b->op) && node_equal(c, a->k[0], sa, b->k[1], sb) &&
            node_equal(c, a->k[1], sa, b->k[0], sb))
            return true;
        if (definitions_equal(c, a, sa, b, sb)) return true;
        if (a->op == GR_EQ && b->op == GR_EQ) return equations_proportional(c, a, b);
        return false;
    }
    if (a->kind == GN_NUM && b->kind == GN_NUM && (a->base != 10) != (b->base != 10)) {
        /* 2516_8 against 2516: the question asks for base 8, so bare digits are read in base 8
         * (and the decimal value 1358 is not the answer) */
        gnode t = *(a->base == 10 ? a : b);
        t.base = a->base != 10 ? a->base : b->base;
        return a->base == 10 ? scalar_equal(c, &t, sa, b, sb) : scalar_equal(c, a, sa, &t, sb);
    }
    return scalar_equal(c, a, sa, b, sb);
}

/* ---- entry point ------------------------------------------------------------------------- */

const char *grade_verdict_name(grade_verdict v) {
    return v == GRADE_EQUAL ? "equal" : v == GRADE_UNDECIDED ? "undecided" : "unequal";
}

grade_result grade_compare(const char *pred, const char *gold, const grade_config *cfg) {
    grade_config def;
    if (!cfg) {
        grade_config_default(&def);
        cfg = &def;
    }
    grade_result r = {GRADE_UNEQUAL, NULL};
    if (!pred || !gold) return r;
    garena ar = {0};
    bool pt, gt;
    char *p = grade_normalize(&ar, pred, strlen(pred), &pt);
    char *g = grade_normalize(&ar, gold, strlen(gold), &gt);
    char *ps = garena_alloc(&ar, strlen(p) + 1), *gs = garena_alloc(&ar, strlen(g) + 1);
    strip_spaces(ps, p);
    strip_spaces(gs, g);
    if (!*ps || !*gs) goto done;
    if (!strcmp(ps, gs)) {
        r.verdict = GRADE_EQUAL;
        goto done;
    }
    /* multiple choice: "(B) 14" against "(B)" (the letters) or against "14" (the values) */
    const char *pr = NULL, *gr = NULL;
    char gl = choice_label(gs, false, &gr), pl = choice_label(ps, gl != 0, &pr);
    if (!gl && pl) gl = choice_label(gs, true, &gr); /* (b) against (B), either way round */
    if (gl && (!*gr || (pl && !*pr))) {
        r.verdict = pl == gl ? GRADE_EQUAL : GRADE_UNEQUAL;
        goto done;
    }
    if ((gl && pl && pl != gl) || (gl && !pl && !*gr)) goto done;
    if ((gl && *gr) || (pl && *pr)) {
        r = grade_compare(pl ? pr : ps, gl ? gr : gs, cfg);
        goto done;
    }
    /* number words: "seven" is 7 */
    char digits[2][12];
    int pw = pt ? number_word(ps) : -1, gw = gt ? number_word(gs) : -1;
    if (pw >= 0) {
        snprintf(digits[0], sizeof digits[0], "%d", pw);
        p = digits[0];
        pt = false;
    }
    if (gw >= 0) {
        snprintf(digits[1], sizeof digits[1], "%d", gw);
        g = digits[1];
        gt = false;
    }
    if (pt || gt) goto done; /* text answers match only as text */

    gctx c = {.cfg = cfg, .ar = &ar, .point = -1};
    gnode *a = grade_parse(&ar, p, &c.work, cfg->work_limit, &c.limit);
    gnode *b = a ? grade_parse(&ar, g, &c.work, cfg->work_limit, &c.limit) : NULL;
    if (!a || !b) {
        if (c.limit) r = (grade_result){GRADE_UNDECIDED, c.limit};
        goto done;
    }
    if (!collect_syms(&c, a) || !collect_syms(&c, b)) {
        r = (grade_result){GRADE_UNDECIDED, LIMIT_SYMS};
        goto done;
    }
    for (int k = 0; k < c.n_syms; k++) {
        mpq_init(c.sym_q[k]);
        mpfr_init2(c.sym_f[k], GRADE_PREC);
    }
    bool eq = node_equal(&c, a, 0, b, 0) && !c.exhausted;
    if (c.exhausted) undecided(&c, LIMIT_WORK);
    if (eq)
        r = (grade_result){GRADE_EQUAL, c.how};
    else if (c.limit)
        r = (grade_result){GRADE_UNDECIDED, c.limit};
    for (int k = 0; k < c.n_syms; k++) {
        mpq_clear(c.sym_q[k]);
        mpfr_clear(c.sym_f[k]);
    }
    /* MPFR keeps constants (π, log 2) in per-thread caches that a worker thread would leak
     * when it exits; they cost microseconds to recompute at GRADE_PREC */
    if (c.used_mpfr) mpfr_free_cache2(MPFR_FREE_LOCAL_CACHE);
done:
    garena_free(&ar);
    return r;
}

bool grade_equal(const char *pred, const char *gold, const grade_config *cfg) {
    return grade_compare(pred, gold, cfg).verdict == GRADE_EQUAL;
}
