/* grade parser: normalized LaTeX → expression tree. A lexer cuts the string into numbers,
 * letters, commands and punctuation; a recursive-descent parser builds the tree in an arena.
 * Both count their steps against the work budget and cap the nesting depth, so any input,
 * however long or deep, returns promptly (NULL when it is not mathematics we read). */
#include "grade/grade_int.h"

#include <ctype.h>
#include <string.h>

/* Nesting of grammar rules: each level of brackets, braces, fractions or roots passes through
 * about five, so this admits about 100 levels (real answers need 20-30: continued fractions,
 * nested radicals); deeper input is undecided, not recursed into. */
#define MAX_DEPTH 500
/* Tallest tree. Every walk over the tree recurses along its height, so taller trees are
 * undecided to keep the stack small in worker threads. Sums and products are built balanced
 * (height log2 of their length), so only nesting makes a tree tall. */
#define MAX_HEIGHT 300
/* The reasons a parse stops at a bound (grade_result.reason). */
#define LIMIT_WORK "work limit reached"
#define LIMIT_DEPTH "nesting deeper than about 100 levels"
#define LIMIT_HEIGHT "expression tree taller than 300 levels"
#define LIMIT_PM "more than 16 \\pm signs"

typedef enum { T_END, T_NUM, T_SYM, T_CMD, T_CH } ttype;

typedef struct {
    uint8_t type;
    char ch;     /* T_CH: the character */
    int32_t pos; /* T_NUM/T_SYM/T_CMD: text start (command name without the backslash) */
    int32_t len;
} gtok;

typedef struct {
    const char *s;
    gtok *t;
    int32_t n, i;
    garena *ar;
    int64_t *work, limit;
    int depth;
    int abs_depth; /* inside |...|: a '|' closes instead of opening */
    int n_pm;      /* ± seen so far (their index) */
    bool fail;
    const char *limit_hit; /* the bound that made the parse fail, or NULL */
} gparser;

/* Bare words read as commands: "sqrt(2)", "sin x", "pi". */
static bool bare_command(const char *w, size_t n) {
    static const char *names[] = {"sqrt", "sin",    "cos",    "tan",    "log",   "ln", "exp",
                                  "pi",   "arcsin", "arccos", "arctan", "infty", "inf"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && !memcmp(names[k], w, n)) return true;
    return false;
}

static int32_t lex(const char *s, size_t len, gtok *t) {
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ') {
            i++;
            continue;
        }
        gtok k = {.type = T_CH, .ch = (char)ch, .pos = (int32_t)i, .len = 1};
        if (isdigit(ch) || (ch == '.' && i + 1 < len && isdigit((unsigned char)s[i + 1]))) {
            size_t j = i;
            while (j < len && isdigit((unsigned char)s[j]))
                j++;
            if (j < len && s[j] == '.' && j + 1 < len && isdigit((unsigned char)s[j + 1])) {
                j++;
                while (j < len && isdigit((unsigned char)s[j]))
                    j++;
            } else if (j < len && s[j] == '.' && !(j + 1 < len && s[j + 1] == '.')) {
                j++; /* "5." */
            }
            /* scientific notation 4.5e33, 1E-7 (but not "2e" = 2·e) */
            if (j + 1 < len && (s[j] == 'e' || s[j] == 'E')) {
                size_t q = j + 1;
                if (q < len && (s[q] == '-' || s[q] == '+')) q++;
                if (q < len && isdigit((unsigned char)s[q])) {
                    while (q < len && isdigit((unsigned char)s[q]))
                        q++;
                    j = q;
                }
            }
            k.type = T_NUM;
            k.len = (int32_t)(j - i);
            i = j;
        } else if (isalpha(ch)) {
            size_t j = i;
            while (j < len && isalpha((unsigned char)s[j]))
                j++;
            if (bare_command(s + i, j - i)) {
                k.type = T_CMD;
                k.len = (int32_t)(j - i);
                i = j;
            } else { /* one letter and its primes: y, y'' */
                k.type = T_SYM;
                i++;
                while (i < len && s[i] == '\'')
                    i++;
                k.len = (int32_t)(i - (size_t)k.pos);
            }
        } else if (ch == '\\' && i + 1 < len) {
            size_t j = i + 1;
            if (isalpha((unsigned char)s[j])) {
                while (j < len && isalpha((unsigned char)s[j]))
                    j++;
            } else {
                j++;
            }
            k.type = T_CMD;
            k.pos = (int32_t)(i + 1);
            k.len = (int32_t)(j - i - 1);
            i = j;
        } else {
            i++;
        }
        t[n++] = k;
    }
    t[n] = (gtok){.type = T_END, .pos = (int32_t)len};
    return n;
}

/* ---- token tests ------------------------------------------------------------------------- */

static const gtok *peek(gparser *p) {
    return &p->t[p->i];
}

static bool is_ch(const gtok *t, char c) {
    return t->type == T_CH && t->ch == c;
}

static bool is_cmd(gparser *p, const gtok *t, const char *name) {
    size_t n = strlen(name);
    return t->type == T_CMD && (size_t)t->len == n && !memcmp(p->s + t->pos, name, n);
}

