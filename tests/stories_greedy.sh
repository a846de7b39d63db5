#!/usr/bin/env bash
# Greedy generation from BOS with the real Llama-2-architecture model stories260K
# (../shared/models/stories260K) reproduces expected_greedy_from_bos.txt token for token: the
# generated ids equal the file's text encoded by mart (without the file's final newline), and
# the generated text equals that text. Runs with the default BF16 products and with
# --exact-products.
#   tests/stories_greedy.sh MART_BIN
set -euo pipefail
mart=${1:?usage: stories_greedy.sh MART_BIN}
root=$(cd "$(dirname "$0")/.." && pwd)
model=$root/../shared/models/stories260K
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c 'import json, sys; t = open(sys.argv[1], encoding="utf-8").read()
assert t.endswith("\n"); print(json.dumps({"text": t[:-1]}))' \
    "$model/expected_greedy_from_bos.txt" > "$tmp/expected.jsonl"
"$mart" tokenize --tokenizer "$model" --input "$tmp/expected.jsonl" > "$tmp/expected_ids.jsonl"
n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["ids"]))' "$tmp/expected_ids.jsonl")
echo '{"tokens": [1]}' > "$tmp/bos.jsonl"
status=0
for flag in "" --exact-products; do
    "$mart" generate --model "$model" --input "$tmp/bos.jsonl" --temperature 0 \
        --max-tokens "$n" $flag > "$tmp/out.jsonl" 2>/dev/null
    python3 - "$tmp/out.jsonl" "$tmp/expected.jsonl" "$tmp/expected_ids.jsonl" "${flag:-bf16}" <<'PY' || status=1
import json, sys
out = json.load(open(sys.argv[1]))
text = json.load(open(sys.argv[2]))["text"]
ids = json.load(open(sys.argv[3]))["ids"]
same = next((i for i, (a, b) in enumerate(zip(out["tokens"], ids)) if a != b), None)
if out["tokens"] != ids:
    print(f"{sys.argv[4]}: tokens differ (first at {same}; {len(out['tokens'])} vs {len(ids)})")
    sys.exit(1)
if out["text"] != text:
    print(f"{sys.argv[4]}: text differs:\n{out['text']!r}\n{text!r}")
    sys.exit(1)
print(f"{sys.argv[4]}: {len(ids)} greedy tokens from BOS identical to expected_greedy_from_bos.txt")
PY
done
exit $status
