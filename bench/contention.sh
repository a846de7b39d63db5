#!/bin/sh
# Speed under contention: the demo's pretraining stage (its model, batch, sequence and
# learning-rate settings, STEPS steps instead of 2000) and one GRPO step of the demo's RL stage
# (`mart bench rl`), each with 1 and 2 OpenMP threads, on idle cores and with one core taken
# by a competing process (a shell loop that spins for the length of the run). The four cases
# are run in turn, ROUNDS times, so that each sees the same machine; the best time of each is
# kept and the ratios the goals are stated in are printed:
#   busy, 2 threads / busy, 1 thread     (goal <= 1: extra threads never hurt)
#   busy, 2 threads / idle, 2 threads    (goal <= 2.5: one core taken costs at most 2.5x)
#
# usage: bench/contention.sh [path/to/mart] [rounds] [steps]
set -eu
MART=${1:-build/mart}
ROUNDS=${2:-2}
STEPS=${3:-60}
TMP=$(mktemp -d)
SPIN=""
cleanup() {
    [ -n "$SPIN" ] && kill "$SPIN" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$MART" tasks --out "$TMP/data" --seed 0 --n-train 200 --n-test 10 --n-sft 4000 \
    --sft-repeat 0.8 >/dev/null

# Seconds (wall) of one run of the case $1 (pretrain|rl) with $2 threads.
run_case() {
    start=$(date +%s.%N)
    case $1 in
    pretrain)
        rm -rf "$TMP/base"
        OMP_NUM_THREADS=$2 "$MART" pretrain --data "$TMP/data/sft.jsonl" --out "$TMP/base" \
            --config tiny --steps "$STEPS" --batch 32 --lr 0.003 --merges 512 --seed 0 \
            --repeat-question --quiet >/dev/null
        ;;
    rl)
        OMP_NUM_THREADS=$2 "$MART" bench rl --config tiny --algo grpo --steps 1 \
            --rollout-batch 64 --mini-batch 64 --micro-batch 16 --max-tokens 200 >/dev/null
        ;;
    esac
    end=$(date +%s.%N)
    echo "$start $end" | awk '{printf "%.3f", $2 - $1}'
}

RES="$TMP/times"
: >"$RES"
for r in $(seq "$ROUNDS"); do
    for load in idle busy; do
        if [ "$load" = busy ]; then
            sh -c 'while :; do :; done' &
            SPIN=$!
        fi
        for case in pretrain rl; do
            for t in 1 2; do
                s=$(run_case "$case" "$t")
                echo "$case $load $t $s" >>"$RES"
                echo "round $r: $case, $load, $t thread(s): $s s" >&2
            done
        done
        if [ -n "$SPIN" ]; then
            kill "$SPIN"
            wait "$SPIN" 2>/dev/null || true
            SPIN=""
        fi
    done
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "best of $ROUNDS rounds, seconds (pretraining: $STEPS steps of the demo's stage; rl: one GRPO step, 64 episodes)"
awk '
{ k = $1 " " $2 " " $3; if (!(k in best) || $4 < best[k]) best[k] = $4;
  all[k] = all[k] " " $4 }
END {
  n = split("pretrain rl", cases, " ");
  printf "%-9s %10s %10s %10s %10s   %-14s %-14s\n", "case", "idle 1t", "idle 2t", "busy 1t",
         "busy 2t", "busy 2t/1t", "busy/idle 2t";
  for (i = 1; i <= n; i++) {
    c = cases[i];
    i1 = best[c " idle 1"]; i2 = best[c " idle 2"]; b1 = best[c " busy 1"]; b2 = best[c " busy 2"];
    printf "%-9s %10.2f %10.2f %10.2f %10.2f   %-14.2f %-14.2f\n", c, i1, i2, b1, b2, b2 / b1, b2 / i2;
  }
  for (k in all) printf "runs %-18s%s\n", k, all[k];
}' "$RES"