static bool accept_ch(gparser *p, char c) {
    if (is_ch(peek(p), c)) {
        p->i++;
        return true;
    }
    return false;
}

static bool accept_cmd(gparser *p, const char *name) {
    if (is_cmd(p, peek(p), name)) {
        p->i++;
        return true;
    }
    return false;
}

static gnode *fail(gparser *p) {
    p->fail = true;
    return NULL;
}

/* Fails the parse at a bound, naming it. */
static gnode *fail_limit(gparser *p, const char *why) {
    if (!p->limit_hit) p->limit_hit = why;
    return fail(p);
}

static bool step(gparser *p) {
    if (++*p->work > p->limit) fail_limit(p, LIMIT_WORK);
    return !p->fail;
}

static gnode *mk(gparser *p, gnode_kind kind, int32_t n) {
    gnode *x = garena_alloc(p->ar, sizeof *x);
    x->kind = (uint8_t)kind;
    x->n = n;
    x->height = 1;
    if (n) x->k = garena_alloc(p->ar, sizeof(gnode *) * (size_t)n);
    return x;
}

/* Sets x->height from its children; rejects the parse when the tree grows too tall. */
static gnode *grow(gparser *p, gnode *x) {
    int32_t h = 0;
    for (int32_t i = 0; i < x->n; i++)
        if (x->k[i] && x->k[i]->height > h) h = x->k[i]->height;
    x->height = h + 1;
    if (x->height > MAX_HEIGHT) fail_limit(p, LIMIT_HEIGHT);
    return x;
}

static gnode *mk2(gparser *p, gnode_kind kind, gnode *a, gnode *b) {
    gnode *x = mk(p, kind, 2);
    x->k[0] = a;
    x->k[1] = b;
    return grow(p, x);
}

static gnode *mk1(gparser *p, gnode_kind kind, gnode *a) {
    gnode *x = mk(p, kind, 1);
    x->k[0] = a;
    return grow(p, x);
}

/* ---- grammar ----------------------------------------------------------------------------- */
/* list := item (',' item)* ; item := union (relop union)* ; union := sum ('\cup' sum)*
 * sum := ['+'|'-'|'\pm'] term (('+'|'-'|'\pm') term)* ; term := unary (('*'|'/'|implicit) unary)*
 * unary := '-' unary | postfix ; postfix := primary ('^' arg | '!' | '%' | '_' arg)*     */

static gnode *parse_list(gparser *p, char close1, char close2, const char *close_cmd);
static gnode *parse_item(gparser *p);
static gnode *parse_sum(gparser *p);
static gnode *parse_term(gparser *p);
static gnode *parse_unary(gparser *p);
static gnode *parse_postfix(gparser *p);

static bool enter(gparser *p) {
    if (++p->depth > MAX_DEPTH) {
        fail_limit(p, LIMIT_DEPTH);
        return false;
    }
    return step(p);
}

/* One macro argument: {group}, a single digit, a letter or a command primary. */
static gnode *parse_arg(gparser *p) {
    gtok *t = &p->t[p->i];
    if (is_ch(t, '{')) {
        p->i++;
        gnode *x = parse_list(p, '}', 0, NULL);
        if (!x || !accept_ch(p, '}')) return fail(p);
        return x;
    }
    if (t->type == T_NUM) { /* \frac12: one digit per argument */
        gnode *x = mk(p, GN_NUM, 0);
        x->str = p->s + t->pos;
        x->len = 1;
        x->base = 10;
        if (t->len == 1)
            p->i++;
        else {
            t->pos++;
            t->len--;
        }
        return x;
    }
    if (t->type == T_END || t->type == T_CH) return fail(p);
    return parse_postfix(p);
}

static const struct {
    const char *name;
    uint8_t op;
} funcs[] = {{"sin", GF_SIN},     {"cos", GF_COS},   {"tan", GF_TAN},     {"cot", GF_COT},
             {"sec", GF_SEC},     {"csc", GF_CSC},   {"arcsin", GF_ASIN}, {"arccos", GF_ACOS},
             {"arctan", GF_ATAN}, {"sinh", GF_SINH}, {"cosh", GF_COSH},   {"tanh", GF_TANH},
             {"ln", GF_LN},       {"log", GF_LOG},   {"lg", GF_LOG},      {"exp", GF_EXP},
             {"tg", GF_TAN},      {"ctg", GF_COT}};

static const char *greek[] = {
    "alpha",    "beta",    "gamma", "delta",  "epsilon", "varepsilon", "zeta",  "eta",   "theta",
    "vartheta", "iota",    "kappa", "lambda", "mu",      "nu",         "xi",    "rho",   "sigma",
    "tau",      "upsilon", "phi",   "varphi", "chi",     "psi",        "omega", "Gamma", "Delta",
    "Theta",    "Lambda",  "Xi",    "Sigma",  "Phi",     "Psi",        "Omega", "ell"};

