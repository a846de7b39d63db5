/* grade evaluation: the value of an expression tree, exactly (Gaussian rationals with GMP)
 * when it is rational, otherwise numerically (complex numbers as MPFR pairs). Every node costs
 * a step of the work budget, and every operation whose result would be huge (2^{2^{100}},
 * 100000!) refuses in the exact evaluator and overflows to infinity in the numeric one. */
#include "grade/grade_int.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* Work charged for big-number arithmetic: one step per this many bits of the operands
 * (a step is ~1 µs; GMP handles ~256 bits per µs in these multiplications and powers). */
#define BITS_PER_STEP 256
/* Largest exact intermediate, bits (about 300,000 digits, a few ms of GMP). A rational
 * beyond it is too large to decide: the comparison answers false rather than trust a
 * relative tolerance (10^{10^6} and 10^{10^6}+1 are not equal). */
#define EXACT_MAX_BITS (1 << 20)
#define EXACT_MAX_EXP10 300000
/* Largest factorial and binomial argument computed exactly. */
#define EXACT_MAX_FACT 3000
/* Largest binary exponent of a trigonometric argument (|x| < 2^4096). */
#define MAX_TRIG_EXP 4096
/* Largest integer power of a complex number computed by repeated squaring. */
#define MAX_INT_POW 1000000

static bool spend(gctx *c, int64_t steps) {
    c->work += steps;
    if (c->work > c->cfg->work_limit) c->exhausted = true;
    return !c->exhausted;
}

/* The variable's slot; a renamed variable (c->alias_from) takes its new name's value. */
static int sym_index(const gctx *c, const gnode *n) {
    const char *name = n->str;
    int32_t len = n->len;
    if (c->alias_from && len == c->alias_from_len && !memcmp(name, c->alias_from, (size_t)len)) {
        name = c->alias_to;
        len = c->alias_to_len;
    }
    for (int k = 0; k < c->n_syms; k++)
        if (c->sym_len[k] == len && !memcmp(c->sym_name[k], name, (size_t)len)) return k;
    return -1;
}

static bool pm_minus(const gctx *c, const gnode *n) {
    return (c->pm_signs >> n->op) & 1u;
}

/* ---- exact ------------------------------------------------------------------------------- */

static bool q_too_big(gctx *c, const mpq_t q) {
    bool big = mpz_sizeinbase(mpq_numref(q), 2) + mpz_sizeinbase(mpq_denref(q), 2) > EXACT_MAX_BITS;
    if (big) c->too_big = true;
    return big;
}

/* Value of a number literal: decimal with optional exponent, or an integer in another base. */
static bool num_exact(gctx *c, const gnode *n, mpq_t out) {
    if (!spend(c, 1 + n->len / 64)) return false;
    char small[128];
    char *buf = n->len < (int32_t)sizeof small ? small : mart_xmalloc((size_t)n->len + 1);
    bool ok = true;
    if (n->base != 10) {
        memcpy(buf, n->str, (size_t)n->len);
        buf[n->len] = 0;
        for (int32_t i = 0; i < n->len && ok; i++)
            if (!isdigit((unsigned char)buf[i]) || buf[i] - '0' >= n->base) ok = false;
        if (ok) ok = mpz_set_str(mpq_numref(out), buf, n->base) == 0;
        if (ok) mpz_set_ui(mpq_denref(out), 1);
    } else {
        size_t w = 0;
        long frac = 0, exp10 = 0;
        bool dot = false;
        int32_t i = 0;
        for (; i < n->len; i++) {
            char ch = n->str[i];
            if (ch == '.')
                dot = true;
            else if (isdigit((unsigned char)ch)) {
                buf[w++] = ch;
                frac += dot;
            } else
                break;
        }
        if (i < n->len) { /* e[+-]digits */
            bool neg = n->str[i + 1] == '-';
            const char *e = n->str + i + 1 + (n->str[i + 1] == '-' || n->str[i + 1] == '+');
            const char *end = n->str + n->len;
            if (end - e > 7) ok = false, c->too_big = true;
            for (; ok && e < end; e++)
                exp10 = exp10 * 10 + (*e - '0');
            if (neg) exp10 = -exp10;
        }
        exp10 -= frac;
        if (ok && (exp10 > EXACT_MAX_EXP10 || exp10 < -EXACT_MAX_EXP10))
            ok = false, c->too_big = true;
        if (ok && w == 0) buf[w++] = '0';
        buf[w] = 0;
        if (ok) {
            mpz_set_str(mpq_numref(out), buf, 10);
            mpz_set_ui(mpq_denref(out), 1);
            mpz_t p;
            mpz_init(p);
            mpz_ui_pow_ui(p, 10, (unsigned long)(exp10 < 0 ? -exp10 : exp10));
            if (exp10 < 0)
                mpz_set(mpq_denref(out), p);
            else
                mpz_mul(mpq_numref(out), mpq_numref(out), p);
            mpz_clear(p);
            mpq_canonicalize(out);
        }
    }
    if (buf != small) free(buf);
    return ok;
}

