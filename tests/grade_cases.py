#!/usr/bin/python3
"""Writes tests/grade_cases.jsonl: labelled (pred, gold) pairs for the grader's accuracy test.

Three sources, each label being the mathematical truth as a careful competition grader judges:
  1. rewrites of the real gold answers in the data directory's bench/ ($MART_DATA, default
     ../shared/data beside the repository): for each gold of a recognised shape, one
     rewrite that is equal by construction (another spelling of the same value) and one near
     miss that is unequal by construction (off by one, wrong sign, swapped order, dropped
     element, flipped bracket, rounded too early);
  2. hand-written pairs per category, including the cases the usual toolkits get wrong;
  3. hand-written pairs (and whole responses, for extraction) per kind of answer that careful
     grading judges differently from a naive grader: decimals for exact irrational golds, huge
     or deep answers, several boxes, unboxed answers, choice letters with values, unit letters,
     implicit products, many variables, notation, inequalities as sets, scaled matrices, and
     integer-only identities. Each is its own example of its kind.
Run: /usr/bin/python3 tests/grade_cases.py  (deterministic; the output is committed)."""
import json, os, re
from fractions import Fraction

here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get("MART_DATA") or os.path.join(os.path.dirname(here), "..", "shared", "data")
bench = os.path.join(data, "bench")
cases = []


def add(pred, gold, equal, category, note=""):
    cases.append({"pred": pred, "gold": gold, "equal": equal, "category": category, "note": note})


def golds(name, key="answer"):
    out = []
    for line in open(os.path.join(bench, name + ".jsonl")):
        r = json.loads(line)
        out.append(r[key])
    return out


# ---- 1. rewrites of real gold answers -------------------------------------------------------
INT = re.compile(r"-?\d+")
DEC = re.compile(r"-?\d*\.\d+")
FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")
FRAC_SHORT = re.compile(r"(-?)\\frac ?(\d)(\d)")
TUPLE = re.compile(r"\((-?\d+(?:,\s*-?\d+)+)\)")
CIRC = re.compile(r"(\d+)\^\\circ")
SQRT = re.compile(r"(\d*)\s*\\sqrt\{?(\d+)\}?")
BASE = re.compile(r"(\d+)_\{?(\d+)\}?")
seen = set()
math500 = golds("math500")
for i, g in enumerate(math500 + [str(x) for x in golds("aime24")]):
    if g in seen:
        continue
    seen.add(g)
    if INT.fullmatch(g):
        n = int(g)
        k = len(cases) // 2
        eq = [f"{n}.0", f"\\frac{{{2 * n}}}{{2}}", f"x = {n}", f"{n}.", f"\\boxed{{{n}}}",
              f"{n}\\text{{ units}}", f"{n:,}".replace(",", ",\\!") if abs(n) >= 1000 else f" {n} "]
        add(eq[k % len(eq)], g, True, "integer", "equal rewrite of the gold")
        near = [str(n + 1), str(n - 1), str(-n) if n else "1", str(n * 10), f"{n}.5"]
        add(near[k % len(near)], g, False, "integer", "near miss")
    elif DEC.fullmatch(g):
        f = Fraction(g)
        add(f"\\frac{{{f.numerator}}}{{{f.denominator}}}", g, True, "decimal", "exact fraction")
        add(str(float(g) + 0.01), g, False, "decimal", "off in the second decimal")
    elif FRAC.fullmatch(g) or FRAC_SHORT.fullmatch(g):
        m = FRAC.fullmatch(g) or FRAC_SHORT.fullmatch(g)
        s, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        f = Fraction(a, b) * (-1 if s else 1)
        d = f.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1:
            add(str(float(f)), g, True, "fraction", "terminating decimal")
        else:
            add(f"{s}{a}/{b}", g, True, "fraction", "slash fraction")
            add(f"{float(f):.2f}", g, False, "fraction", "rounded decimal is not the fraction")
        add(f"{s}\\dfrac{{{2 * a}}}{{{2 * b}}}", g, True, "fraction", "unreduced \\dfrac")
        if a != b:
            add(f"{s}\\frac{{{b}}}{{{a}}}", g, False, "fraction", "reciprocal")
        add(f"{s}\\frac{{{a + 1}}}{{{b}}}", g, False, "fraction", "numerator off by one")
    elif TUPLE.fullmatch(g.replace(" ", "")):
        items = TUPLE.fullmatch(g.replace(" ", "")).group(1).split(",")
        add("\\left( " + ", ".join(items) + " \\right)", g, True, "tuple", "\\left( wrapper")
        if items[0] != items[1]:
            sw = [items[1], items[0]] + items[2:]
            add("(" + ",".join(sw) + ")", g, False, "tuple", "order in a tuple matters")
        add("(" + ",".join(items[:-1]) + ")", g, False, "tuple", "missing element")
    elif CIRC.fullmatch(g):
        d = int(CIRC.fullmatch(g).group(1))
        add(str(d), g, True, "degrees", "degree sign dropped")
        add(f"{d}^{{\\circ}}", g, True, "degrees", "braced degree sign")
        add(f"\\frac{{{d}\\pi}}{{180}}", g, False, "degrees", "radians where degrees are asked")
        add(str(d + 1), g, False, "degrees", "off by one degree")
    elif SQRT.fullmatch(g):
        c, r = SQRT.fullmatch(g).groups()
        c = int(c) if c else 1
        add(f"\\sqrt{{{c * c * int(r)}}}", g, True, "radical", "coefficient moved inside")
        add(f"{c}\\sqrt{{{int(r) + 1}}}", g, False, "radical", "radicand off by one")
    elif BASE.fullmatch(g):
        digits, base = BASE.fullmatch(g).groups()
        add(f"{digits}_{{{base}}}", g, True, "base", "braced base subscript")
        add(digits, g, True, "base", "bare digits, base from the gold")
        add(str(int(digits, int(base))), g, int(digits, int(base)) == int(digits), "base",
            "decimal value where the gold's base is asked")
        add(f"{int(digits) + 1}_{base}" if "9" not in digits else f"{digits}0_{base}", g, False,
            "base", "another numeral")