/* Optional subscript on a symbol (x_1, a_{n+1}): appended to its name. */
static void symbol_subscript(gparser *p, gnode *x) {
    if (!is_ch(peek(p), '_')) return;
    p->i++;
    const gtok *t = peek(p);
    int32_t start, end;
    if (is_ch(t, '{')) {
        int depth = 0;
        int32_t j = p->i;
        for (; p->t[j].type != T_END; j++) {
            if (is_ch(&p->t[j], '{'))
                depth++;
            else if (is_ch(&p->t[j], '}') && --depth == 0)
                break;
        }
        if (p->t[j].type == T_END) {
            fail(p);
            return;
        }
        start = t->pos;
        end = p->t[j].pos + 1;
        p->i = j + 1;
    } else if (t->type == T_END) {
        fail(p);
        return;
    } else {
        start = t->pos - (t->type == T_CMD);
        end = t->pos + t->len;
        p->i++;
    }
    /* name = original name + "_" + subscript text, spaces dropped */
    size_t cap = (size_t)x->len + 1 + (size_t)(end - start);
    char *name = garena_alloc(p->ar, cap + 1);
    size_t w = 0;
    memcpy(name, x->str, (size_t)x->len);
    w = (size_t)x->len;
    name[w++] = '_';
    for (int32_t q = start; q < end; q++)
        if (p->s[q] != ' ' && p->s[q] != '{' && p->s[q] != '}') name[w++] = p->s[q];
    x->str = name;
    x->len = (int32_t)w;
}

/* Letters that name functions when a parenthesis follows: f(x), g(t), h(2), and capitals
 * (I(0), P(A), V(1)); other letters multiply (x(x+1), n(n-1)). */
static bool function_letter(char ch) {
    return ch == 'f' || ch == 'g' || ch == 'h' || (ch >= 'A' && ch <= 'Z');
}

/* After a function letter: "(argument)" with one item makes the symbol the function's value,
 * named by its text without spaces ("I(0)", "f(x+1)"): a value of its own, not a product. */
static void function_value(gparser *p, gnode *x) {
    if (x->len != 1 || !function_letter(x->str[0]) || !is_ch(peek(p), '(')) return;
    int depth = 0;
    int32_t j = p->i;
    bool items = false; /* a point A(1, 2) or a tuple */
    for (; p->t[j].type != T_END && !items; j++) {
        const gtok *t = &p->t[j];
        if (is_ch(t, '(') || is_ch(t, '[') || is_ch(t, '{'))
            depth++;
        else if ((is_ch(t, ')') || is_ch(t, ']') || is_ch(t, '}')) && --depth == 0)
            break;
        else
            items = depth == 1 && (is_ch(t, ',') || is_ch(t, ';'));
    }
    *p->work += (j - p->i) / 8; /* the scan is charged: f(f(f(... rescans at every level */
    if (items || p->t[j].type == T_END || !is_ch(&p->t[j], ')') || j == p->i + 1 || !step(p))
        return;
    int32_t start = p->t[p->i].pos, end = p->t[j].pos + 1;
    char *name = garena_alloc(p->ar, (size_t)(end - start) + 2);
    size_t w = 0;
    name[w++] = x->str[0];
    for (int32_t q = start; q < end; q++)
        if (p->s[q] != ' ') name[w++] = p->s[q];
    x->str = name;
    x->len = (int32_t)w;
    x->op = GC_VAR;
    p->i = j + 1;
}

static gnode *parse_matrix(gparser *p) {
    /* after \begin: {pmatrix} cells with & and \\ until \end{pmatrix} */
    if (!accept_ch(p, '{')) return fail(p);
    while (peek(p)->type == T_SYM)
        p->i++;
    if (!accept_ch(p, '}')) return fail(p);
    if (is_ch(peek(p), '{')) { /* array column spec {cc} */
        while (peek(p)->type != T_END && !is_ch(peek(p), '}'))
            p->i++;
        if (!accept_ch(p, '}')) return fail(p);
    }
    int32_t cap = 16, n = 0, rows = 0, cols = -1, c = 0;
    gnode **cells = garena_alloc(p->ar, sizeof(gnode *) * (size_t)cap);
    for (;;) {
        if (!step(p)) return NULL;
        if (is_cmd(p, peek(p), "end")) {
            if (c != 0) return fail(p); /* a dangling '&' */
            break;
        }
        gnode *x = parse_item(p);
        if (!x) return fail(p);
        if (n == cap) { /* arena arrays keep deep nesting off the stack */
            gnode **bigger = garena_alloc(p->ar, sizeof(gnode *) * (size_t)cap * 2);
            memcpy(bigger, cells, sizeof(gnode *) * (size_t)cap);
            cells = bigger;
            cap *= 2;
        }
        cells[n++] = x;
        c++;
        if (accept_ch(p, '&')) continue;
        bool row_end = accept_cmd(p, "\\");
        if (row_end || is_cmd(p, peek(p), "end")) {
            if (cols >= 0 && c != cols) return fail(p);
            cols = c;
            c = 0;
            rows++;
            if (!row_end) break;
            if (is_cmd(p, peek(p), "end")) break; /* trailing \\ */
            continue;
        }
        return fail(p);
    }
    if (!accept_cmd(p, "end") || !accept_ch(p, '{')) return fail(p);
    while (peek(p)->type == T_SYM)
        p->i++;
    if (!accept_ch(p, '}') || rows == 0 || n != rows * cols) return fail(p);
    gnode *m = mk(p, GN_MATRIX, n);
    memcpy(m->k, cells, sizeof(gnode *) * (size_t)n);
    m->rows = rows;
    m->cols = cols;
    return grow(p, m);
}

