#!/usr/bin/python3
"""Seeds the grader's fuzz corpus: every distinct gold answer of the benchmarks
($MART_DATA/bench, default ../shared/data/bench beside the repository) paired with itself,
the answer kinds of tests/grade_cases.jsonl, plus hand-made hostile inputs. libFuzzer grows the
corpus from here; `-merge=1` keeps it small."""
import hashlib, json, os, sys

root = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(root))
out = os.path.join(root, "corpus")
data = os.environ.get("MART_DATA") or os.path.join(repo, "..", "shared", "data")
os.makedirs(out, exist_ok=True)
golds = set()
for name in ["math500", "aime24", "amc23", "olympiadbench", "minerva_math"]:
    for line in open(os.path.join(data, "bench", name + ".jsonl")):
        r = json.loads(line)
        if name == "olympiadbench":
            golds.add(", ".join(r["final_answer"]))
        elif name == "minerva_math":
            s = r["solution"]
            i = s.rfind("\\boxed")
            if i >= 0:
                golds.add(s[i:i + 80])
        else:
            golds.add(str(r["answer"]))
hostile = [
    "2^{2^{2^{100}}}\n2", "1000!\n1000!", "(" * 3000 + "\n1", "\\frac" * 500 + "\n1",
    "\\boxed{\\boxed{\\boxed{1}}", "\\boxed 5 and \\fbox{6}", "10^{10^{10}}\n10^{10^{10}}+1",
    "\\sqrt[1000000]{2}\n1", "\\binom{100000}{50000}\n1", "1 \\pm 2 \\pm 3 \\pm 4\n1",
    "\\begin{pmatrix}1&2\\\\3\\end{pmatrix}\n1", "|||x|||\n|x|", "1e999999999\n1",
    "\\left(\\right.\n(", "x_{x_{x_{x}}}\nx", "\\{\\{\\}\\}\n\\{\\}", "0^0\n1", "1/0\n0/0",
    "\\log_0 0\n\\ln(-1)", "(-8)^{1/3}\n-2", "i^{i}\ne^{-\\pi/2}", "5!!!!!!\n5",
]
# the labelled answer kinds of tests/grade_cases.jsonl (section 3 of grade_cases.py)
kinds = []
for line in open(os.path.join(repo, "tests", "grade_cases.jsonl")):
    r = json.loads(line)
    if r["note"] and r["category"] in ("irrational-gold", "limits", "multi-box", "fallback",
                                       "choice-value", "unit-letter", "implicit-product",
                                       "many-variables", "notation", "interval-inequality",
                                       "matrix-scalar", "integer-identity"):
        kinds.append(r.get("pred", r.get("response")) + "\n" + r["gold"])
hostile += [
    "(" * 120 + "x" + ")" * 120 + "\nx", "+".join(["x"] * 5000) + "\n5000x",
    "{n \\choose {k \\choose {j \\choose 1}}}\n1", "\\langle 1, \\langle 2\n(1,2)",
    "\\mathbb{R}\\setminus\\{0,0,1\\}\\setminus\\{2\\}\n1", "I(I(I(I(0))))e^{-t}\nI(0)",
    "y''\ny^{\\prime\\prime}", "g(t)=g(x)=3t\ng(x)=3x", "|x|>|y|\n(1,2)",
    "(\\pm1,\\pm2,\\pm3,\\pm4,\\pm5,\\pm6,\\pm7,\\pm8,\\pm9)\n1",
    "-\\frac12\\begin{pmatrix}1\\end{pmatrix}\\cdot 2\n-1", "\\textbf{(B)}(b)(B)\nB",
    "\\lfloor\\log_2 \\lceil n \\rceil\\rfloor\n\\lceil n \\rceil", "10^{10^{10^{10}}}\n10^{10^{10^{10}}}",
]
seeds = sorted(g + "\n" + g for g in golds) + sorted(set(kinds)) + hostile
for s in seeds:
    b = s.encode()
    with open(os.path.join(out, "seed-" + hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
        f.write(b)
print(len(seeds), "seeds in", out, file=sys.stderr)