/* (ar + i ai) * (br + i bi) into (ar, ai). */
static void cq_mul(mpq_t ar, mpq_t ai, const mpq_t br, const mpq_t bi) {
    mpq_t t1, t2, t3;
    mpq_inits(t1, t2, t3, NULL);
    mpq_mul(t1, ar, br);
    mpq_mul(t2, ai, bi);
    mpq_mul(t3, ar, bi);
    mpq_mul(ai, ai, br);
    mpq_add(ai, ai, t3);
    mpq_sub(ar, t1, t2);
    mpq_clears(t1, t2, t3, NULL);
}

/* Exact k-th root of a nonnegative rational, if it is one. */
static bool q_root(mpq_t out, const mpq_t x, unsigned long k) {
    mpz_t rn, rd;
    mpz_inits(rn, rd, NULL);
    bool ok = mpz_root(rn, mpq_numref(x), k) && mpz_root(rd, mpq_denref(x), k);
    if (ok) {
        mpz_set(mpq_numref(out), rn);
        mpz_set(mpq_denref(out), rd);
        mpq_canonicalize(out);
    }
    mpz_clears(rn, rd, NULL);
    return ok;
}

static bool is_integer_q(const mpq_t q) {
    return mpz_cmp_ui(mpq_denref(q), 1) == 0;
}

/* log_b x for rationals x = b^k (k an integer): exact, so that \lfloor \log_2 8 \rfloor is 3
 * and not the floor of 2.999...; re holds x on entry. False for other logarithms. */
static bool log_exact(gctx *c, const gnode *n, mpq_t re, mpq_t im) {
    if (!n->k[1] || mpq_sgn(im) != 0 || mpq_sgn(re) <= 0) return false;
    mpq_t br, bi, t;
    mpq_inits(br, bi, t, NULL);
    bool ok = grade_eval_exact(c, n->k[1], br, bi) && mpq_sgn(bi) == 0 && mpq_sgn(br) > 0 &&
              mpq_cmp_ui(br, 1, 1) != 0;
    if (ok) {
        double k = round(log(fabs(mpq_get_d(re))) / log(mpq_get_d(br)));
        ok = isfinite(k) && fabs(k) <= 64 &&
             fabs(k) * (double)(mpz_sizeinbase(mpq_numref(br), 2) +
                                mpz_sizeinbase(mpq_denref(br), 2)) <=
                 EXACT_MAX_BITS;
        if (ok) {
            unsigned long uk = (unsigned long)fabs(k);
            mpz_pow_ui(mpq_numref(t), mpq_numref(br), uk);
            mpz_pow_ui(mpq_denref(t), mpq_denref(br), uk);
            if (k < 0) mpq_inv(t, t);
            ok = mpq_equal(t, re);
            if (ok) mpq_set_si(re, (long)k, 1);
        }
    }
    mpq_clears(br, bi, t, NULL);
    return ok;
}

