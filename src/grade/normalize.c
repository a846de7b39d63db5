/* grade normalization: the string-level clean-up before parsing. Removes what carries no
 * mathematical meaning (sizing, spacing, degree signs, dollar signs, unit words, thousands
 * separators, trailing periods, code modules such as math.) and unifies spellings (\dfrac →
 * \frac, unicode → LaTeX, ^{\prime} → ', ** → ^, \mathbb{R} → (-\infty, \infty)). */
#include "grade/grade_int.h"

#include <ctype.h>
#include <string.h>

/* Marks a word that came from \text{...} (or \mathrm, \mbox): a unit when mathematics is
 * beside it, the answer itself when it stands alone. */
#define WORD_OPEN '\x01'
#define WORD_CLOSE '\x02'

/* ---- arena ------------------------------------------------------------------------------- */

void *garena_alloc(garena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    garena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        b = mart_xmalloc(sizeof(garena_blk) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *garena_strndup(garena *a, const char *s, size_t n) {
    char *p = garena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void garena_free(garena *a) {
    garena_blk *b = a->head;
    while (b) {
        garena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static bool starts(const char *s, size_t i, size_t len, const char *lit) {
    size_t n = strlen(lit);
    return i + n <= len && memcmp(s + i, lit, n) == 0;
}

/* Length of a degree sign at s[i] ("^\circ", "^{\circ}", "^{ \circ }", "\circ", "°",
 * "\degree"), or 0. */
static size_t degree_len(const char *s, size_t i, size_t len) {
    static const char *forms[] = {"^{\\circ}", "^{ \\circ }", "^{\\circ }", "^ {\\circ}", "^\\circ",
                                  "\\circ",    "^{\\degree}", "\\degree",   "\xc2\xb0"};
    for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++)
        if (starts(s, i, len, forms[k])) {
            size_t n = strlen(forms[k]);
            /* \circ must not be the start of a longer command (\circle) */
            if (i + n < len && forms[k][n - 1] != '}' && isalpha((unsigned char)s[i + n]) &&
                forms[k][0] != '\xc2')
                continue;
            return n;
        }
    return 0;
}

/* Commands that only change how things look. */
static bool is_cosmetic(const char *name, size_t n) {
    static const char *names[] = {
        "left",     "right",     "big",   "Big",   "bigl",         "bigr",      "Bigl",   "Bigr",
        "bigg",     "Bigg",      "biggl", "biggr", "displaystyle", "textstyle", "limits", "middle",
        "mathopen", "mathclose", "quad",  "qquad", "hline",        "phantom",   "hspace"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && !memcmp(names[k], name, n)) return true;
    return false;
}

static bool is_text_cmd(const char *name, size_t n) {
    static const char *names[] = {"text",   "textbf",       "textit",     "textrm",
                                  "mathrm", "mbox",         "mathbf",     "textsf",
                                  "mathit", "operatorname", "textnormal", "emph",
                                  "mathsf", "boldsymbol",   "mathbb",     "bf"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && !memcmp(names[k], name, n)) return true;
    return false;
}

/* End (index after the matching '}') of the brace group opening at s[i] == '{', or 0. */
static size_t brace_end(const char *s, size_t i, size_t len) {
    int depth = 0;
    for (size_t j = i; j < len; j++) {
        if (s[j] == '\\' && j + 1 < len) {
            j++;
            continue;
        }
        if (s[j] == '{')
            depth++;
        else if (s[j] == '}' && --depth == 0)
            return j + 1;
    }
    return 0;
}

/* Single letters that are units when written upright (\mathrm{h}, \text{ m}): hours,
 * seconds, metres, grams, newtons, joules, watts, kelvins, litres. */
static bool is_unit_letter(char ch) {
    return ch && strchr("hsmgNJWKL", ch) != NULL;
}

/* A \text{} content that is words (a unit, "and", or a text answer): letters with spaces,
 * '/', '.', '\'' and at least two letters, or one unit letter. */
static bool is_word(const char *s, size_t n) {
    if (n == 1 && is_unit_letter(s[0])) return true;
    int letters = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalpha(ch))
            letters++;
        else if (!(ch == ' ' || ch == '/' || ch == '.' || ch == '\'' || ch == '~' || ch >= 0x80))
            return false;
    }
    return letters >= 2;
}

static void trim(const char **s, size_t *n) {
    while (*n && (isspace((unsigned char)**s) || **s == '~'))
        (*s)++, (*n)--;
    while (*n && (isspace((unsigned char)(*s)[*n - 1]) || (*s)[*n - 1] == '~'))
        (*n)--;
}

/* Module names of code-style answers (math.sqrt(2), np.arcsin(x)), dropped with their dot. */
static bool is_code_module(const char *w, size_t n) {
    static const char *names[] = {"math", "np", "numpy", "sympy", "sp", "cmath"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && !memcmp(names[k], w, n)) return true;
    return false;
}

/* ---- pass 1: commands, spacing, unicode -------------------------------------------------- */

static void clean(mart_buf *o, const char *s, size_t len, int depth) {
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        size_t dl = degree_len(s, i, len);
        if (dl) {
            i += dl;
            continue;
        }
        if (ch == '$') {
            i++;
            continue;
        }
        if (isspace(ch) || ch == '~') {
            if (o->len && o->data[o->len - 1] != ' ') mart_buf_append(o, " ", 1);
            i++;
            continue;
        }
        if (ch >= 0x80) {
            static const struct {
                const char *utf8, *latex;
            } uni[] = {{"\xe2\x88\x92", "-"},        {"\xc3\x97", "\\times "},
                       {"\xcf\x80", "\\pi "},        {"\xe2\x89\xa4", "\\le "},
                       {"\xe2\x89\xa5", "\\ge "},    {"\xe2\x88\x9a", "\\sqrt"},
                       {"\xe2\x88\x9e", "\\infty "}, {"\xc2\xb1", "\\pm "},
                       {"\xe2\x80\x89", " "},        {"\xc2\xa0", " "},
                       {"\xe2\x8b\x85", "\\cdot "},  {"\xc2\xb7", "\\cdot "},
                       {"\xe2\x89\xa0", "\\ne "},    {"\xe2\x88\xaa", "\\cup "}};
            bool done = false;
            for (size_t k = 0; k < sizeof uni / sizeof uni[0] && !done; k++)
                if (starts(s, i, len, uni[k].utf8)) {
                    mart_buf_append(o, uni[k].latex, strlen(uni[k].latex));
                    i += strlen(uni[k].utf8);
                    done = true;
                }
            if (!done) mart_buf_append(o, s + i++, 1);
            continue;
        }
        if (ch == '{' && starts(s, i, len, "{,}")) { /* 10{,}000 */
            i += 3;
            continue;
        }
        if (ch == '^') { /* y^{\prime\prime} and y^\prime are y'' */
            size_t k = i + 1, primes = 0;
            bool braced = k < len && s[k] == '{';
            k += braced;
            for (;;) {
                while (k < len && s[k] == ' ')
                    k++;
                if (!starts(s, k, len, "\\prime")) break;
                k += 6;
                primes++;
            }
            if (primes && (!braced || (k < len && s[k] == '}'))) {
                for (size_t q = 0; q < primes; q++)
                    mart_buf_append(o, "'", 1);
                i = k + braced;
                continue;
            }
        }
        if (ch == '*' && i + 1 < len && s[i + 1] == '*') { /* code: 2**10 */
            mart_buf_append(o, "^", 1);
            i += 2;
            continue;
        }
        if (isalpha(ch)) { /* a word: "x = 1 or x = 2" separates solutions */
            size_t j = i;
            while (j < len && isalpha((unsigned char)s[j]))
                j++;
            bool spaced = (i == 0 || s[i - 1] == ' ') && (j == len || s[j] == ' ');
            if (is_code_module(s + i, j - i) && j < len && s[j] == '.') { /* math.sqrt(2) */
                i = j + 1;
                continue;
            }
            if (spaced && ((j - i == 2 && !memcmp(s + i, "or", 2)) ||
                           (j - i == 3 && !memcmp(s + i, "and", 3))))
                mart_buf_append(o, ",", 1);
            else
                mart_buf_append(o, s + i, j - i);
            i = j;
            continue;
        }
        if (ch != '\\' || i + 1 >= len) {
            mart_buf_append(o, s + i++, 1);
            continue;
        }
        /* a command */
        size_t j = i + 1;
        if (!isalpha((unsigned char)s[j])) {
            char c2 = s[j];
            if (c2 == '%')
                mart_buf_append(o, "%", 1);
            else if (c2 == ' ')
                mart_buf_append(o, " ", 1);
            else if (c2 == '{' || c2 == '}' || c2 == '\\' || c2 == '|')
                mart_buf_append(o, s + i, 2);
            /* \! \, \; \: \$ \> vanish; "10,\! 000" is one number */
            i = j + 1;
            if (c2 == '!')
                while (i < len && s[i] == ' ')
                    i++;
            continue;
        }
        while (j < len && isalpha((unsigned char)s[j]))
            j++;
        const char *name = s + i + 1;
        size_t n = j - i - 1;
        if (is_cosmetic(name, n)) {
            if ((n == 4 && !memcmp(name, "left", 4)) || (n == 5 && !memcmp(name, "right", 5))) {
                size_t k = j;
                while (k < len && s[k] == ' ')
                    k++;
                if (k < len && s[k] == '.') j = k + 1; /* \left. and \right. are invisible */
            }
            mart_buf_append(o, " ", 1);
            i = j;
            continue;
        }
        if ((n == 5 && (!memcmp(name, "dfrac", 5) || !memcmp(name, "tfrac", 5) ||
                        !memcmp(name, "cfrac", 5)))) {
            mart_buf_append(o, "\\frac", 5);
            i = j;
            continue;
        }
        if (n == 6 && (!memcmp(name, "dbinom", 6) || !memcmp(name, "tbinom", 6))) {
            mart_buf_append(o, "\\binom", 6);
            i = j;
            continue;
        }
        if ((n == 5 && !memcmp(name, "boxed", 5)) || (n == 4 && !memcmp(name, "fbox", 4)) ||
            (n == 8 && !memcmp(name, "framebox", 8))) {
            i = j; /* the group that follows stays a plain group */
            continue;
        }
        if (is_text_cmd(name, n)) {
            size_t k = j;
            while (k < len && s[k] == ' ')
                k++;
            size_t e = k < len && s[k] == '{' ? brace_end(s, k, len) : 0;
            if (!e) { /* \text without an argument: drop the command */
                i = j;
                continue;
            }
            const char *c = s + k + 1;
            size_t cn = e - k - 2;
            trim(&c, &cn);
            if (n == 6 && !memcmp(name, "mathbb", 6) && cn == 1 && c[0] == 'R') {
                static const char reals[] = "(-\\infty,\\infty)";
                mart_buf_append(o, reals, sizeof reals - 1);
                i = e;
                continue;
            }
            if (is_word(c, cn)) {
                if ((cn == 3 && !strncasecmp(c, "and", 3)) || (cn == 2 && !strncasecmp(c, "or", 2)))
                    mart_buf_append(o, ",", 1);
                else {
                    mart_buf_append(o, (char[]){WORD_OPEN}, 1);
                    mart_buf_append(o, c, cn);
                    mart_buf_append(o, (char[]){WORD_CLOSE}, 1);
                }
            } else if (depth < 8) {
                clean(o, c, cn, depth + 1);
            }
            i = e;
            continue;
        }
        if (n == 5 && !memcmp(name, "prime", 5)) {
            mart_buf_append(o, "'", 1);
            i = j;
            continue;
        }
        mart_buf_append(o, s + i, j - i);
        i = j;
    }
}

/* ---- pass 2: words ----------------------------------------------------------------------- */

/* Plain unit words that may trail a number ("5 cm", "12 degrees"). */
static bool is_unit_word(const char *w, size_t n) {
    /* single letters (m, g, s, J, K, W) are left to the comparison: a variable in 7m + 1 */
    static const char *units[] = {
        "cm",       "km",      "mm",      "kg",      "mg",     "sec",    "seconds", "second",
        "min",      "minutes", "minute",  "hours",   "hour",   "hr",     "hrs",     "days",
        "day",      "weeks",   "week",    "years",   "year",   "months", "inches",  "inch",
        "in",       "feet",    "foot",    "ft",      "yards",  "yd",     "miles",   "mile",
        "mph",      "meters",  "meter",   "metres",  "units",  "unit",   "sq",      "square",
        "cubic",    "degrees", "degree",  "dollars", "dollar", "cents",  "cent",    "percent",
        "liters",   "ml",      "gallons", "pounds",  "lbs",    "ounces", "oz",      "people",
        "students", "ways",    "points",  "km/h",    "m/s",    "cm/s",   "kmh",     "ergs",
        "erg",      "Hz",      "eV",      "pc",      "AU",     "nm",     "kpc",     "Mpc"};
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
        if (strlen(units[k]) == n && !memcmp(units[k], w, n)) return true;
    return false;
}

/* Three letters are a word only when they are a common answer word; otherwise a product
 * (2abc, xyz). */
static bool three_letter_word(const char *w) {
    static const char *words[] = {"odd", "yes", "all", "one", "two", "six", "ten", "not", "any",
                                  "red", "new", "old", "max", "min", "mod", "gcd", "lcm", "det",
                                  "sum", "Yes", "Odd", "All", "YES", "ODD", "NaN", "nan"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (!memcmp(words[k], w, 3)) return true;
    return false;
}

static bool known_name(const char *w, size_t n) {
    static const char *names[] = {"sin",    "cos",    "tan",   "cot",  "sec",  "csc",
                                  "log",    "ln",     "exp",   "sqrt", "pi",   "arcsin",
                                  "arccos", "arctan", "infty", "inf",  "frac", "binom"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == n && !memcmp(names[k], w, n)) return true;
    return false;
}

char *grade_normalize(garena *a, const char *s, size_t len, bool *is_text) {
    mart_buf b = {0};
    clean(&b, s, len, 0);
    mart_buf_append(&b, "", 1);
    char *t = b.data;
    size_t n = b.len - 1;
    *is_text = false;

    /* words: units beside mathematics, the answer when alone */
    bool has_word = memchr(t, WORD_OPEN, n) != NULL, other = false;
    if (has_word) {
        bool in_word = false;
        for (size_t i = 0; i < n; i++) {
            if (t[i] == WORD_OPEN)
                in_word = true;
            else if (t[i] == WORD_CLOSE)
                in_word = false;
            else if (!in_word && t[i] != ' ' && t[i] != ',' && t[i] != '.')
                other = true;
        }
        size_t w = 0;
        in_word = false;
        for (size_t i = 0; i < n; i++) {
            char ch = t[i];
            if (ch == WORD_OPEN) {
                in_word = true;
                if (!other && w && t[w - 1] != ' ') t[w++] = ' ';
                continue;
            }
            if (ch == WORD_CLOSE) {
                in_word = false;
                if (other) { /* a unit: drop its exponent too (\text{cm}^2) */
                    size_t k = i + 1;
                    while (k < n && t[k] == ' ')
                        k++;
                    if (k < n && t[k] == '^') {
                        k++;
                        while (k < n && t[k] == ' ')
                            k++;
                        if (k < n && t[k] == '{') {
                            size_t e = brace_end(t, k, n);
                            k = e ? e : k + 1;
                        } else if (k < n)
                            k++;
                        i = k - 1;
                    }
                    /* and the '/' or \cdot joining it to the next unit (km/h, N m) */
                    k = i + 1;
                    while (k < n && t[k] == ' ')
                        k++;
                    size_t op = k < n && t[k] == '/' ? 1 : starts(t, k, n, "\\cdot") ? 5 : 0;
                    k += op;
                    while (op && k < n && t[k] == ' ')
                        k++;
                    if (op && k < n && t[k] == WORD_OPEN) i = k - 1;
                }
                continue;
            }
            if (in_word && other) continue;
            t[w++] = ch;
        }
        n = w;
        t[n] = 0;
        if (!other) *is_text = true;
    }

    /* trim; trailing periods and plain unit words */
    size_t st = 0;
    for (;;) {
        while (st < n && (t[st] == ' '))
            st++;
        while (n > st && (t[n - 1] == ' ' || t[n - 1] == '.' || t[n - 1] == ';')) {
            n--;
        }
        if (*is_text) break;
        /* a trailing word (optionally ^2) after a space, with a digit before it */
        size_t e = n;
        if (e > st && isdigit((unsigned char)t[e - 1]) && e >= st + 2 && t[e - 2] == '^') e -= 2;
        size_t k = e;
        while (k > st && (isalpha((unsigned char)t[k - 1]) || t[k - 1] == '/'))
            k--;
        if (k < e && k > st && t[k - 1] == ' ' && is_unit_word(t + k, e - k)) {
            bool digit_before = false;
            for (size_t q = st; q < k; q++)
                if (isdigit((unsigned char)t[q])) digit_before = true;
            if (!digit_before) break;
            n = k - 1;
            continue;
        }
        break;
    }
    t += st;
    n -= st;
    t[n] = 0;

    /* text answers: a run of three or more letters that names no function; in an equation,
     * or in capitals (ABCD = EF: points), letters are products */
    if (!*is_text && !memchr(t, '=', n)) {
        for (size_t i = 0; i < n;) {
            if (isalpha((unsigned char)t[i]) && !(i && t[i - 1] == '\\')) {
                size_t j = i;
                while (j < n && isalpha((unsigned char)t[j]))
                    j++;
                bool capitals = true;
                for (size_t q = i; q < j; q++)
                    capitals &= isupper((unsigned char)t[q]) != 0;
                if (!known_name(t + i, j - i) &&
                    ((j - i >= 4 && !capitals) || (j - i == 3 && three_letter_word(t + i))))
                    *is_text = true;
                i = j;
            } else if (t[i] == '\\') {
                size_t c0 = ++i;
                while (i < n && isalpha((unsigned char)t[i]))
                    i++;
                bool env = (i - c0 == 5 && !memcmp(t + c0, "begin", 5)) ||
                           (i - c0 == 3 && !memcmp(t + c0, "end", 3));
                if (env && i < n && t[i] == '{') { /* \begin{pmatrix} names no text */
                    size_t e = brace_end(t, i, n);
                    i = e ? e : n;
                }
            } else
                i++;
        }
    }

    /* thousands separators: 10,000, 1,234,567 and 10 000 (groups of exactly three digits, one
     * kind of separator), only outside brackets: inside them a comma separates coordinates */
    char *out = garena_alloc(a, n + 1);
    size_t w = 0;
    int depth = 0;
    for (size_t i = 0; i < n;) {
        if (t[i] == '(' || t[i] == '[' || t[i] == '{')
            depth++;
        else if ((t[i] == ')' || t[i] == ']' || t[i] == '}') && depth > 0)
            depth--;
        bool start =
            depth == 0 && isdigit((unsigned char)t[i]) &&
            (i == 0 || !(isdigit((unsigned char)t[i - 1]) || t[i - 1] == '.' || t[i - 1] == ','));
        if (start) {
            size_t j = i;
            while (j < n && isdigit((unsigned char)t[j]))
                j++;
            size_t lead = j - i, k = j;
            int groups = 0;
            char sep = k < n && (t[k] == ',' || t[k] == ' ') ? t[k] : ',';
            while (lead <= 3 && k + 3 < n && t[k] == sep && isdigit((unsigned char)t[k + 1]) &&
                   isdigit((unsigned char)t[k + 2]) && isdigit((unsigned char)t[k + 3]) &&
                   (k + 4 >= n || !isdigit((unsigned char)t[k + 4]))) {
                groups++;
                k += 4;
            }
            if (groups) {
                for (size_t q = i; q < k; q++)
                    if (t[q] != sep) out[w++] = t[q];
                i = k;
                continue;
            }
            memcpy(out + w, t + i, lead);
            w += lead;
            i = j;
            continue;
        }
        out[w++] = t[i++];
    }
    out[w] = 0;
    mart_buf_free(&b);

    if (*is_text) { /* lower case, no spaces, no markers */
        size_t q = 0;
        for (size_t i = 0; i < w; i++) {
            unsigned char ch = (unsigned char)out[i];
            if (ch == ' ' || ch == WORD_OPEN || ch == WORD_CLOSE) continue;
            out[q++] = (char)tolower(ch);
        }
        out[q] = 0;
    }
    return out;
}