static bool is_minus_one(const gnode *x) {
    return x->kind == GN_NEG && x->k[0]->kind == GN_NUM && x->k[0]->len == 1 &&
           x->k[0]->str[0] == '1';
}

/* The inverse of a trigonometric function, or -1. */
static int inverse_func(int op) {
    return op == GF_SIN ? GF_ASIN : op == GF_COS ? GF_ACOS : op == GF_TAN ? GF_ATAN : -1;
}

static gnode *parse_command(gparser *p) {
    const gtok *t = peek(p);
    const char *name = p->s + t->pos;
    size_t n = (size_t)t->len;
    p->i++;
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(name, lit, n))
    if (IS("frac")) {
        gnode *a = parse_arg(p);
        if (!a) return NULL;
        gnode *b = parse_arg(p);
        if (!b) return NULL;
        return mk2(p, GN_DIV, a, b);
    }
    if (IS("binom")) {
        gnode *a = parse_arg(p);
        if (!a) return NULL;
        gnode *b = parse_arg(p);
        if (!b) return NULL;
        return mk2(p, GN_BINOM, a, b);
    }
    if (IS("sqrt")) {
        gnode *idx = NULL;
        if (accept_ch(p, '[')) {
            idx = parse_sum(p);
            if (!idx || !accept_ch(p, ']')) return fail(p);
        }
        gnode *a = is_ch(peek(p), '(') ? parse_postfix(p) : parse_arg(p);
        if (!a) return NULL;
        gnode *x = mk2(p, GN_FUNC, a, idx);
        x->op = GF_SQRT;
        return x;
    }
    if (IS("pi")) {
        gnode *x = mk(p, GN_SYM, 0);
        x->op = GC_PI;
        x->str = "\\pi";
        x->len = 3;
        return x;
    }
    if (IS("infty") || IS("inf") || IS("infin")) return mk(p, GN_INF, 0);
    if (IS("{")) {
        gnode *x = parse_list(p, 0, 0, "}");
        if (!x || !accept_cmd(p, "}")) return fail(p);
        gnode *set = mk(p, GN_SET, x->kind == GN_LIST ? x->n : 1);
        if (x->kind == GN_LIST)
            memcpy(set->k, x->k, sizeof(gnode *) * (size_t)x->n);
        else
            set->k[0] = x;
        return grow(p, set);
    }
    if (IS("lfloor") || IS("lceil")) {
        bool floor = IS("lfloor");
        gnode *a = parse_sum(p);
        if (!a || !accept_cmd(p, floor ? "rfloor" : "rceil")) return fail(p);
        gnode *x = mk2(p, GN_FUNC, a, NULL);
        x->op = floor ? GF_FLOOR : GF_CEIL;
        return x;
    }
    if (IS("begin")) return parse_matrix(p);
    if (IS("langle")) { /* a vector \langle a, b \rangle is the tuple (a, b) */
        gnode *x = parse_list(p, 0, 0, "rangle");
        if (!x || !accept_cmd(p, "rangle")) return fail(p);
        gnode *tu = mk(p, GN_TUPLE, x->kind == GN_LIST ? x->n : 1);
        if (x->kind == GN_LIST)
            memcpy(tu->k, x->k, sizeof(gnode *) * (size_t)x->n);
        else
            tu->k[0] = x;
        tu->open = '(';
        tu->close = ')';
        return grow(p, tu);
    }
    if (IS("exp") && is_ch(peek(p), '^')) return fail(p);
    for (size_t f = 0; f < sizeof funcs / sizeof funcs[0]; f++) {
        if (strlen(funcs[f].name) != n || memcmp(funcs[f].name, name, n)) continue;
        gnode *base = NULL, *power = NULL;
        for (int k = 0; k < 2; k++) {
            if (funcs[f].op == GF_LOG && !base && accept_ch(p, '_')) {
                base = parse_arg(p);
                if (!base) return NULL;
            } else if (!power && accept_ch(p, '^')) { /* \sin^2 x = (\sin x)^2 */
                power = parse_arg(p);
                if (!power) return NULL;
            }
        }
        gnode *arg;
        if (is_ch(peek(p), '('))
            arg = parse_postfix(p);
        else
            arg = parse_term(p); /* \sin 2x = \sin(2x) */
        if (!arg) return NULL;
        gnode *x = mk2(p, GN_FUNC, arg, base);
        x->op = funcs[f].op;
        if (power && is_minus_one(power) && inverse_func(x->op) >= 0) { /* \sin^{-1} = \arcsin */
            x->op = (uint8_t)inverse_func(x->op);
            power = NULL;
        }
        return power ? mk2(p, GN_POW, x, power) : x;
    }
    for (size_t g = 0; g < sizeof greek / sizeof greek[0]; g++)
        if (strlen(greek[g]) == n && !memcmp(greek[g], name, n)) {
            gnode *x = mk(p, GN_SYM, 0);
            x->op = GC_VAR;
            x->str = name - 1;
            x->len = (int32_t)n + 1;
            symbol_subscript(p, x);
            return x;
        }
