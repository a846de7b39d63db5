#!/usr/bin/env bash
# SIGKILL at random moments (checkpoint writing included), then resume, over and over: the
# checkpoint folder is loadable after every kill, and the run ends with the bytes of a run that
# was never killed. For `mart train`, `mart pretrain` and `mart eval` (whose transcripts are
# neither lost nor duplicated).
#   tests/crash.sh MART_BIN [KILLS]
set -euo pipefail
mart=${1:?usage: crash.sh MART_BIN [KILLS]}
kills=${2:-6}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
RANDOM=7 # the kill moments are random, but the same on every run of this script

"$mart" tasks --out "$tmp/data" --seed 2 --n-train 32 --n-test 200 --n-sft 300 2>/dev/null
echo '{"tokens":[1,2,3,4,5]}' > "$tmp/tokens.jsonl"

# Runs "$@" (a mart command line that resumes itself when started again) until it exits 0,
# killing it with SIGKILL after a random delay up to $kills times; after each kill, $check.
killed=0
until_done() {
    local check=$1; shift
    for ((i = 0; i < 200; i++)); do
        "$@" >/dev/null 2>>"$tmp/log" &
        local pid=$!
        if ((killed < kills)); then
            sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
            if kill -9 "$pid" 2>/dev/null; then
                wait "$pid" 2>/dev/null || true
                killed=$((killed + 1))
                $check
                continue
            fi
        fi
        wait "$pid" && return 0
        local rc=$?
        [ "$rc" -eq 137 ] || fail "$* exited $rc: $(tail -3 "$tmp/log")"
    done
    fail "$* did not finish"
}

# pretrain
pre=(pretrain --data "$tmp/data/sft.jsonl" --steps 30 --batch 8 --merges 32 --save-every 3 --quiet)
"$mart" "${pre[@]}" --out "$tmp/pre_ref" 2>/dev/null
check_pre() {
    if [ -d "$tmp/pre/checkpoint" ]; then
        "$mart" score --model "$tmp/pre/checkpoint" --input "$tmp/tokens.jsonl" >/dev/null 2>&1 ||
            fail "pretrain checkpoint not loadable after kill $killed"
    fi
}
killed=0
until_done check_pre "$mart" "${pre[@]}" --out "$tmp/pre" --resume
cmp "$tmp/pre/model.safetensors" "$tmp/pre_ref/model.safetensors" ||
    fail "pretrain: killed $killed times and resumed, the weights differ"
echo "pretrain: killed $killed times, resumed each time: the same model file"

# train (PPO: actor, critic, optimiser, state)
tr=(train --model "$tmp/pre_ref" --data "$tmp/data/train.jsonl" --algo ppo --steps 6
    --rollout-batch 4 --mini-batch 4 --max-tokens 24 --kl-coef 0.05 --save-every 1 --quiet)
"$mart" "${tr[@]}" --out "$tmp/train_ref" 2>/dev/null
check_train() {
    if [ -d "$tmp/train/checkpoint" ]; then
        "$mart" score --model "$tmp/train/checkpoint" --input "$tmp/tokens.jsonl" >/dev/null 2>&1 &&
            "$mart" score --model "$tmp/train/checkpoint/critic" --input "$tmp/tokens.jsonl" \
                >/dev/null 2>&1 ||
            fail "train checkpoint not loadable after kill $killed"
    fi
}
killed=0
until_done check_train "$mart" "${tr[@]}" --out "$tmp/train" --resume
cmp "$tmp/train/final/model.safetensors" "$tmp/train_ref/final/model.safetensors" ||
    fail "train: killed $killed times and resumed, the weights differ"
cmp <(cut -d, -f1-12 "$tmp/train/metrics.jsonl") <(cut -d, -f1-12 "$tmp/train_ref/metrics.jsonl") ||
    fail "train: the metrics differ: $(diff <(cut -d, -f1-12 "$tmp/train/metrics.jsonl") <(cut -d, -f1-12 "$tmp/train_ref/metrics.jsonl"))"
echo "train: killed $killed times, resumed each time: the same weights and metrics"

# SIGTERM (a scheduler's stop): the checkpoint of the last finished step, exit 143, no final/
rm -rf "$tmp/term"
"$mart" "${tr[@]}" --out "$tmp/term" 2>/dev/null &
pid=$!
for ((i = 0; i < 3000; i++)); do [ -s "$tmp/term/metrics.jsonl" ] && break; sleep 0.01; done
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] || fail "train after SIGTERM exited $rc, not 143"
if [ ! -d "$tmp/term/final" ]; then # stopped before the end (else the signal came after it)
    [ "$rc" -eq 143 ] && [ -d "$tmp/term/checkpoint" ] ||
        fail "train after SIGTERM: exit $rc, or no checkpoint"
    "$mart" "${tr[@]}" --out "$tmp/term" --resume 2>/dev/null || fail "train: resume after SIGTERM failed"
fi
cmp "$tmp/term/final/model.safetensors" "$tmp/train_ref/final/model.safetensors" ||
    fail "train: stopped by SIGTERM and resumed, the weights differ"
echo "train: SIGTERM wrote the checkpoint and exited 143 (or came after the end); resumed exactly"

# eval
ev=(eval --model "$tmp/pre_ref" --bench "$tmp/data/test.jsonl" --question-key problem
    --answer-key answer --attempts 1-2 --max-tokens 24 --temperature 1 --seed 3)
"$mart" "${ev[@]}" --out "$tmp/eval_ref" >/dev/null 2>&1
check_eval() {
    # every line whole, no (problem, k) twice
    python3 - "$tmp/eval/transcripts.jsonl" <<'PY' || fail "eval transcripts broken after a kill"
import json, os, sys
p = sys.argv[1]
if os.path.exists(p):
    seen = set()
    lines = open(p, encoding="utf-8").read().split("\n")
    for l in lines[:-1]:
        o = json.loads(l)
        key = (o["index"], o["k"])
        assert key not in seen, key
        seen.add(key)
PY
}
killed=0
until_done check_eval "$mart" "${ev[@]}" --out "$tmp/eval"
cmp <(sort "$tmp/eval/transcripts.jsonl") <(sort "$tmp/eval_ref/transcripts.jsonl") ||
    fail "eval: killed $killed times and resumed, the transcripts differ"
echo "eval: killed $killed times, resumed each time: the same transcripts"
echo "1 passed, 0 failed"