static bool pow_exact(gctx *c, mpq_t re, mpq_t im, const mpq_t er, const mpq_t ei) {
    if (mpq_sgn(ei) != 0) return false;
    if (!mpz_fits_slong_p(mpq_numref(er)) || !mpz_fits_ulong_p(mpq_denref(er))) return false;
    long p = mpz_get_si(mpq_numref(er));
    unsigned long q = mpz_get_ui(mpq_denref(er));
    if (mpq_sgn(re) == 0 && mpq_sgn(im) == 0) return p > 0; /* 0^p = 0 for p > 0 */
    bool real = mpq_sgn(im) == 0;
    if (q > 1) {
        if (!real || q > 64) return false;
        bool neg = mpq_sgn(re) < 0;
        if (neg && q % 2 == 0) return false;
        if (neg) mpq_neg(re, re);
        if (!q_root(re, re, q)) return false;
        if (neg) mpq_neg(re, re);
    }
    unsigned long up = (unsigned long)(p < 0 ? -p : p);
    if (real) {
        bool unit = mpz_cmpabs_ui(mpq_numref(re), 1) == 0 && is_integer_q(re);
        double bits = (double)up * (double)(mpz_sizeinbase(mpq_numref(re), 2) +
                                            mpz_sizeinbase(mpq_denref(re), 2));
        if (!unit && (up > MAX_INT_POW || bits > EXACT_MAX_BITS)) {
            c->too_big = true;
            return false;
        }
        if (!spend(c, 1 + (int64_t)(bits / BITS_PER_STEP))) return false;
        if (unit) {
            if (mpz_sgn(mpq_numref(re)) < 0 && up % 2 == 0) mpq_set_ui(re, 1, 1);
        } else {
            mpz_pow_ui(mpq_numref(re), mpq_numref(re), up);
            mpz_pow_ui(mpq_denref(re), mpq_denref(re), up);
        }
    } else {
        if (up > 256) {
            c->too_big = true;
            return false;
        }
        mpq_t br, bi, rr, ri;
        mpq_inits(br, bi, rr, ri, NULL);
        mpq_set(br, re);
        mpq_set(bi, im);
        mpq_set_ui(rr, 1, 1);
        bool ok = true;
        for (unsigned long e = up; e && ok; e >>= 1) {
            if (e & 1) cq_mul(rr, ri, br, bi);
            if (e > 1) {
                mpq_t sr, si;
                mpq_inits(sr, si, NULL);
                mpq_set(sr, br);
                mpq_set(si, bi);
                cq_mul(br, bi, sr, si);
                mpq_clears(sr, si, NULL);
            }
            ok = !q_too_big(c, rr) && !q_too_big(c, ri) && !q_too_big(c, br) && spend(c, 1);
        }
        mpq_set(re, rr);
        mpq_set(im, ri);
        mpq_clears(br, bi, rr, ri, NULL);
        if (!ok) return false;
    }
    if (p < 0) { /* 1 / z */
        mpq_t d, t;
        mpq_inits(d, t, NULL);
        mpq_mul(d, re, re);
        mpq_mul(t, im, im);
        mpq_add(d, d, t);
        bool ok = mpq_sgn(d) != 0;
        if (ok) {
            mpq_div(re, re, d);
            mpq_div(im, im, d);
            mpq_neg(im, im);
        }
        mpq_clears(d, t, NULL);
        return ok;
    }
    return true;
}