#undef IS
    return fail(p);
}

/* (a, b), [a, b), (a) ... : a group, a tuple or an interval. */
static gnode *parse_bracket(gparser *p) {
    char open = peek(p)->ch;
    p->i++;
    int saved_abs = p->abs_depth;
    p->abs_depth = 0;
    gnode *x = parse_list(p, ')', ']', NULL);
    p->abs_depth = saved_abs;
    if (!x) return NULL;
    const gtok *t = peek(p);
    if (!is_ch(t, ')') && !is_ch(t, ']')) return fail(p);
    char close = t->ch;
    p->i++;
    if (x->kind != GN_LIST) {
        if ((open == '(' && close == ')') || (open == '[' && close == ']')) return x;
        return fail(p);
    }
    gnode *tu = mk(p, GN_TUPLE, x->n);
    memcpy(tu->k, x->k, sizeof(gnode *) * (size_t)x->n);
    tu->open = open;
    tu->close = close;
    return grow(p, tu);
}

static bool is_int_tok(gparser *p, const gtok *t) {
    if (t->type != T_NUM) return false;
    for (int32_t q = 0; q < t->len; q++)
        if (!isdigit((unsigned char)p->s[t->pos + q])) return false;
    return true;
}

static gnode *num_node(gparser *p, int32_t pos, int32_t len) {
    gnode *x = mk(p, GN_NUM, 0);
    x->str = p->s + pos;
    x->len = len;
    x->base = 10;
    return x;
}

/* After "\frac" that follows an integer: {int}{int} or \frac12 as the fraction of a mixed
 * number, consumed; NULL (nothing consumed) when it is another fraction (2\frac{\pi}{3}). */
static gnode *parse_frac_numeric(gparser *p) {
    const gtok *t = &p->t[p->i];
    if (p->i + 6 <= p->n && is_ch(t, '{') && is_int_tok(p, &t[1]) && is_ch(&t[2], '}') &&
        is_ch(&t[3], '{') && is_int_tok(p, &t[4]) && is_ch(&t[5], '}')) {
        p->i += 6;
        return mk2(p, GN_DIV, num_node(p, t[1].pos, t[1].len), num_node(p, t[4].pos, t[4].len));
    }
    if (is_int_tok(p, t) && t->len == 2) {
        p->i++;
        return mk2(p, GN_DIV, num_node(p, t->pos, 1), num_node(p, t->pos + 1, 1));
    }
    return NULL;
}

static gnode *num_text(gparser *p, const char *text) {
    gnode *x = mk(p, GN_NUM, 0);
    x->len = (int32_t)strlen(text);
    x->str = garena_strndup(p->ar, text, (size_t)x->len);
    x->base = 10;
    return x;
}

/* After a decimal a: "\overline{r}" makes it the repeating decimal a + r / (10^k (10^|r| - 1))
 * where k counts the decimals of a (0.1\overline{6} = 1/6). Returns x unchanged otherwise. */
static gnode *repeating_decimal(gparser *p, gnode *x) {
    const gtok *t = &p->t[p->i];
    const char *dot = memchr(x->str, '.', (size_t)x->len);
    if (!dot || memchr(x->str, 'e', (size_t)x->len) || !is_cmd(p, t, "overline") ||
        p->i + 4 > p->n || !is_ch(&t[1], '{') || !is_int_tok(p, &t[2]) || !is_ch(&t[3], '}') ||
        t[2].len > 50)
        return x;
    p->i += 4;
    char k[16], r[16];
    snprintf(k, sizeof k, "%d", (int)(x->str + x->len - dot - 1));
    snprintf(r, sizeof r, "%d", (int)t[2].len);
    gnode *ten_k = mk2(p, GN_POW, num_text(p, "10"), num_text(p, k));
    gnode *nines =
        mk2(p, GN_SUB, mk2(p, GN_POW, num_text(p, "10"), num_text(p, r)), num_text(p, "1"));
    gnode *frac = mk2(p, GN_DIV, num_node(p, t[2].pos, t[2].len), mk2(p, GN_MUL, ten_k, nines));
    return mk2(p, GN_ADD, x, frac);
}