# olympiadbench: several answers that are all required; minerva: boxed numbers
for r in (json.loads(l) for l in open(os.path.join(bench, "olympiadbench.jsonl"))):
    fa = r["final_answer"][0].strip("$ ")
    if r["is_multiple_answer"] and re.fullmatch(r"-?\d+(,\s*-?\d+)+", fa):
        items = [x.strip() for x in fa.split(",")]
        add(", ".join(reversed(items)), fa, True, "list", "all solutions, another order")
        add(", ".join(items[:-1]), fa, False, "list", "partial list is not the answer")
        if len(cases) > 0 and items[0] != "0":
            add(", ".join(["-" + items[0].lstrip("-") if not items[0].startswith("-") else
                           items[0][1:]] + items[1:]), fa, False, "list", "wrong sign")

# ---- 2. hand-written pairs per category ------------------------------------------------------
H = [
    # extraction-level spellings
    ("\\dfrac{3}{2}", "\\frac{3}{2}", True, "normalize", "\\dfrac"),
    ("\\tfrac{3}{2}", "1.5", True, "normalize", "\\tfrac"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True, "normalize", "\\left( \\right)"),
    ("10,\\!000", "10000", True, "thousands", "thousands separator"),
    ("10{,}000", "10000", True, "thousands", "braced comma"),
    ("1,000,000", "10^6", True, "thousands", "two separators"),
    ("10,000", "10001", False, "thousands", "off by one"),
    ("10\\ 000", "10000", True, "thousands", "space as thousands separator"),
    ("1 234 567", "1234567", True, "thousands", "spaces, two groups"),
    ("1 234 567", "1234568", False, "thousands", "spaces, last digit off"),
    ("2 3", "23", False, "normalize", "a space between digits is not nothing"),
    ("5.", "5", True, "normalize", "trailing period"),
    ("\\$18.90", "18.9", True, "units", "dollar sign"),
    ("18.90 \\text{ dollars}", "\\$18.90", True, "units", "unit word"),
    ("864 \\mbox{ inches}^2", "864", True, "units", "\\mbox unit with exponent"),
    ("15\\mbox{ cm}^2", "16", False, "units", "unit but wrong value"),
    ("5.4 \\text{ cents}", "5.4", True, "units", "cents"),
    ("12 \\text{ km/h}", "12", True, "units", "compound unit"),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}", True, "degrees", "degrees as a word"),
    ("45^\\circ", "\\frac{\\pi}{4}", False, "degrees", "radians vs degrees: the question asks for degrees"),
    ("\\frac{\\pi}{4}", "45^\\circ", False, "degrees", "radians vs degrees (known toolkit false positive)"),
    ("45°", "45^\\circ", True, "degrees", "unicode degree sign"),
    ("x = 5", "5", True, "prefix", "x = prefix"),
    ("k=3", "3", True, "prefix", "k= prefix"),
    ("x=5", "x = 5", True, "prefix", "both equations"),
    ("x = 6", "5", False, "prefix", "prefix, wrong value"),
    ("f(x) = 2x", "2x", True, "prefix", "function name prefix"),
    ("y = 2x + 3", "2x+3", True, "prefix", "line equation vs right side"),
    ("x \\in [-2,7]", "[-2,7]", True, "prefix", "x \\in prefix"),
    ("x \\in (-2,7]", "[-2,7]", False, "prefix", "x \\in with a wrong bracket"),
    # numbers
    ("0.5", "\\frac12", True, "fraction", "\\frac12 shorthand"),
    ("0.33", "\\frac{1}{3}", False, "fraction", "0.33 is not 1/3"),
    ("0.3333", "\\frac{1}{3}", False, "fraction", "still rounded: exact rationals compare exactly"),
    ("0.\\overline{3}", "\\frac{1}{3}", True, "fraction", "repeating decimal"),
    ("0.1\\overline{6}", "\\frac{1}{6}", True, "fraction", "repeating decimal after a digit"),
    ("0.\\overline{142857}", "\\frac{1}{7}", True, "fraction", "long period"),
    ("0.\\overline{3}", "0.3", False, "fraction", "repeating is not terminating"),
    ("x > 2", "(2,\\infty)", True, "interval", "inequality as interval"),
    ("x \\ge 2", "(2,\\infty)", False, "interval", "closed inequality vs open interval"),
    ("-1 \\le x < 3", "[-1,3)", True, "interval", "double inequality"),
    ("-1 < x < 3", "[-1,3)", False, "interval", "double inequality, wrong end"),
    ("x < 5", "(-\\infty, 5)", True, "interval", "left ray"),
    ("2\\frac{1}{3}", "\\frac{7}{3}", True, "mixed", "mixed number"),
    ("1\\frac{4}{5}", "1.8", True, "mixed", "mixed number gold from MATH"),
    ("137 \\frac{1}{2}", "137.5", True, "mixed", "mixed number with space"),
    ("2\\frac{1}{3}", "\\frac{2}{3}", False, "mixed", "mixed number is a sum, not a product"),
    ("\\frac{1}{2}\\cdot 2", "1", True, "fraction", "product"),
    (".0000672", "6.72\\times10^{-5}", True, "scientific", "scientific notation"),
    ("3\\times10^{8}", "300000000", True, "scientific", "times ten"),
    ("3\\times10^{8}", "3\\times10^{9}", False, "scientific", "wrong exponent"),
    ("4.5e33", "4.5\\times 10^{33}", True, "scientific", "e notation"),
    ("4.6e33", "4.5e33", False, "scientific", "mantissa off"),
    ("3.14", "\\pi", False, "numeric", "outside 1e-4 relative"),
    ("1.414", "\\sqrt{2}", False, "numeric", "too rough"),
    ("8\\%", "8", True, "percent", "percent as a unit"),
    ("8\\%", "0.08", True, "percent", "percent as a value"),
    ("8", "8\\%", True, "percent", "gold with percent"),
    ("9\\%", "8\\%", False, "percent", "wrong percent"),
    ("80", "8\\%", False, "percent", "wrong scale"),
    ("1011_2", "1011_{2}", True, "base", "braced base"),
    ("1011", "1011_2", True, "base", "digits without the subscript are read in the gold's base"),
    ("11", "1011_2", False, "base", "the decimal value is not the base-2 numeral asked for"),
    ("1358", "2516_8", False, "base", "decimal value of 2516_8: wrong when base 8 is asked"),
    ("2516", "2516_8", True, "base", "digits of the base-8 numeral"),
    ("2517", "2516_8", False, "base", "last digit off"),
    # radicals, powers, constants
    ("\\sqrt{1/n}", "\\frac{1}{\\sqrt{n}}", True, "radical", "known toolkit false negative"),
    ("\\sqrt{\\frac{1}{n}}", "\\frac{\\sqrt{n}}{n}", True, "radical", "rationalised"),
    ("\\sqrt{n}", "\\frac{1}{\\sqrt{n}}", False, "radical", "reciprocal"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True, "radical", "rationalised denominator"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{\\sqrt{3}}", False, "radical", "different radical"),
    ("2\\sqrt{5}", "\\sqrt{20}", True, "radical", "factor out"),
    ("\\sqrt[3]{27}", "3", True, "radical", "cube root"),
    ("\\sqrt[3]{-8}", "-2", True, "radical", "odd root of a negative"),
    ("\\sqrt[4]{16}", "4", False, "radical", "fourth root is 2"),
    ("2^{10}", "1024", True, "power", "power"),
    ("2^{10}", "1023", False, "power", "off by one"),
    ("4^{1/2}", "2", True, "power", "rational exponent"),
    ("e^{i\\pi}", "-1", True, "constants", "Euler"),
    ("e^2", "7.38", False, "constants", "too rough"),
    ("e^2", "7.38906", True, "constants", "close"),
    ("2\\pi r", "\\pi \\cdot 2r", True, "variables", "commuted"),
    ("288 \\pi", "288\\pi", True, "constants", "spacing"),
    ("288 \\pi", "289\\pi", False, "constants", "off by one pi"),
    ("6+9i", "9i+6", True, "complex", "commuted complex"),
    ("6-9i", "6+9i", False, "complex", "conjugate"),
    ("\\frac{1+i}{1-i}", "i", True, "complex", "complex division"),
    ("i^2", "-1", True, "complex", "i squared"),
    ("\\sin \\frac{\\pi}{6}", "\\frac12", True, "trig", "sine"),
    ("\\cos 0", "0", False, "trig", "cos 0 is 1"),
    ("\\tan^2 x + 1", "\\sec^2 x", True, "trig", "identity at random points"),
    ("\\sin^2 x", "1 - \\cos^2 x", True, "trig", "Pythagoras"),
    ("\\sin 2x", "2\\sin x", False, "trig", "double angle is not doubling"),
    ("\\arccos x", "\\frac{\\pi}{2}-\\arcsin x", True, "trig", "inverse functions: points inside their domain"),
    ("\\arccos x", "\\frac{\\pi}{2}+\\arcsin x", False, "trig", "inverse functions, wrong sign"),
    ("\\log_2 8", "3", True, "log", "log base 2"),
    ("\\ln(e^3)", "3", True, "log", "ln exp"),
    ("\\exp(1)", "e", True, "exp", "exp"),
    ("5!", "120", True, "factorial", "factorial"),
    ("5!", "24", False, "factorial", "4! instead"),
    ("\\frac{100!}{2^{50}}", "\\frac{100!}{2^{50}}+0", True, "factorial", "large exact factorial"),
    ("\\frac{100!}{2^{49}}", "\\frac{100!}{2^{50}}", False, "factorial", "power off by one"),
    ("\\binom{5}{2}", "10", True, "binomial", "binomial"),
    ("\\dbinom{6}{3}", "20", True, "binomial", "\\dbinom"),
    ("\\binom{2n}{n}", "\\frac{(2n)!}{(n!)^2}", True, "binomial", "symbolic binomial"),
    ("\\binom{6}{2}", "20", False, "binomial", "wrong k"),
    ("\\binom{n}{2}", "\\frac{n(n-1)}{2}", True, "binomial", "binomial of a variable"),
    ("\\binom{n}{3}", "\\frac{n(n-1)(n-3)}{6}", False, "binomial", "binomial of a variable, wrong factor"),
    # variables
    ("x^2+2x+1", "(x+1)^2", True, "variables", "expanded square"),
    ("x^2+2x-1", "(x+1)^2", False, "variables", "sign of constant"),
    ("\\frac{n(n+1)}{2}", "\\frac{n^2+n}{2}", True, "variables", "expanded"),
    ("\\frac{n(n-1)}{2}", "\\frac{n(n+1)}{2}", False, "variables", "off by one"),
    ("2n", "2k", False, "variables", "different variable"),
    ("\\frac{a b}{2}", "ab/2", True, "variables", "implicit products"),
    ("(a+5)(b+2)", "ab+2a+5b+10", True, "variables", "expanded product"),
    ("\\frac{11+9a}{20}", "\\frac{11+9a}{21}", False, "variables", "denominator"),
    ("\\lfloor n/2 \\rfloor", "\\frac{n}{2}", False, "variables", "floor matters"),
    ("2^{n}-n-1", "2^n - (n+1)", True, "variables", "regrouped"),
    ("x_1 + x_2", "x_2 + x_1", True, "variables", "subscripted"),
    ("x_1 + x_2", "x_1 + x_3", False, "variables", "other subscript"),
    ("\\cot x", "\\frac{\\cos x}{\\sin x}", True, "variables", "cot definition"),
    # ±
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True, "pm", "± expanded"),
    ("1-\\sqrt{19}, 1+\\sqrt{19}", "1 \\pm \\sqrt{19}", True, "pm", "± against list"),
    ("1 + \\sqrt{19}", "1 \\pm \\sqrt{19}", False, "pm", "only one of the two"),
    ("3 \\pm 2 \\sqrt{2}", "3 \\pm \\sqrt{8}", True, "pm", "± both sides"),
    ("\\pm 2", "2, -2", True, "pm", "unary ±"),
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt5", True, "pm", "± inside a set"),
    # equations and inequalities
    ("y = -2x", "2x + y = 0", True, "equation", "rearranged line"),
    ("y = -2x", "y = 2x", False, "equation", "wrong slope"),
    ("5x - 7y + 11z + 4 = 0", "-5x + 7y - 11z - 4 = 0", True, "equation", "scaled plane"),
    ("5x - 7y + 11z + 4 = 0", "5x - 7y + 11z - 4 = 0", False, "equation", "wrong constant"),
    ("f(n) = 2 n+1008", "f(n) = 2 n+1007", False, "equation", "large constant off by one"),
    ("f(n) = 2 n+1007", "f(n)=2n+1007", True, "equation", "spacing"),
    ("\\sqrt{x} + 1001", "\\sqrt{x} + 1000", False, "variables", "irrational formula: no loose tolerance"),
    ("k \\geq 2", "k\\ge 2", True, "inequality", "\\geq"),
    ("2 \\le k", "k\\ge 2", True, "inequality", "flipped"),
    ("k > 2", "k\\ge 2", False, "inequality", "strict vs not"),
    ("x < 3", "x > 3", False, "inequality", "direction"),
    # intervals, unions
    ("(2,\\infty)", "(2, \\infty)", True, "interval", "spacing"),
    ("[2,\\infty)", "(2,\\infty)", False, "interval", "closed vs open end"),
    ("(3,4]", "(3,4)", False, "interval", "closed right end"),
    ("\\left(\\frac{3}{5},\\frac{8}{3}\\right]", "(0.6, 8/3]", True, "interval", "\\left( ... \\right]"),
    ("(-\\infty, 0]", "(-\\infty,0]", True, "interval", "minus infinity"),
    ("(-\\infty, 0]", "(\\infty,0]", False, "interval", "sign of infinity"),
    ("(4,3)", "(3,4)", False, "interval", "order in an interval"),
    ("(0,9) \\cup (9,36)", "(9,36) \\cup (0,9)", True, "union", "union order"),
    ("(0,9) \\cup (9,36)", "(0,36)", False, "union", "missing hole"),
    ("(2, 12) \\cup (12, 102)", "(2,12) \\cup (12,102)", True, "union", "commas in brackets are not thousands separators"),
    ("(2, 12) \\cup (12, 103)", "(2,12) \\cup (12,102)", False, "union", "one end off"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)", True, "union", "spacing"),
    ("(-\\infty, 2] \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)", False, "union", "closed end"),
    ("\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]", "[\\pi^2/8, 1.25\\pi^2]", True, "interval", "irrational ends"),
    # sets, tuples, lists
    ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}", True, "set", "order-insensitive"),
    ("\\{1, 2\\}", "\\{1, 2, 3\\}", False, "set", "missing element"),
    ("\\{1, 2\\}", "(1, 2)", False, "set", "set vs tuple"),
    ("\\{1, 1, 2\\}", "\\{2, 1\\}", True, "set", "repetition does not count in a set"),
    ("\\{1, 1\\}", "\\{1, 2\\}", False, "set", "same size, other members"),
    ("(6,31,-1)", "(6, 31, -1)", True, "tuple", "spacing"),
    ("(31,6,-1)", "(6,31,-1)", False, "tuple", "order in a tuple"),
    ("(6,31,1)", "(6,31,-1)", False, "tuple", "wrong sign"),
    ("15, -29", "(15,-29)", True, "tuple", "bare pair against parenthesised"),
    ("-29, 15", "(15,-29)", False, "tuple", "bare pair in the wrong order"),
    ("(1,-16,-4,43)", "(1,-16,-4)", False, "tuple", "missing element"),
    ("1,-2", "-2,1", True, "list", "all solutions in another order"),
    ("1,-2", "1,-3", False, "list", "one wrong element"),
    ("1", "1,-2", False, "list", "partial match of a list (known toolkit false positive)"),
    ("1,-2,5", "1,-2", False, "list", "extra element"),
    ("3, 5, 7", "3,5,7", True, "list", "spacing"),
    ("x=1 \\text{ or } x=2", "1, 2", True, "list", "or between solutions"),
    ("x=1 \\text{ and } x=3", "1, 2", False, "list", "and, one wrong"),
    ("x = -1 or x = 2", "-1, 2", True, "list", "bare 'or'"),
    ("-1 and 3", "-1, 2", False, "list", "bare 'and', one wrong"),
    ("(1,2),(3,4)", "(3,4),(1,2)", True, "list", "list of pairs, other order"),
    ("(1,2),(4,3)", "(3,4),(1,2)", False, "list", "list of pairs, one pair reversed"),
    ("(2,2,2),(3,4,3)", "(3,4,3),(2,2,2)", True, "list", "olympiad tuple list"),
    ("(2,2,2)", "(2,2,2),(3,4,3)", False, "list", "one of two tuples"),
    ("\\frac{1}{3},-2,5", "5, \\frac13, -2", True, "list", "olympiad numeric list"),
    ("\\frac{1}{3},-2", "\\frac{1}{3},-2,5", False, "list", "missing third"),
    # matrices
    ("\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", "\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}", True, "matrix", "decimal entries"),
    ("\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", True, "matrix", "bmatrix vs pmatrix"),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", False, "matrix", "one entry"),
    ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False, "matrix", "row vs column"),
    ("\\begin{pmatrix} -2 \\\\ -14 \\\\ -7 \\end{pmatrix}", "(-2,-14,-7)", True, "matrix", "column vector as tuple"),
    ("\\begin{pmatrix} 16/49 \\\\ 48/49 \\\\ 24/49 \\end{pmatrix}", "\\begin{pmatrix} 16/49 \\\\ 24/49 \\\\ 48/49 \\end{pmatrix}", False, "matrix", "entry order"),
    # multiple choice and text
    ("B", "\\text{(B)}", True, "choice", "bare letter"),
    ("(B)", "\\text{(B)}", True, "choice", "parenthesised letter"),
    ("\\textbf{(B)}", "B", True, "choice", "bold letter"),
    ("C", "\\text{(B)}", False, "choice", "other letter"),
    ("\\text{Evelyn}", "Evelyn", True, "text", "text wrapper"),
    ("\\text{evelyn}", "\\text{Evelyn}", True, "text", "case"),
    ("\\text{Navin}", "\\text{Evelyn}", False, "text", "other name"),
    ("\\text{even}", "\\text{odd}", False, "text", "other word"),
    ("\\text{ellipse}", "\\text{ ellipse }", True, "text", "spaces"),
    ("Evelny", "\\text{Evelyn}", False, "text", "letters are not commuting variables"),
    ("\\text{odd}", "odd", True, "text", "three-letter word"),
    ("2abc", "2cba", True, "variables", "three-letter product"),
    ("2abc", "2abd", False, "variables", "three-letter product, other letter"),
    # robustness: huge values decide or refuse, never hang
    ("2^{2^{2^{100}}}", "2^{2^{2^{100}}}+1", False, "robust", "tower: undecidable, not equal"),
    ("1000!", "1000!", True, "robust", "same string"),
    ("1000!", "999!\\cdot 1000", True, "robust", "exact big factorial"),
    ("1000!", "1000!+1", False, "robust", "big factorial plus one"),
    ("10^{100}", "10^{100}+1", False, "robust", "exact big integers differ"),
    ("10^{10^6}", "10^{10^6}+1", False, "robust", "a million digits: too large to decide, never guessed equal"),
    ("10^{100000}/10^{99999}", "10", True, "robust", "exact with 100,000-digit intermediates"),
    ("\\binom{10^{9}}{3}", "166666666166666667000000000", True, "robust", "exact binomial of a huge n"),
    ("0.1^{10^{9}}", "0", False, "robust", "underflow is not zero"),
]
for p, g, e, c, n in H:
    add(p, g, e, c, n)

