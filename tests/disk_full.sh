#!/usr/bin/env bash
# A full disk, for real: evaluation and training write into a small tmpfs. Each must stop at
# the first failed write with an error naming the file and a non-zero exit, keep what it had
# (the transcripts written so far; the previous checkpoint, loadable), and, once there is room
# again, resume to the result of a run that never ran out of space.
#   tests/disk_full.sh MART_BIN         (needs root to mount a tmpfs; exit 77 = skipped)
set -euo pipefail
mart=${1:?usage: disk_full.sh MART_BIN}
tmp=$(mktemp -d)
mnt=$tmp/small
mkdir -p "$mnt"
cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    rm -rf "$tmp"
}
trap cleanup EXIT
if ! mount -t tmpfs -o size=32k tmpfs "$mnt" 2>/dev/null; then
    echo "skipped: cannot mount a tmpfs here (needs root)"
    exit 77
fi
fail() { echo "FAIL: $*" >&2; exit 1; }

# A tiny model and task.
"$mart" tasks --out "$tmp/data" --seed 1 --n-train 16 --n-test 300 --n-sft 200 2>/dev/null
"$mart" pretrain --data "$tmp/data/sft.jsonl" --out "$tmp/base" --steps 2 --batch 4 --merges 32 \
    --quiet 2>/dev/null

# Evaluation: the reference on an ordinary disk, then into 32 kB.
ev() { "$mart" eval --model "$tmp/base" --bench "$tmp/data/test.jsonl" --question-key problem \
    --answer-key answer --attempts 1 --max-tokens 24 --out "$1"; }
ev "$tmp/eval_ref" >/dev/null 2>&1
set +e
ev "$mnt/eval" >/dev/null 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "eval into a full disk exited 0"
grep -q "transcripts.jsonl: write failed" "$tmp/err" || fail "no write error named: $(cat "$tmp/err")"
written=$(wc -l < "$mnt/eval/transcripts.jsonl")
[ "$written" -lt 300 ] || fail "all 300 episodes claimed written"
echo "eval: stopped at the full disk after $written of 300 transcripts ($(tail -1 "$tmp/err"))"
mount -o remount,size=64m "$mnt"
ev "$mnt/eval" >/dev/null 2>&1 || fail "the resumed evaluation failed"
cmp -s <(sort "$mnt/eval/transcripts.jsonl") <(sort "$tmp/eval_ref/transcripts.jsonl") ||
    fail "resumed transcripts differ from the reference run's"
python3 - "$mnt/eval/results.json" "$tmp/eval_ref/results.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["average"] == b["average"] and a["benchmarks"] == b["benchmarks"], (a, b)
PY
echo "eval: resumed with room again: the reference run's transcripts and results"

# Training: room for one checkpoint but not for a second beside it.
tr() { "$mart" train --model "$tmp/base" --data "$tmp/data/train.jsonl" --algo grpo --n-samples 2 \
    --rollout-batch 2 --mini-batch 4 --max-tokens 16 --steps 4 --save-every 1 --out "$1" --quiet \
    "${@:2}"; }
tr "$tmp/train_ref" 2>/dev/null
umount "$mnt"
ck_kb=$(du -sk "$tmp/train_ref/checkpoint" | cut -f1)
mount -t tmpfs -o size=$((ck_kb * 3 / 2 + 64))k tmpfs "$mnt"
set +e
tr "$mnt/run" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "training onto a full disk exited 0"
grep -q "writing .*checkpoint" "$tmp/err" || fail "no checkpoint error named: $(cat "$tmp/err")"
python3 - "$mnt/run/checkpoint/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["step"] == 1, s
PY
echo "train: the second checkpoint did not fit; the first is intact ($(tail -1 "$tmp/err"))"
mount -o remount,size=64m "$mnt"
tr "$mnt/run" --resume 2>/dev/null || fail "the resumed training failed"
cmp "$mnt/run/final/model.safetensors" "$tmp/train_ref/final/model.safetensors" ||
    fail "the resumed run's weights differ from the uninterrupted run's"
echo "train: resumed with room again: the uninterrupted run's weights, byte for byte"
echo "1 passed, 0 failed"
