#!/usr/bin/python3
"""Agreement of `mart grade` with the labels of tests/grade_cases.jsonl, by category.

Usage: tests/grade_agreement.py MART [MART ...]   (one column per binary, e.g. before/after)
Each binary grades every case through `mart grade --input` (cases marked "fallback" with
--fallback); a case agrees when the printed "equal" matches its label. Prints a Markdown table:
the categories of the answer kinds of section 3 of tests/grade_cases.py first, then the rest."""
import json, os, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
KINDS = ["irrational-gold", "limits", "multi-box", "fallback", "choice-value", "unit-letter",
         "implicit-product", "many-variables", "notation", "interval-inequality", "matrix-scalar",
         "integer-identity"]


def grade(mart, cases, fallback):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for c in cases:
            f.write(json.dumps({k: c[k] for k in ("pred", "response", "gold") if k in c}) + "\n")
    args = [mart, "grade", "--input", f.name] + (["--fallback"] if fallback else [])
    out = subprocess.run(args, capture_output=True, text=True).stdout.splitlines()
    os.unlink(f.name)
    got = [json.loads(l).get("equal") for l in out]
    return got + [None] * (len(cases) - len(got))


def main():
    cases = [json.loads(l) for l in open(os.path.join(here, "grade_cases.jsonl"))]
    marts = sys.argv[1:]
    if not marts:
        sys.exit(__doc__)
    agree = []
    for m in marts:
        ok = [False] * len(cases)
        for fb in (False, True):
            idx = [i for i, c in enumerate(cases) if c.get("fallback", False) == fb]
            for i, e in zip(idx, grade(m, [cases[i] for i in idx], fb)):
                ok[i] = e == cases[i]["equal"]
        agree.append(ok)
    cats = KINDS + sorted({c["category"] for c in cases} - set(KINDS))
    print("| category | cases | " + " | ".join(marts) + " |")
    print("|---|---|" + "---|" * len(marts))
    rows = [(k, [i for i, c in enumerate(cases) if c["category"] == k]) for k in cats]
    for name, idx in rows + [("all other categories", [i for i, c in enumerate(cases)
                                                       if c["category"] not in KINDS]),
                             ("all", list(range(len(cases))))]:
        if name not in KINDS and name not in ("all", "all other categories"):
            continue
        cells = [f"{sum(a[i] for i in idx)}/{len(idx)}" for a in agree]
        print(f"| {name} | {len(idx)} | " + " | ".join(cells) + " |")


main()