static gnode *parse_primary(gparser *p) {
    if (!enter(p)) return NULL;
    gnode *x = NULL;
    gtok *t = &p->t[p->i];
    switch (t->type) {
    case T_NUM: {
        x = mk(p, GN_NUM, 0);
        x->str = p->s + t->pos;
        x->len = t->len;
        x->base = 10;
        p->i++;
        if (is_cmd(p, peek(p), "overline"))
            x = repeating_decimal(p, x);
        else if (is_ch(peek(p), '_')) { /* base subscript: 1011_2, 2012_{3} */
            p->i++;
            bool braced = accept_ch(p, '{');
            const gtok *b = peek(p);
            if (b->type != T_NUM || b->len > 2) return fail(p);
            int base;
            if (b->len == 2)
                base = (p->s[b->pos] - '0') * 10 + (p->s[b->pos + 1] - '0');
            else
                base = p->s[b->pos] - '0';
            p->i++;
            if (braced && !accept_ch(p, '}')) return fail(p);
            if (base < 2 || base > 36) return fail(p);
            x->base = base;
        } else if (is_cmd(p, peek(p), "frac") && p->t[p->i + 1].type != T_END) {
            /* mixed number 2\frac{1}{3} = 2 + 1/3 (an integer, then a fraction of integers) */
            if (memchr(x->str, '.', (size_t)x->len) == NULL &&
                !memchr(x->str, 'e', (size_t)x->len)) {
                p->i++;
                gnode *f = parse_frac_numeric(p);
                if (f)
                    x = mk2(p, GN_ADD, x, f);
                else
                    p->i--;
            }
        }
        break;
    }
    case T_SYM:
        x = mk(p, GN_SYM, 0);
        x->str = p->s + t->pos;
        x->len = t->len;
        x->op = t->len > 1            ? GC_VAR
                : p->s[t->pos] == 'e' ? GC_E
                : p->s[t->pos] == 'i' ? GC_I
                                      : GC_VAR;
        p->i++;
        if (is_ch(peek(p), '_')) {
            x->op = GC_VAR;
            symbol_subscript(p, x);
        }
        function_value(p, x);
        break;
    case T_CMD:
        x = parse_command(p);
        break;
    case T_CH:
        if (t->ch == '(' || t->ch == '[')
            x = parse_bracket(p);
        else if (t->ch == '{') { /* a group, or {n \choose k} */
            p->i++;
            x = parse_list(p, '}', 0, "choose");
            if (x && accept_cmd(p, "choose")) {
                gnode *k = parse_list(p, '}', 0, NULL);
                x = k ? mk2(p, GN_BINOM, x, k) : NULL;
            }
            if (x && !accept_ch(p, '}')) x = fail(p);
        } else if (t->ch == '|' && p->abs_depth == 0) {
            p->i++;
            p->abs_depth++;
            gnode *a = parse_sum(p);
            p->abs_depth--;
            if (!a || !accept_ch(p, '|')) return fail(p);
            x = mk2(p, GN_FUNC, a, NULL);
            x->op = GF_ABS;
        } else
            x = fail(p);
        break;
    default:
        x = fail(p);
    }
    p->depth--;
    return p->fail ? NULL : x;
}

/* Can this token begin a factor of an implicit product (2x, 3\sqrt{2}, x(y+1))? */
static bool starts_factor(gparser *p, const gtok *t) {
    switch (t->type) {
    case T_NUM: /* (n-1)3^n; but 2 3 is no product */
        return p->i > 0 && is_ch(&p->t[p->i - 1], ')');
    case T_SYM:
        return true;
    case T_CMD: {
        static const char *no[] = {
            "cdot", "times",    "div",   "pm", "mp",     "le",  "leq",    "leqslant", "ge",
            "geq",  "geqslant", "lt",    "gt", "ne",     "neq", "cup",    "end",      "\\",
            "}",    "rfloor",   "rceil", "to", "approx", "in",  "choose", "rangle",   "setminus"};
        for (size_t k = 0; k < sizeof no / sizeof no[0]; k++)
            if (is_cmd(p, t, no[k])) return false;
        return true;
    }
    case T_CH:
        return t->ch == '(' || t->ch == '{' || (t->ch == '|' && p->abs_depth == 0);
    default:
        return false;
    }
}

static gnode *parse_postfix(gparser *p) {
    gnode *x = parse_primary(p);
    while (x && !p->fail) {
        if (!step(p)) return NULL;
        if (accept_ch(p, '^')) {
            gnode *e;
            if (is_ch(peek(p), '{'))
                e = parse_arg(p);
            else if (is_ch(peek(p), '-') || is_ch(peek(p), '+')) { /* x^-1 */
                if (!enter(p)) return NULL;
                e = parse_unary(p);
                p->depth--;
            } else
                e = parse_primary(p);
            if (!e) return fail(p);
            x = mk2(p, GN_POW, x, e);
        } else if (accept_ch(p, '!'))
            x = mk1(p, GN_FACT, x);
        else if (accept_ch(p, '%'))
            x = mk1(p, GN_PCT, x);
        else
            break;
    }
    return p->fail ? NULL : x;
}

static gnode *parse_unary(gparser *p) {
    if (!enter(p)) return NULL;
    gnode *x;
    if (accept_ch(p, '-')) {
        x = parse_unary(p);
        if (x) x = mk1(p, GN_NEG, x);
    } else if (accept_ch(p, '+'))
        x = parse_unary(p);
    else
        x = parse_postfix(p);
    p->depth--;
    return p->fail ? NULL : x;
}