bool grade_eval_exact(gctx *c, const gnode *n, mpq_t re, mpq_t im) {
    if (!spend(c, 1)) return false;
    mpq_set_ui(im, 0, 1);
    switch ((gnode_kind)n->kind) {
    case GN_NUM:
        return num_exact(c, n, re);
    case GN_SYM: {
        if (n->op == GC_I) {
            mpq_set_ui(re, 0, 1);
            mpq_set_ui(im, 1, 1);
            return true;
        }
        if (n->op != GC_VAR || c->point < 0) return false;
        int k = sym_index(c, n);
        if (k < 0) return false;
        mpq_set(re, c->sym_q[k]);
        return true;
    }
    case GN_ADD:
    case GN_SUB:
    case GN_PM:
    case GN_MUL:
    case GN_DIV:
    case GN_POW:
    case GN_BINOM: {
        mpq_t br, bi;
        mpq_inits(br, bi, NULL);
        bool ok = true;
        if (n->k[0])
            ok = grade_eval_exact(c, n->k[0], re, im);
        else
            mpq_set_ui(re, 0, 1);
        ok = ok && grade_eval_exact(c, n->k[1], br, bi);
        if (ok) {
            size_t bits = mpz_sizeinbase(mpq_numref(re), 2) + mpz_sizeinbase(mpq_denref(re), 2) +
                          mpz_sizeinbase(mpq_numref(br), 2) + mpz_sizeinbase(mpq_denref(br), 2);
            ok = spend(c, (int64_t)(bits / BITS_PER_STEP));
        }
        if (ok) switch ((gnode_kind)n->kind) {
            case GN_ADD:
                mpq_add(re, re, br);
                mpq_add(im, im, bi);
                break;
            case GN_SUB:
            case GN_PM:
                if (n->kind == GN_SUB || pm_minus(c, n)) {
                    mpq_sub(re, re, br);
                    mpq_sub(im, im, bi);
                } else {
                    mpq_add(re, re, br);
                    mpq_add(im, im, bi);
                }
                break;
            case GN_MUL:
                cq_mul(re, im, br, bi);
                break;
            case GN_DIV: {
                mpq_t d, t, nr;
                mpq_inits(d, t, nr, NULL);
                mpq_mul(d, br, br);
                mpq_mul(t, bi, bi);
                mpq_add(d, d, t);
                if (mpq_sgn(d) == 0)
                    ok = false;
                else { /* (a+bi)/(c+di) = ((ac+bd) + (bc-ad)i) / (c^2+d^2) */
                    mpq_mul(nr, re, br);
                    mpq_mul(t, im, bi);
                    mpq_add(nr, nr, t);
                    mpq_mul(t, re, bi);
                    mpq_mul(im, im, br);
                    mpq_sub(im, im, t);
                    mpq_div(re, nr, d);
                    mpq_div(im, im, d);
                }
                mpq_clears(d, t, nr, NULL);
                break;
            }
            case GN_POW:
                ok = pow_exact(c, re, im, br, bi);
                break;
            case GN_BINOM: /* integers: C(n, k) with k or n - k small */
                ok = mpq_sgn(im) == 0 && mpq_sgn(bi) == 0 && is_integer_q(re) && is_integer_q(br) &&
                     mpz_fits_slong_p(mpq_numref(re)) && mpz_fits_slong_p(mpq_numref(br));
                if (ok) {
                    long nn = mpz_get_si(mpq_numref(re)), k = mpz_get_si(mpq_numref(br));
                    if (nn >= 0 && k > nn - k) k = nn - k;
                    if (k < 0)
                        mpq_set_ui(re, 0, 1);
                    else if (k > EXACT_MAX_FACT)
                        ok = false, c->too_big = true;
                    else if ((ok = spend(c, 1 + k / 64)))
                        mpz_bin_ui(mpq_numref(re), mpq_numref(re), (unsigned long)k);
                }
                break;
            default:
                break;
            }
        ok = ok && !q_too_big(c, re) && !q_too_big(c, im);
        mpq_clears(br, bi, NULL);
        return ok;
    }
    case GN_NEG:
        if (!grade_eval_exact(c, n->k[0], re, im)) return false;
        mpq_neg(re, re);
        mpq_neg(im, im);
        return true;
    case GN_PCT:
        if (!grade_eval_exact(c, n->k[0], re, im)) return false;
        if (!c->pct_ignore) {
            mpq_t h;
            mpq_init(h);
            mpq_set_ui(h, 1, 100);
            mpq_mul(re, re, h);
            mpq_mul(im, im, h);
            mpq_clear(h);
        }
        return true;
    case GN_FACT:
        if (!grade_eval_exact(c, n->k[0], re, im)) return false;
        if (mpq_sgn(im) || !is_integer_q(re) || mpz_sgn(mpq_numref(re)) < 0) return false;
        if (mpz_cmp_ui(mpq_numref(re), EXACT_MAX_FACT) > 0) {
            c->too_big = true;
            return false;
        }
        if (!spend(c, 10)) return false;
        mpz_fac_ui(mpq_numref(re), mpz_get_ui(mpq_numref(re)));
        return true;
    case GN_FUNC: {
        if (!grade_eval_exact(c, n->k[0], re, im)) return false;
        bool real = mpq_sgn(im) == 0;
        switch (n->op) {
        case GF_ABS:
            if (!real && mpq_sgn(re) != 0) return false;
            if (!real) mpq_swap(re, im);
            mpq_abs(re, re);
            mpq_set_ui(im, 0, 1);
            return true;
        case GF_FLOOR:
        case GF_CEIL:
            if (!real) return false;
            if (n->op == GF_FLOOR)
                mpz_fdiv_q(mpq_numref(re), mpq_numref(re), mpq_denref(re));
            else
                mpz_cdiv_q(mpq_numref(re), mpq_numref(re), mpq_denref(re));
            mpz_set_ui(mpq_denref(re), 1);
            return true;
        case GF_LOG:
            return log_exact(c, n, re, im);
        case GF_SQRT: {
            unsigned long k = 2;
            if (n->k[1]) {
                mpq_t ir, ii;
                mpq_inits(ir, ii, NULL);
                bool ok = grade_eval_exact(c, n->k[1], ir, ii) && mpq_sgn(ii) == 0 &&
                          is_integer_q(ir) && mpz_cmp_ui(mpq_numref(ir), 2) >= 0 &&
                          mpz_cmp_ui(mpq_numref(ir), 64) <= 0;
                if (ok) k = mpz_get_ui(mpq_numref(ir));
                mpq_clears(ir, ii, NULL);
                if (!ok) return false;
            }
            if (!real) return false;
            bool neg = mpq_sgn(re) < 0;
            if (neg && k % 2 == 1) {
                mpq_neg(re, re);
                if (!q_root(re, re, k)) return false;
                mpq_neg(re, re);
                return true;
            }
            if (neg) { /* √(-x) = i√x */
                if (k != 2) return false;
                mpq_neg(re, re);
                if (!q_root(re, re, 2)) return false;
                mpq_swap(re, im);
                return true;
            }
            return q_root(re, re, k);
        }
        default:
            return false; /* transcendental: numerics */
        }
    }
    default:
        return false;
    }
}

/* ---- numeric ----------------------------------------------------------------------------- */

typedef struct {
    mpfr_t re, im;
} cnum;

