#!/usr/bin/env bash
# Fault injection in the SQLite spirit (builds with MART_FAULTS): the N-th file write fails, for
# every N up to the number of writes, while saving a checkpoint (`mart train`), writing a model
# (`mart pretrain`) and writing transcripts (`mart eval`); then a few allocations fail. Each
# failure: a clear error and a non-zero exit; the previous checkpoint / results unchanged and
# loadable; a rerun without the fault finishes with the result of a run that never failed.
#   tests/faults.sh MART_BIN          (exit 77 = skipped: not a MART_FAULTS build)
set -euo pipefail
mart=${1:?usage: faults.sh MART_BIN}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$mart" tasks --out "$tmp/data" --seed 4 --n-train 16 --n-test 12 --n-sft 100 2>/dev/null
"$mart" pretrain --data "$tmp/data/sft.jsonl" --out "$tmp/base" --steps 2 --batch 4 --merges 16 \
    --quiet 2>/dev/null
echo '{"tokens":[1,2,3]}' > "$tmp/tok.jsonl"
loadable() { "$mart" score --model "$1" --input "$tmp/tok.jsonl" >/dev/null 2>&1; }

# Is fault injection compiled in? A write fault on the first write must fail `mart tasks`.
if MART_FAULT_WRITE=1 "$mart" tasks --out "$tmp/probe" --n-train 1 --n-test 1 --n-sft 1 \
    >/dev/null 2>&1; then
    echo "skipped: this build has no fault injection (configure with -DMART_FAULTS=ON)"
    exit 77
fi

# train: step 1 with a checkpoint, then step 2 with the N-th write failing.
tr=(train --model "$tmp/base" --data "$tmp/data/train.jsonl" --algo grpo --n-samples 2
    --rollout-batch 1 --mini-batch 2 --max-tokens 8 --save-every 1 --quiet)
"$mart" "${tr[@]}" --steps 1 --out "$tmp/run1" 2>/dev/null
"$mart" "${tr[@]}" --steps 2 --out "$tmp/run2" 2>/dev/null   # never failed
n=0
for ((N = 1; N <= 200; N++)); do
    rm -rf "$tmp/run"
    cp -a "$tmp/run1" "$tmp/run"
    rm -f "$tmp/run/.lock"
    set +e
    MART_FAULT_WRITE=$N "$mart" "${tr[@]}" --steps 2 --out "$tmp/run" --resume 2>"$tmp/err"
    rc=$?
    set -e
    [ "$rc" -eq 0 ] && break   # N past the last write: nothing failed
    n=$((n + 1))
    grep -q "write failed: No space left on device" "$tmp/err" || fail "train, write $N: $(cat "$tmp/err")"
    loadable "$tmp/run/checkpoint" || fail "train, write $N: the checkpoint is not loadable"
    step=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' \
        "$tmp/run/checkpoint/state.json")
    if [ "$step" = 1 ]; then   # the failure came before the swap: the old checkpoint, unchanged
        cmp -s "$tmp/run/checkpoint/model.safetensors" "$tmp/run1/checkpoint/model.safetensors" ||
            fail "train, write $N: the previous checkpoint changed"
    else                       # after it (writing final/): the new one, complete
        cmp -s "$tmp/run/checkpoint/model.safetensors" "$tmp/run2/checkpoint/model.safetensors" ||
            fail "train, write $N: the new checkpoint is not the uninterrupted run's"
    fi
    if ((N % 10 == 1)); then   # a rerun is a whole step: every tenth failure point
        "$mart" "${tr[@]}" --steps 2 --out "$tmp/run" --resume 2>/dev/null ||
            fail "train, write $N: the rerun failed"
        cmp -s "$tmp/run/final/model.safetensors" "$tmp/run2/final/model.safetensors" ||
            fail "train, write $N: the rerun's weights differ from the uninterrupted run's"
    fi
done
[ "$n" -ge 5 ] || fail "train: only $n writes failed (expected the checkpoint's and final's files)"
echo "train: each of its $n writes failed in turn: error, checkpoint intact (rerun exact at every tenth)"

# pretrain's final model
pre=(pretrain --data "$tmp/data/sft.jsonl" --steps 2 --batch 4 --merges 16 --quiet)
n=0
for ((N = 1; N <= 100; N++)); do
    rm -rf "$tmp/pre"
    set +e
    MART_FAULT_WRITE=$N "$mart" "${pre[@]}" --out "$tmp/pre" 2>"$tmp/err"
    rc=$?
    set -e
    [ "$rc" -eq 0 ] && break
    n=$((n + 1))
    grep -q "write failed: No space left on device" "$tmp/err" || fail "pretrain, write $N: $(cat "$tmp/err")"
    [ ! -e "$tmp/pre/model.safetensors" ] || loadable "$tmp/pre" ||
        fail "pretrain, write $N: a model file that does not load"
done
[ "$n" -ge 3 ] || fail "pretrain: only $n writes failed"
echo "pretrain: each of its $n writes failed in turn: error, no half-written model"

# eval's transcripts and results
ev=(eval --model "$tmp/base" --bench "$tmp/data/test.jsonl" --question-key problem --answer-key answer
    --attempts 1-2 --max-tokens 12)
"$mart" "${ev[@]}" --out "$tmp/eval_ref" >/dev/null 2>&1
n=0
for ((N = 1; N <= 100; N++)); do
    rm -rf "$tmp/eval"
    set +e
    MART_FAULT_WRITE=$N "$mart" "${ev[@]}" --out "$tmp/eval" >/dev/null 2>"$tmp/err"
    rc=$?
    set -e
    [ "$rc" -eq 0 ] && break
    n=$((n + 1))
    grep -q "write failed: No space left on device" "$tmp/err" || fail "eval, write $N: $(cat "$tmp/err")"
    "$mart" "${ev[@]}" --out "$tmp/eval" >/dev/null 2>&1 || fail "eval, write $N: the rerun failed"
    cmp -s <(sort "$tmp/eval/transcripts.jsonl") <(sort "$tmp/eval_ref/transcripts.jsonl") ||
        fail "eval, write $N: the rerun's transcripts differ"
done
[ "$n" -ge 10 ] || fail "eval: only $n writes failed"
echo "eval: each of its $n writes failed in turn: error, rerun gives the same transcripts"

# allocations: out of memory aborts loudly in one place; the checkpoint stays as it was
for N in 50 2000 20000 200000; do
    rm -rf "$tmp/run"
    cp -a "$tmp/run1" "$tmp/run"
    rm -f "$tmp/run/.lock"
    set +e
    MART_FAULT_ALLOC=$N "$mart" "${tr[@]}" --steps 2 --out "$tmp/run" --resume 2>"$tmp/err"
    rc=$?
    set -e
    [ "$rc" -eq 0 ] && continue
    grep -q "out of memory" "$tmp/err" || fail "alloc $N: exit $rc without the message: $(tail -2 "$tmp/err")"
    loadable "$tmp/run/checkpoint" || fail "alloc $N: the checkpoint is not loadable"
done
echo "alloc: failures abort with 'out of memory'; the checkpoint stays loadable"
echo "1 passed, 0 failed"