/* A chain of terms t0 op1 t1 op2 t2 ... where each op only says whether its term is
 * inverted (subtracted, divided): built as a balanced tree so that a sum of n terms is
 * log2(n) tall. `pos` joins two terms of the same sign (ADD, MUL), `inv` a term and an inverted
 * one (SUB, DIV). Returns the node of terms [lo, hi) and sets *neg when the whole is inverted. */
typedef struct {
    gnode *t;
    bool inv;
} gchain_term;

static gnode *chain_balanced(gparser *p, const gchain_term *t, int32_t lo, int32_t hi,
                             gnode_kind pos, gnode_kind inv, bool *neg) {
    if (hi - lo == 1) {
        *neg = t[lo].inv;
        return t[lo].t;
    }
    int32_t mid = lo + (hi - lo) / 2;
    bool nl, nr;
    gnode *l = chain_balanced(p, t, lo, mid, pos, inv, &nl);
    gnode *r = chain_balanced(p, t, mid, hi, pos, inv, &nr);
    *neg = nl && nr;
    if (nl == nr) return mk2(p, pos, l, r);
    return nl ? mk2(p, inv, r, l) : mk2(p, inv, l, r);
}

/* Appends a term to an arena array that doubles (long sums stay off the stack). */
static void chain_push(gparser *p, gchain_term **t, int32_t *n, int32_t *cap, gnode *x, bool inv) {
    if (*n == *cap) {
        gchain_term *bigger = garena_alloc(p->ar, sizeof **t * (size_t)*cap * 2);
        memcpy(bigger, *t, sizeof **t * (size_t)*cap);
        *t = bigger;
        *cap *= 2;
    }
    (*t)[(*n)++] = (gchain_term){x, inv};
}

static gnode *parse_term(gparser *p) {
    gnode *x = parse_unary(p);
    if (!x) return NULL;
    int32_t n = 0, cap = 8;
    gchain_term *t = garena_alloc(p->ar, sizeof *t * (size_t)cap);
    chain_push(p, &t, &n, &cap, x, false);
    while (!p->fail) {
        if (!step(p)) return NULL;
        const gtok *k = peek(p);
        bool inv;
        gnode *y;
        if (is_ch(k, '*') || is_cmd(p, k, "cdot") || is_cmd(p, k, "times"))
            inv = false;
        else if (is_ch(k, '/') || is_cmd(p, k, "div"))
            inv = true;
        else if (starts_factor(p, k)) {
            y = parse_postfix(p); /* implicit product binds like '*' */
            if (!y) return NULL;
            chain_push(p, &t, &n, &cap, y, false);
            continue;
        } else
            break;
        p->i++;
        y = parse_unary(p);
        if (!y) return NULL;
        chain_push(p, &t, &n, &cap, y, inv);
    }
    if (p->fail) return NULL;
    bool neg;
    return chain_balanced(p, t, 0, n, GN_MUL, GN_DIV, &neg);
}

static gnode *parse_sum(gparser *p) {
    if (!enter(p)) return NULL;
    gnode *x = NULL;
    if (accept_cmd(p, "pm")) {
        gnode *a = parse_term(p);
        if (!a) return fail(p);
        x = mk2(p, GN_PM, NULL, a);
        x->op = (uint8_t)p->n_pm++;
    } else if (accept_cmd(p, "mp")) {
        gnode *a = parse_term(p);
        if (!a) return fail(p);
        x = mk2(p, GN_PM, NULL, mk1(p, GN_NEG, a));
        x->op = (uint8_t)p->n_pm++;
    } else
        x = parse_term(p);
    int32_t n = 0, cap = 8;
    gchain_term *t = garena_alloc(p->ar, sizeof *t * (size_t)cap);
    if (x) chain_push(p, &t, &n, &cap, x, false);
    while (x && !p->fail) {
        if (!step(p)) break;
        bool pm = false, minus_plus = false, inv = false;
        if (accept_ch(p, '+'))
            ;
        else if (accept_ch(p, '-'))
            inv = true;
        else if (accept_cmd(p, "pm"))
            pm = true;
        else if (accept_cmd(p, "mp"))
            pm = minus_plus = true;
        else
            break;
        gnode *y = parse_term(p);
        if (!y) {
            x = fail(p);
            break;
        }
        if (!pm) {
            chain_push(p, &t, &n, &cap, y, inv);
            continue;
        }
        /* a ± joins everything before it (its sign pattern is per ± node) */
        bool neg;
        x = chain_balanced(p, t, 0, n, GN_ADD, GN_SUB, &neg);
        x = mk2(p, GN_PM, x, minus_plus ? mk1(p, GN_NEG, y) : y);
        x->op = (uint8_t)p->n_pm++;
        n = 0;
        chain_push(p, &t, &n, &cap, x, false);
    }
    if (x && !p->fail) {
        bool neg;
        x = chain_balanced(p, t, 0, n, GN_ADD, GN_SUB, &neg);
    }
    p->depth--;
    return p->fail ? NULL : x;
}