static void cn_init(cnum *z) {
    mpfr_init2(z->re, GRADE_PREC);
    mpfr_init2(z->im, GRADE_PREC);
    mpfr_set_zero(z->re, 1);
    mpfr_set_zero(z->im, 1);
}

static void cn_clear(cnum *z) {
    mpfr_clear(z->re);
    mpfr_clear(z->im);
}

static bool real_p(mpfr_t im) {
    return mpfr_zero_p(im);
}

/* z = a * b (z may alias a) */
static void cn_mul(mpfr_t zr, mpfr_t zi, mpfr_t ar, mpfr_t ai, mpfr_t br, mpfr_t bi) {
    if (real_p(ai) && real_p(bi)) {
        mpfr_mul(zr, ar, br, MPFR_RNDN);
        mpfr_set_zero(zi, 1);
        return;
    }
    mpfr_t t1, t2, t3;
    mpfr_inits2(GRADE_PREC, t1, t2, t3, (mpfr_ptr)0);
    mpfr_mul(t1, ar, br, MPFR_RNDN);
    mpfr_mul(t2, ai, bi, MPFR_RNDN);
    mpfr_mul(t3, ar, bi, MPFR_RNDN);
    mpfr_mul(zi, ai, br, MPFR_RNDN);
    mpfr_add(zi, zi, t3, MPFR_RNDN);
    mpfr_sub(zr, t1, t2, MPFR_RNDN);
    mpfr_clears(t1, t2, t3, (mpfr_ptr)0);
}

static bool cn_div(mpfr_t zr, mpfr_t zi, mpfr_t br, mpfr_t bi) {
    if (real_p(bi)) {
        if (mpfr_zero_p(br)) return false;
        mpfr_div(zr, zr, br, MPFR_RNDN);
        mpfr_div(zi, zi, br, MPFR_RNDN);
        return true;
    }
    mpfr_t d, t, nr;
    mpfr_inits2(GRADE_PREC, d, t, nr, (mpfr_ptr)0);
    mpfr_sqr(d, br, MPFR_RNDN);
    mpfr_sqr(t, bi, MPFR_RNDN);
    mpfr_add(d, d, t, MPFR_RNDN);
    bool ok = !mpfr_zero_p(d);
    if (ok) {
        mpfr_mul(nr, zr, br, MPFR_RNDN);
        mpfr_mul(t, zi, bi, MPFR_RNDN);
        mpfr_add(nr, nr, t, MPFR_RNDN);
        mpfr_mul(t, zr, bi, MPFR_RNDN);
        mpfr_mul(zi, zi, br, MPFR_RNDN);
        mpfr_sub(zi, zi, t, MPFR_RNDN);
        mpfr_div(zr, nr, d, MPFR_RNDN);
        mpfr_div(zi, zi, d, MPFR_RNDN);
    }
    mpfr_clears(d, t, nr, (mpfr_ptr)0);
    return ok;
}

/* Principal complex logarithm: ln|z| + i arg z. */
static bool cn_log(mpfr_t zr, mpfr_t zi) {
    if (mpfr_zero_p(zr) && mpfr_zero_p(zi)) return false;
    mpfr_t m;
    mpfr_init2(m, GRADE_PREC);
    mpfr_hypot(m, zr, zi, MPFR_RNDN);
    mpfr_atan2(zi, zi, zr, MPFR_RNDN);
    mpfr_log(zr, m, MPFR_RNDN);
    mpfr_clear(m);
    return true;
}

static void cn_exp(mpfr_t zr, mpfr_t zi) {
    if (real_p(zi)) {
        mpfr_exp(zr, zr, MPFR_RNDN);
        if (mpfr_zero_p(zr)) mpfr_set_nan(zr); /* underflow: too small to decide */
        return;
    }
    mpfr_t m;
    mpfr_init2(m, GRADE_PREC);
    mpfr_exp(m, zr, MPFR_RNDN);
    mpfr_sin_cos(zi, zr, zi, MPFR_RNDN);
    mpfr_mul(zr, zr, m, MPFR_RNDN);
    mpfr_mul(zi, zi, m, MPFR_RNDN);
    mpfr_clear(m);
}