# ---- 3. the kinds of answers careful human grading judges differently ------------------------
# One list per kind; each pair is its own example of the kind. Categories name the kind; the
# agreement table in docs/PERFORMANCE.md is kept by category (tests/grade_agreement.py).
K = [
    # a decimal that approximates an exact irrational gold is not the answer; a decimal gold keeps
    # the tolerance
    ("-2.236", "-\\sqrt{5}", False, "irrational-gold", "decimal for a negative radical"),
    ("6.283", "2\\pi", False, "irrational-gold", "decimal for a multiple of pi"),
    ("31.83", "\\frac{100}{\\pi}", False, "irrational-gold", "decimal for a quotient by pi"),
    ("1.7320508", "\\sqrt{3}", False, "irrational-gold", "many digits are still an approximation"),
    ("0.6931", "\\ln 2", False, "irrational-gold", "decimal for a logarithm"),
    ("2.718", "e", False, "irrational-gold", "decimal for e"),
    ("3.1416", "\\pi", False, "irrational-gold", "decimal for pi"),
    ("1.41421", "\\sqrt2", False, "irrational-gold", "decimal for a root"),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True, "irrational-gold", "exact forms stay equal"),
    ("\\sin\\frac{\\pi}{3}", "\\frac{\\sqrt3}{2}", True, "irrational-gold", "exact trigonometric value"),
    ("2\\sqrt{5}", "2.236", False, "irrational-gold", "a decimal gold is compared within tolerance: 2.236 is not 2 sqrt 5"),
    ("\\sqrt{5}", "2.236", True, "irrational-gold", "decimal gold: the exact value is within tolerance"),
    ("6.2832", "6.283", False, "irrational-gold", "two decimals compare exactly: 6.283 is the answer written"),
    ("4\\pi", "12.566", True, "irrational-gold", "decimal gold of a physics-style set"),
    ("9.81", "9.8", False, "irrational-gold", "decimal gold, outside tolerance"),
    ("0.5", "\\frac{1}{2}", True, "irrational-gold", "a terminating decimal is exact"),
    # limits: what real answers need is decided; beyond, "undecided" with a reason
    ("10^{10^{10}}", "10^{10000000000}", True, "limits", "equal towers: same base, same exponent"),
    ("2^{2^{64}}", "2^{18446744073709551616}", True, "limits", "equal huge powers of two"),
    ("10^{10^{10}}", "10^{10000000001}", False, "limits", "huge powers of one base, exponents differ"),
    ("((((((((((((((((((((((((x+1))))))))))))))))))))))))", "x+1", True, "limits", "24 nested parentheses"),
    ("\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{256}}}}}}}}}}}}}}}}}}}}}}", "256^{1/4194304}", True, "limits", "22 nested square roots"),
    ("1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{2}}}}}}}}}}}}}}}}}}}}", "\\frac{28657}{17711}", True, "limits", "a continued fraction 20 deep"),
    ("+".join(f"{i}x^{{{i}}}" for i in range(1, 401)), "+".join(f"{i}x^{{{i}}}" for i in range(400, 0, -1)), True, "limits", "a polynomial of 400 terms, other order"),
    ("+".join(f"{i}x^{{{i}}}" for i in range(1, 401)), "+".join(f"{i}x^{{{i}}}" for i in range(1, 400)) + "+401x^{400}", False, "limits", "400 terms, last coefficient off"),
    ("+".join(["1"] * 500), "500", True, "limits", "a sum of 500 ones"),
    ("10^{10^6}", "10^{10^6}+1", False, "limits", "too large to decide exactly: undecided, not equal"),
    # multiple-choice letters beside their value, and in lower case
    ("\\textbf{(B) } 14", "14", True, "choice-value", "letter and value against the value"),
    ("\\textbf{(B) } 14", "(B)", True, "choice-value", "letter and value against the letter"),
    ("\\textbf{(C) } 15", "\\text{(B)}", False, "choice-value", "another letter with its value"),
    ("\\textbf{(B) } 15", "14", False, "choice-value", "letter with a wrong value"),
    ("(b)", "\\text{(B)}", True, "choice-value", "lower-case letter in parentheses"),
    ("(d)", "\\text{(B)}", False, "choice-value", "another lower-case letter"),
    ("\\text{(E)}\\ \\frac{3}{4}", "\\frac34", True, "choice-value", "text letter then a fraction"),
    ("(A) 2\\sqrt{3}", "\\text{(A) }2\\sqrt3", True, "choice-value", "both sides with letter and value"),
    ("\\mathrm{(D)}", "D", True, "choice-value", "roman letter"),
    # a trailing letter that may be a unit or a variable; compound units
    ("7m", "7 m", True, "unit-letter", "glued and spaced metre sign read alike"),
    ("\\frac{5}{2} m", "\\frac{5m}{2}", True, "unit-letter", "spaced letter after a fraction"),
    ("3m+2", "3 m + 2", True, "unit-letter", "a letter inside a sum is a variable"),
    ("3m+2", "5", False, "unit-letter", "variable inside a sum is no unit"),
    ("60\\mathrm{~km}/\\mathrm{h}", "60", True, "unit-letter", "compound unit in roman"),
    ("61\\mathrm{~km}/\\mathrm{h}", "60", False, "unit-letter", "compound unit, wrong value"),
    ("9.8\\,\\text{m/s}^2", "9.8", True, "unit-letter", "unit with exponent"),
    ("12\\,\\mathrm{m}^{2}", "12", True, "unit-letter", "square metres in roman"),
    ("4 \\text{ N}\\cdot\\text{m}", "4", True, "unit-letter", "product of units"),
    ("2.5 \\mathrm{~m} / \\mathrm{s}", "2.5", True, "unit-letter", "spaced compound unit"),
    # implicit products and exponents, functions applied to arguments, renamed variables, primes
    ("(n-1)3^n", "(n-1)3^{n}", True, "implicit-product", "a number after a closing parenthesis"),
    ("(n+1)2^{n}", "(n+1)2^{n}+1", False, "implicit-product", "the same product plus one"),
    ("(k+2)5^k", "5^k (k+2)", True, "implicit-product", "factors in another order"),
    ("I(0)e^{-t}", "I(0) e^{-t}", True, "implicit-product", "function value times a factor"),
    ("I(0)e^{-t}", "I(0)e^{-2t}", False, "implicit-product", "a function value is not zero"),
    ("V(1)\\cdot 3", "3V(1)", True, "implicit-product", "a function value commutes"),
    ("g(t)=3t", "g(x)=3x", True, "implicit-product", "function definition, renamed variable"),
    ("h(s)=s^2+1", "h(u)=u^2-1", False, "implicit-product", "renamed variable, other formula"),
    ("y'", "y^{\\prime}", True, "implicit-product", "prime as an exponent"),
    ("y''+y", "y^{\\prime\\prime}+y", True, "implicit-product", "double prime"),
    ("y'", "y", False, "implicit-product", "a derivative is not the function"),
    # equations with many variables
    ("AB=CDE", "CDE=AB", True, "many-variables", "sides swapped"),
    ("ABCD=EF", "EF=ABCD", True, "many-variables", "four letters in a row are a product"),
    ("PQRS+T=UV", "UV=PQRS+T", True, "many-variables", "seven symbols"),
    ("ABCD=EF", "ABCD=EG", False, "many-variables", "another letter"),
    ("a+b+c+d=e", "e=d+c+b+a", True, "many-variables", "five variables, reordered"),
    ("a+b+c+d=e", "e=d+c+b-a", False, "many-variables", "five variables, one sign"),
    # notation
    ("seven", "7", True, "notation", "number word"),
    ("\\text{twelve}", "12", True, "notation", "number word in text"),
    ("eight", "7", False, "notation", "another number word"),
    ("{n \\choose k}", "\\binom{n}{k}", True, "notation", "infix choose"),
    ("{7 \\choose 3}", "35", True, "notation", "infix choose with numbers"),
    ("{7 \\choose 2}", "35", False, "notation", "infix choose, wrong value"),
    ("\\sin^{-1} x", "\\arcsin x", True, "notation", "inverse sine"),
    ("\\tan^{-1}(2)", "\\arctan 2", True, "notation", "inverse tangent"),
    ("\\cos^{-1} x", "\\arcsin x", False, "notation", "another inverse"),
    ("math.sqrt(2)", "\\sqrt{2}", True, "notation", "code-style gold"),
    ("np.arcsin(x)", "\\arcsin x", True, "notation", "numpy-style"),
    ("2**10", "1024", True, "notation", "code power"),
    ("\\mathbb{R} \\setminus \\{0\\}", "(-\\infty,0)\\cup(0,\\infty)", True, "notation", "reals without a point"),
    ("\\mathbb{R} \\setminus \\{1\\}", "(-\\infty,0)\\cup(0,\\infty)", False, "notation", "another point removed"),
    ("\\{1,2,3\\} \\setminus \\{2\\}", "\\{1,3\\}", True, "notation", "finite set difference"),
    ("\\langle 1,-2\\rangle", "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", True, "notation", "angle-bracket vector"),
    ("\\langle 1,2\\rangle", "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", False, "notation", "angle-bracket vector, one entry"),
    # intervals and inequalities
    ("x \\in [-2,7]", "-2 \\le x \\le 7", True, "interval-inequality", "membership against a double inequality"),
    ("x \\in (-2,7]", "-2 \\le x \\le 7", False, "interval-inequality", "membership, open end"),
    ("x<1 \\text{ or } x>4", "(-\\infty,1)\\cup(4,\\infty)", True, "interval-inequality", "two rays joined by or"),
    ("x\\le 1 \\text{ or } x>4", "(-\\infty,1)\\cup(4,\\infty)", False, "interval-inequality", "closed ray"),
    ("|x| \\ge 2", "(-\\infty,-2]\\cup[2,\\infty)", True, "interval-inequality", "absolute value at least"),
    ("|x| < 3", "(-3,3)", True, "interval-inequality", "absolute value below"),
    ("|x| > 3", "(-3,3)", False, "interval-inequality", "absolute value above is not inside"),
    ("(0,4]", "t(0,4]", True, "interval-inequality", "gold prefixed by its variable"),
    ("[0,4]", "t(0,4]", False, "interval-inequality", "gold prefixed by its variable, closed end"),
    ("a \\le x \\le b", "x \\in [a,b]", True, "interval-inequality", "symbolic ends"),
    # scalars times matrices, ± inside tuples
    ("\\frac12\\begin{pmatrix} 2 & 4 \\\\ 6 & 8 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", True, "matrix-scalar", "half of a matrix"),
    ("-\\begin{pmatrix} 1 \\\\ -3 \\end{pmatrix}", "\\begin{pmatrix} -1 \\\\ 3 \\end{pmatrix}", True, "matrix-scalar", "negated column"),
    ("3\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 3 \\\\ 5 \\end{pmatrix}", False, "matrix-scalar", "scaled, one entry off"),
    ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}\\cdot 2", "\\begin{pmatrix} 2 & 4 \\end{pmatrix}", True, "matrix-scalar", "scalar on the right"),
    ("\\frac{1}{5}\\begin{pmatrix} 3 \\\\ 4 \\end{pmatrix}", "(0.6, 0.8)", True, "matrix-scalar", "scaled column against a tuple"),
    ("(\\pm 1, 3)", "(1,3),(-1,3)", True, "matrix-scalar", "± inside a tuple"),
    ("(\\pm 1, 3)", "(1,3)", False, "matrix-scalar", "± inside a tuple against one tuple"),
    ("(\\pm 2, \\pm 1)", "(2,1),(2,-1),(-2,1),(-2,-1)", True, "matrix-scalar", "two ± in a tuple"),
    # identities that hold on the integers only
    ("\\lceil \\log_2 (n+1) \\rceil", "\\lfloor \\log_2 n \\rfloor + 1", True, "integer-identity", "bit length"),
    ("\\lfloor \\frac{n}{2} \\rfloor", "\\lceil \\frac{n-1}{2} \\rceil", True, "integer-identity", "halves"),
    ("\\lfloor \\frac{n+1}{2} \\rfloor", "\\lceil \\frac{n}{2} \\rceil", True, "integer-identity", "halves rounded up"),
    ("\\lfloor \\frac{n}{2} \\rfloor", "\\lceil \\frac{n}{2} \\rceil", False, "integer-identity", "floor and ceiling differ at odd n"),
    ("\\lfloor \\sqrt{n} \\rfloor", "\\lceil \\sqrt{n} \\rceil - 1", False, "integer-identity", "differ at squares"),
    ("\\lfloor \\log_2 n \\rfloor + 1", "\\lceil \\log_2 n \\rceil", False, "integer-identity", "differ at powers of two"),
    ("1.7321", "\\sqrt{3}", False, "irrational-gold", "a further example of the kind"),
    ("\\frac{\\sqrt{3}}{1}", "1.7321", True, "irrational-gold", "a further example of the kind"),
    ("0.7854", "\\frac{\\pi}{4}", False, "irrational-gold", "a further example of the kind"),
    ("3^{3^{20}}", "3^{3486784401}", True, "limits", "a further example of the kind"),
    ("\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+1}}}}}}}}}}}}}}}}}}}}}}}}", "\\frac{75025}{121393}", True, "limits", "a further example of the kind"),
    ("\\textbf{(D)}\\ 48", "48", True, "choice-value", "a further example of the kind"),
    ("(c) 12", "\\textbf{(C)}", True, "choice-value", "a further example of the kind"),
    ("5\\,\\mathrm{m}", "5", True, "unit-letter", "a further example of the kind"),
    ("30\\ \\text{m}/\\text{s}", "30", True, "unit-letter", "a further example of the kind"),
    ("2m+1", "2m + 1", True, "unit-letter", "a further example of the kind"),
    ("(n+2)4^n", "4^n(n+2)", True, "implicit-product", "a further example of the kind"),
    ("f(s)=s^3", "f(t)=t^3", True, "implicit-product", "a further example of the kind"),
    ("z''", "z^{\\prime\\prime}", True, "implicit-product", "a further example of the kind"),
    ("WXYZ=AB", "AB=WXYZ", True, "many-variables", "a further example of the kind"),
    ("nine", "9", True, "notation", "a further example of the kind"),
    ("{10 \\choose 2}", "45", True, "notation", "a further example of the kind"),
    ("\\cos^{-1}(0)", "\\frac{\\pi}{2}", True, "notation", "a further example of the kind"),
    ("\\mathbb{R}\\setminus\\{-1,1\\}", "(-\\infty,-1)\\cup(-1,1)\\cup(1,\\infty)", True, "notation", "a further example of the kind"),
    ("x \\le -3 \\text{ or } x \\ge 3", "|x| \\ge 3", True, "interval-inequality", "a further example of the kind"),
    ("y \\in (1, 5)", "1<y<5", True, "interval-inequality", "a further example of the kind"),
    ("2\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix} 2 & 0 \\\\ 0 & 2 \\end{pmatrix}", True, "matrix-scalar", "a further example of the kind"),
    ("(3, \\pm 2)", "(3,2),(3,-2)", True, "matrix-scalar", "a further example of the kind"),
    ("\\lfloor \\frac{n+2}{3} \\rfloor", "\\lceil \\frac{n}{3} \\rceil", True, "integer-identity", "a further example of the kind"),
    ("\\lfloor \\frac{n+1}{3} \\rfloor", "\\lceil \\frac{n}{3} \\rceil", False, "integer-identity", "a further example of the kind"),
]
for p, g, e, c, n in K:
    add(p, g, e, c, n)