static gnode *parse_union(gparser *p) {
    gnode *x = parse_sum(p);
    if (x && accept_cmd(p, "setminus")) { /* A \setminus B */
        gnode *y = parse_sum(p);
        return y ? mk2(p, GN_DIFF, x, y) : fail(p);
    }
    if (!x || !is_cmd(p, peek(p), "cup")) return x;
    enum { MAX_PARTS = 256 };
    gnode **parts = garena_alloc(p->ar, sizeof(gnode *) * MAX_PARTS);
    int32_t n = 0;
    parts[n++] = x;
    while (accept_cmd(p, "cup")) {
        gnode *y = parse_sum(p);
        if (!y || n >= MAX_PARTS) return fail(p);
        parts[n++] = y;
    }
    gnode *u = mk(p, GN_UNION, n);
    memcpy(u->k, parts, sizeof(gnode *) * (size_t)n);
    return grow(p, u);
}

static int rel_op(gparser *p) {
    const gtok *t = peek(p);
    int op = -1, len = 1;
    if (is_ch(t, '='))
        op = GR_EQ;
    else if (is_cmd(p, t, "in"))
        op = GR_IN;
    else if (is_ch(t, '<')) {
        op = GR_LT;
        if (is_ch(&p->t[p->i + 1], '=')) op = GR_LE, len = 2;
    } else if (is_ch(t, '>')) {
        op = GR_GT;
        if (is_ch(&p->t[p->i + 1], '=')) op = GR_GE, len = 2;
    } else if (is_cmd(p, t, "le") || is_cmd(p, t, "leq") || is_cmd(p, t, "leqslant"))
        op = GR_LE;
    else if (is_cmd(p, t, "ge") || is_cmd(p, t, "geq") || is_cmd(p, t, "geqslant"))
        op = GR_GE;
    else if (is_cmd(p, t, "lt"))
        op = GR_LT;
    else if (is_cmd(p, t, "gt"))
        op = GR_GT;
    else if (is_cmd(p, t, "ne") || is_cmd(p, t, "neq"))
        op = GR_NE;
    if (op >= 0) p->i += len;
    return op;
}

static gnode *parse_item(gparser *p) {
    if (!enter(p)) return NULL;
    gnode *x = parse_union(p);
    while (x && !p->fail) {
        int op = rel_op(p);
        if (op < 0) break;
        gnode *y = parse_union(p);
        if (!y) {
            x = fail(p);
            break;
        }
        x = mk2(p, GN_REL, x, y);
        x->op = (uint8_t)op;
    }
    p->depth--;
    return p->fail ? NULL : x;
}

/* Items separated by ',' or ';' until a closing token (not consumed); one item is returned as
 * itself, several as GN_LIST. */
static gnode *parse_list(gparser *p, char close1, char close2, const char *close_cmd) {
    if (!enter(p)) return NULL;
    int32_t cap = 8, n = 0;
    gnode **items = garena_alloc(p->ar, sizeof(gnode *) * (size_t)cap);
    for (;;) {
        gnode *x = parse_item(p);
        if (!x) break;
        if (n == cap) {
            gnode **bigger = garena_alloc(p->ar, sizeof(gnode *) * (size_t)cap * 2);
            memcpy(bigger, items, sizeof(gnode *) * (size_t)cap);
            items = bigger;
            cap *= 2;
        }
        items[n++] = x;
        if (!accept_ch(p, ',') && !accept_ch(p, ';')) break;
    }
    p->depth--;
    if (p->fail || n == 0) return fail(p);
    const gtok *t = peek(p);
    bool closed = (close1 && is_ch(t, close1)) || (close2 && is_ch(t, close2)) ||
                  (close_cmd && is_cmd(p, t, close_cmd)) ||
                  (!close1 && !close_cmd && t->type == T_END);
    if (!closed) return fail(p);
    if (n == 1) return items[0];
    gnode *l = mk(p, GN_LIST, n);
    memcpy(l->k, items, sizeof(gnode *) * (size_t)n);
    return grow(p, l);
}

gnode *grade_parse(garena *a, const char *s, int64_t *work, int64_t work_limit,
                   const char **limit) {
    size_t len = strlen(s);
    if (len == 0) return NULL;
    *work += (int64_t)len / 16; /* lexing is cheap but not free */
    if (*work > work_limit || len > (size_t)INT32_MAX / 2) {
        *limit = LIMIT_WORK;
        return NULL;
    }
    gparser p = {.s = s, .ar = a, .work = work, .limit = work_limit};
    p.t = mart_xmalloc(sizeof(gtok) * (len + 1));
    p.n = lex(s, len, p.t);
    gnode *x = parse_list(&p, 0, 0, NULL);
    if (!p.fail && p.n_pm > 16) fail_limit(&p, LIMIT_PM); /* too many ± to expand */
    free(p.t);
    if (p.fail) *limit = p.limit_hit;
    return p.fail ? NULL : x;
}