static bool pow_num(gctx *c, mpfr_t zr, mpfr_t zi, mpfr_t er, mpfr_t ei) {
    if (real_p(zi) && real_p(ei)) {
        if (mpfr_zero_p(zr)) return mpfr_sgn(er) > 0; /* 0^p = 0 for p > 0 */
        if (mpfr_sgn(zr) > 0 || mpfr_integer_p(er)) {
            mpfr_pow(zr, zr, er, MPFR_RNDN);
            return !mpfr_zero_p(zr); /* underflow: too small to decide */
        }
    }
    if (real_p(ei) && mpfr_integer_p(er) && mpfr_cmpabs_ui(er, 64) <= 0) {
        long p = mpfr_get_si(er, MPFR_RNDN);
        cnum b, r;
        cn_init(&b);
        cn_init(&r);
        mpfr_set(b.re, zr, MPFR_RNDN);
        mpfr_set(b.im, zi, MPFR_RNDN);
        mpfr_set_ui(r.re, 1, MPFR_RNDN);
        for (unsigned long e = (unsigned long)(p < 0 ? -p : p); e; e >>= 1) {
            if (e & 1) cn_mul(r.re, r.im, r.re, r.im, b.re, b.im);
            if (e > 1) cn_mul(b.re, b.im, b.re, b.im, b.re, b.im);
        }
        bool ok = true;
        if (p < 0) {
            mpfr_set_ui(zr, 1, MPFR_RNDN);
            mpfr_set_zero(zi, 1);
            ok = cn_div(zr, zi, r.re, r.im);
        } else {
            mpfr_set(zr, r.re, MPFR_RNDN);
            mpfr_set(zi, r.im, MPFR_RNDN);
        }
        cn_clear(&b);
        cn_clear(&r);
        return ok;
    }
    /* z^w = exp(w log z) (principal branch) */
    if (!spend(c, 4) || !cn_log(zr, zi)) return false;
    cn_mul(zr, zi, zr, zi, er, ei);
    cn_exp(zr, zi);
    return true;
}

static bool num_value(gctx *c, const gnode *n, mpfr_t re) {
    if (!spend(c, 1 + n->len / 64)) return false;
    char small[128];
    char *buf = n->len < (int32_t)sizeof small ? small : mart_xmalloc((size_t)n->len + 1);
    memcpy(buf, n->str, (size_t)n->len);
    buf[n->len] = 0;
    char *end = NULL;
    bool ok = true;
    if (n->base != 10)
        for (int32_t i = 0; i < n->len; i++)
            if (!isdigit((unsigned char)buf[i]) || buf[i] - '0' >= n->base) ok = false;
    if (ok) {
        mpfr_strtofr(re, buf, &end, n->base, MPFR_RNDN);
        ok = end && *end == 0;
        if (ok && mpfr_zero_p(re)) /* 1e-9999999999 underflows; 0.000 does not */
            for (int32_t i = 0; i < n->len && buf[i] != 'e' && buf[i] != 'E'; i++)
                if (buf[i] >= '1' && buf[i] <= '9') ok = false;
    }
    if (buf != small) free(buf);
    return ok;
}