# Responses: the answer must first be found in the text (several boxes, or none: the fallback)
R = [
    ("The quadratic factors as $(x-1)(x+3)$, so the roots are $\\boxed{1}$ and $\\boxed{-3}$.", "1, -3", True, "multi-box", "two roots in the closing sentence"),
    ("So $x = \\boxed{2}$ and $y = \\boxed{5}$.", "(2,5)", True, "multi-box", "named values joined by and"),
    ("The solutions are $\\boxed{-1}, \\boxed{0}, \\boxed{4}$.", "-1, 0, 4", True, "multi-box", "three boxes separated by commas"),
    ("The roots are $\\boxed{2}$ and $\\boxed{7}$.", "2, 5", False, "multi-box", "one of two roots wrong"),
    ("First I got $\\boxed{3}$. Wait, that is wrong: redoing it gives $\\boxed{4}$.", "4", True, "multi-box", "an earlier draft is superseded"),
    ("First I got $\\boxed{3}$. Wait, that is wrong: redoing it gives $\\boxed{4}$.", "3", False, "multi-box", "the draft is not the answer"),
    ("Checking: $\\boxed{6}$ works, so then the answer is $\\boxed{6}$.", "6", True, "multi-box", "the same box twice"),
    ("Case 1 gives \\boxed{2}.\n\nCase 2 gives \\boxed{8}, which is the final answer \\boxed{8}.", "8", True, "multi-box", "boxes in separate sentences"),
    ("The final answer is 12.", "12", True, "fallback", "final-answer phrase"),
    ("Adding them up, so $m+n=116$.", "116", True, "fallback", "last number of the last sentence"),
    ("Thus the answer is $\\frac{3}{4}$.", "\\frac34", True, "fallback", "phrase with mathematics"),
    ("We try 5 and 7, and the total is 35.", "12", False, "fallback", "last number, wrong"),
    ("Final Answer: The final answer is $-2$. I hope it is correct.", "-2", True, "fallback", "phrase followed by a sentence"),
    ("I cannot solve this.", "3", False, "fallback", "no number at all"),
    ("Hence $a=\\boxed{3}$ and $b=\\boxed{-4}$.", "(3,-4)", True, "multi-box", "a further example of the kind"),
    ("I think \\boxed{5}. Hmm, let me recheck. Actually \\boxed{7}.", "7", True, "multi-box", "a further example of the kind"),
    ("Therefore, the final answer is $\\frac{7}{2}$.", "3.5", True, "fallback", "a further example of the kind"),
    ("The total comes to 1,250 dollars.", "1250", True, "fallback", "a further example of the kind"),
]
for r, g, e, c, n in R:
    cases.append({"response": r, "gold": g, "equal": e, "category": c, "note": n,
                  "fallback": c == "fallback"})

with open(os.path.join(here, "grade_cases.jsonl"), "w") as f:
    for c in cases:
        f.write(json.dumps(c) + "\n")
n_eq = sum(c["equal"] for c in cases)
print(f"{len(cases)} cases ({n_eq} equal, {len(cases) - n_eq} unequal)")
