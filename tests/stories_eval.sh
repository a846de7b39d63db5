#!/usr/bin/env bash
# Smoke run on real inputs: `mart eval` of the real stories260K model (a TinyStories model, so
# it scores zero) on the first 5 problems of MATH-500 from the data directory, k = 1 and 2.
# Checks the pipeline end to end: results.json counts, one transcript line per (problem, k)
# with the problem and gold of math500.jsonl, and every attempt's extracted answer and
# verdict equal to what `mart grade` says of that attempt's text against the gold.
#   tests/stories_eval.sh MART_BIN          (MART_DATA: the data directory)
set -euo pipefail
mart=${1:?usage: stories_eval.sh MART_BIN}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${MART_DATA:?MART_DATA must name the data directory}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$mart" eval --model "$root/../shared/models/stories260K" --bench math500 --limit 5 \
    --attempts 1-2 --max-tokens 48 --out "$tmp/ev" > "$tmp/table.txt" 2> "$tmp/log"
cat "$tmp/table.txt"
python3 - "$tmp/ev" "$data/bench/math500.jsonl" "$tmp/pairs.jsonl" <<'PY'
import json, sys
ev, bench, pairs = sys.argv[1:]
res = json.load(open(f"{ev}/results.json"))
m = res["benchmarks"]["math500"]
assert m["n"] == 5 and m["accuracy"] == {"1": 0, "2": 0}, m
problems = [json.loads(l) for l in open(bench)][:5]
lines = [json.loads(l) for l in open(f"{ev}/transcripts.jsonl")]
assert sorted((l["index"], l["k"]) for l in lines) == [(i, k) for i in range(5) for k in (1, 2)]
with open(pairs, "w") as f:
    for l in lines:
        p = problems[l["index"]]
        assert l["bench"] == "math500" and l["question"] == p["problem"]
        assert 1 <= l["attempts_used"] <= l["k"] and len(l["attempts"]) == l["attempts_used"]
        for a in l["attempts"]:
            assert set(a) >= {"text", "answer", "status", "correct", "tokens"}, a.keys()
            f.write(json.dumps({"response": a["text"], "gold": l["gold"]}) + "\n")
PY
"$mart" grade --input "$tmp/pairs.jsonl" > "$tmp/grades.jsonl"
python3 - "$tmp/ev/transcripts.jsonl" "$tmp/grades.jsonl" <<'PY'
import json, sys
attempts = [a for l in open(sys.argv[1]) for a in json.loads(l)["attempts"]]
grades = [json.loads(l) for l in open(sys.argv[2])]
assert len(attempts) == len(grades)
for a, g in zip(attempts, grades):
    assert (a["answer"] or "") == g["pred"], (a["answer"], g)
    assert a["correct"] == g["equal"], (a, g)
print(f"{len(attempts)} attempts: every answer and verdict as mart grade gives them")
PY