bool grade_eval_num(gctx *c, const gnode *n, mpfr_t re, mpfr_t im) {
    if (!spend(c, 1)) return false;
    mpfr_set_zero(im, 1);
    bool ok = true;
    switch ((gnode_kind)n->kind) {
    case GN_NUM:
        ok = num_value(c, n, re);
        break;
    case GN_INF:
        mpfr_set_inf(re, 1);
        break;
    case GN_SYM:
        if (n->op == GC_PI)
            mpfr_const_pi(re, MPFR_RNDN);
        else if (n->op == GC_E) {
            mpfr_set_ui(re, 1, MPFR_RNDN);
            mpfr_exp(re, re, MPFR_RNDN);
        } else if (n->op == GC_I) {
            mpfr_set_zero(re, 1);
            mpfr_set_ui(im, 1, MPFR_RNDN);
        } else {
            int k = c->point >= 0 ? sym_index(c, n) : -1;
            if (k < 0)
                ok = false;
            else
                mpfr_set(re, c->sym_f[k], MPFR_RNDN);
        }
        break;
    case GN_ADD:
    case GN_SUB:
    case GN_PM:
    case GN_MUL:
    case GN_DIV:
    case GN_POW:
    case GN_BINOM: {
        cnum b;
        cn_init(&b);
        if (n->k[0])
            ok = grade_eval_num(c, n->k[0], re, im);
        else
            mpfr_set_zero(re, 1);
        ok = ok && grade_eval_num(c, n->k[1], b.re, b.im);
        if (ok) switch ((gnode_kind)n->kind) {
            case GN_ADD:
                mpfr_add(re, re, b.re, MPFR_RNDN);
                mpfr_add(im, im, b.im, MPFR_RNDN);
                break;
            case GN_SUB:
            case GN_PM:
                if (n->kind == GN_SUB || pm_minus(c, n)) {
                    mpfr_sub(re, re, b.re, MPFR_RNDN);
                    mpfr_sub(im, im, b.im, MPFR_RNDN);
                } else {
                    mpfr_add(re, re, b.re, MPFR_RNDN);
                    mpfr_add(im, im, b.im, MPFR_RNDN);
                }
                break;
            case GN_MUL:
                cn_mul(re, im, re, im, b.re, b.im);
                break;
            case GN_DIV:
                ok = cn_div(re, im, b.re, b.im);
                break;
            case GN_POW:
                ok = pow_num(c, re, im, b.re, b.im);
                break;
            case GN_BINOM: { /* n(n-1)...(n-k+1)/k! for a small integer k and any n, else
                              * n!/(k!(n-k)!) for real n >= k >= 0 through log-gamma */
                if (real_p(im) && real_p(b.im) && mpfr_integer_p(b.re) && mpfr_sgn(b.re) >= 0 &&
                    mpfr_cmp_ui(b.re, 64) <= 0) {
                    unsigned long k = mpfr_get_ui(b.re, MPFR_RNDN);
                    mpfr_t t, f;
                    mpfr_inits2(GRADE_PREC, t, f, (mpfr_ptr)0);
                    mpfr_set_ui(f, 1, MPFR_RNDN);
                    for (unsigned long j = 0; j < k; j++) {
                        mpfr_sub_ui(t, re, j, MPFR_RNDN);
                        mpfr_mul(f, f, t, MPFR_RNDN);
                        mpfr_div_ui(f, f, j + 1, MPFR_RNDN);
                    }
                    mpfr_set(re, f, MPFR_RNDN);
                    mpfr_clears(t, f, (mpfr_ptr)0);
                    break;
                }
                ok = real_p(im) && real_p(b.im) && mpfr_sgn(b.re) >= 0 && mpfr_cmp(re, b.re) >= 0;
                if (ok) {
                    bool integers = mpfr_integer_p(re) && mpfr_integer_p(b.re);
                    mpfr_t t, u;
                    mpfr_inits2(GRADE_PREC, t, u, (mpfr_ptr)0);
                    mpfr_sub(t, re, b.re, MPFR_RNDN);
                    mpfr_add_ui(t, t, 1, MPFR_RNDN);
                    mpfr_lngamma(t, t, MPFR_RNDN);
                    mpfr_add_ui(u, b.re, 1, MPFR_RNDN);
                    mpfr_lngamma(u, u, MPFR_RNDN);
                    mpfr_add(t, t, u, MPFR_RNDN);
                    mpfr_add_ui(re, re, 1, MPFR_RNDN);
                    mpfr_lngamma(re, re, MPFR_RNDN);
                    mpfr_sub(re, re, t, MPFR_RNDN);
                    mpfr_exp(re, re, MPFR_RNDN);
                    if (integers) mpfr_round(re, re);
                    mpfr_clears(t, u, (mpfr_ptr)0);
                }
                break;
            }
            default:
                break;
            }
        cn_clear(&b);
        break;
    }
    case GN_NEG:
        ok = grade_eval_num(c, n->k[0], re, im);
        mpfr_neg(re, re, MPFR_RNDN);
        mpfr_neg(im, im, MPFR_RNDN);
        break;
    case GN_PCT:
        ok = grade_eval_num(c, n->k[0], re, im);
        if (ok && !c->pct_ignore) {
            mpfr_div_ui(re, re, 100, MPFR_RNDN);
            mpfr_div_ui(im, im, 100, MPFR_RNDN);
        }
        break;
    case GN_FACT:
        ok = grade_eval_num(c, n->k[0], re, im) && real_p(im) &&
             !(mpfr_integer_p(re) && mpfr_sgn(re) < 0);
        if (ok) {
            mpfr_add_ui(re, re, 1, MPFR_RNDN);
            mpfr_gamma(re, re, MPFR_RNDN);
        }
        break;
    case GN_FUNC: {
        ok = grade_eval_num(c, n->k[0], re, im);
        if (!ok) break;
        bool real = real_p(im);
        switch (n->op) {
        case GF_ABS:
            mpfr_hypot(re, re, im, MPFR_RNDN);
            mpfr_set_zero(im, 1);
            break;
        case GF_EXP:
            cn_exp(re, im);
            break;
        case GF_LN:
        case GF_LOG:
            ok = real ? mpfr_sgn(re) > 0 : cn_log(re, im);
            if (ok && real) mpfr_log(re, re, MPFR_RNDN);
            if (ok && n->k[1]) { /* log_b x = ln x / ln b */
                cnum b;
                cn_init(&b);
                ok = grade_eval_num(c, n->k[1], b.re, b.im) && cn_log(b.re, b.im) &&
                     cn_div(re, im, b.re, b.im);
                cn_clear(&b);
            }
            break;
        case GF_SQRT: {
            if (n->k[1]) { /* n-th root */
                cnum k;
                cn_init(&k);
                ok = grade_eval_num(c, n->k[1], k.re, k.im) && real_p(k.im) && real &&
                     mpfr_sgn(k.re) > 0;
                if (ok && mpfr_integer_p(k.re) && mpfr_cmp_ui(k.re, 1000000) <= 0) {
                    unsigned long kk = mpfr_get_ui(k.re, MPFR_RNDN);
                    if (mpfr_sgn(re) < 0 && kk % 2 == 0)
                        ok = false;
                    else
                        mpfr_rootn_ui(re, re, kk, MPFR_RNDN);
                } else if (ok) {
                    ok = mpfr_sgn(re) >= 0;
                    mpfr_ui_div(k.re, 1, k.re, MPFR_RNDN);
                    if (ok) mpfr_pow(re, re, k.re, MPFR_RNDN);
                }
                cn_clear(&k);
                break;
            }
            if (real && mpfr_sgn(re) >= 0)
                mpfr_sqrt(re, re, MPFR_RNDN);
            else if (real) { /* √(-x) = i√x */
                mpfr_neg(re, re, MPFR_RNDN);
                mpfr_sqrt(im, re, MPFR_RNDN);
                mpfr_set_zero(re, 1);
            } else { /* principal root: √((|z|+x)/2) + i sgn(y) √((|z|-x)/2) */
                mpfr_t m, t;
                mpfr_inits2(GRADE_PREC, m, t, (mpfr_ptr)0);
                mpfr_hypot(m, re, im, MPFR_RNDN);
                int sy = mpfr_sgn(im);
                mpfr_sub(t, m, re, MPFR_RNDN);
                mpfr_div_2ui(t, t, 1, MPFR_RNDN);
                mpfr_sqrt(im, t, MPFR_RNDN);
                if (sy < 0) mpfr_neg(im, im, MPFR_RNDN);
                mpfr_add(t, m, re, MPFR_RNDN);
                mpfr_div_2ui(t, t, 1, MPFR_RNDN);
                mpfr_sqrt(re, t, MPFR_RNDN);
                mpfr_clears(m, t, (mpfr_ptr)0);
            }
            break;
        }
        default:
            if (!real) {
                ok = false;
                break;
            }
            /* periodic functions reduce their argument modulo π with as many bits as its
             * exponent: sin(e^{11!}) would take minutes, so huge arguments are undecidable */
            if (n->op <= GF_CSC && mpfr_regular_p(re) && mpfr_get_exp(re) > MAX_TRIG_EXP) {
                c->too_big = true;
                ok = false;
                break;
            }
            switch (n->op) {
            case GF_SIN:
                mpfr_sin(re, re, MPFR_RNDN);
                break;
            case GF_COS:
                mpfr_cos(re, re, MPFR_RNDN);
                break;
            case GF_TAN:
                mpfr_tan(re, re, MPFR_RNDN);
                break;
            case GF_COT:
                mpfr_cot(re, re, MPFR_RNDN);
                break;
            case GF_SEC:
                mpfr_sec(re, re, MPFR_RNDN);
                break;
            case GF_CSC:
                mpfr_csc(re, re, MPFR_RNDN);
                break;
            case GF_ASIN:
                mpfr_asin(re, re, MPFR_RNDN);
                break;
            case GF_ACOS:
                mpfr_acos(re, re, MPFR_RNDN);
                break;
            case GF_ATAN:
                mpfr_atan(re, re, MPFR_RNDN);
                break;
            case GF_SINH:
                mpfr_sinh(re, re, MPFR_RNDN);
                break;
            case GF_COSH:
                mpfr_cosh(re, re, MPFR_RNDN);
                break;
            case GF_TANH:
                mpfr_tanh(re, re, MPFR_RNDN);
                break;
            case GF_FLOOR:
                mpfr_floor(re, re);
                break;
            case GF_CEIL:
                mpfr_ceil(re, re);
                break;
            default:
                ok = false;
            }
        }
        break;
    }
    default:
        ok = false; /* structures have no single value */
    }
    /* only \infty itself (and sums or negations of it) is infinite; an overflow such as
     * 2^{2^{2^{100}}} is a number too large to decide, not infinity */
    bool carries_inf = n->kind == GN_INF || n->kind == GN_NEG || n->kind == GN_ADD ||
                       n->kind == GN_SUB || n->kind == GN_PM || n->kind == GN_PCT;
    if (!carries_inf && (mpfr_inf_p(re) || mpfr_inf_p(im))) {
        c->too_big = true;
        ok = false;
    }
    return ok && !mpfr_nan_p(re) && !mpfr_nan_p(im) && !c->exhausted;
}
