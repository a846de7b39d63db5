#!/bin/sh
# Scale check (issue #2): a random model of the Qwen2.5-1.5B shape is written by mart as BF16
# (~3 GB, Hugging Face layout), loaded back and used to score a few sequences; prints times
# and peak resident memory of each step (the machine has 24 GiB).
#
# usage: bench/scale_1p5b.sh [DIR]   (DIR default /tmp/mart_scale_1p5b; removed at the end
#        unless KEEP=1). MART_BIN selects the mart program (default build/mart).
set -eu
cd "$(dirname "$0")/.."
BIN=${MART_BIN:-build/mart}
DIR=${1:-/tmp/mart_scale_1p5b}
SEQS=${SEQS:-4}
LEN=${LEN:-256}
[ -x "$BIN" ] || { echo "no mart program at $BIN (build first or set MART_BIN)" >&2; exit 1; }

echo "== write: random qwen2.5-1.5b, BF16"
/usr/bin/time -f "write: wall %e s, peak RSS %M KiB" \
    "$BIN" score --init-random qwen2.5-1.5b --dtype bf16 --model "$DIR" --stats
du -sh "$DIR"/model.safetensors

# SEQS sequences of LEN random token ids below the 151936-token vocabulary.
IN="$DIR/input.jsonl"
awk -v n="$SEQS" -v len="$LEN" 'BEGIN { srand(1); for (s = 0; s < n; s++) {
    printf "{\"tokens\":["; for (i = 0; i < len; i++) printf "%s%d", i ? "," : "", int(rand() * 151936);
    print "]}" } }' > "$IN"

echo "== load and score: $SEQS x $LEN tokens"
/usr/bin/time -f "score: wall %e s, peak RSS %M KiB" \
    "$BIN" score --model "$DIR" --input "$IN" --stats > "$DIR/out.jsonl"
awk -F, '{ n += NF } END { printf "%d output lines, %d logprobs\n", NR, n }' "$DIR/out.jsonl"

[ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
