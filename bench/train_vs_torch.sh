#!/bin/sh
# Runs `mart bench train` and the same training step in PyTorch (bench/torch_train_step.py)
# side by side, alternating ROUNDS times (default 3) so that both see the same machine load,
# and prints the best run of each and the ratio mart / PyTorch per config.
#
# PyTorch gets its best set-up on this machine, not the stock one: 2 threads (OpenMP), BLIS
# (Debian libblis4-openmp) as its BLAS and tcmalloc (libtcmalloc-minimal4) as allocator, both
# through LD_PRELOAD. Debian's torch links the generic libblas.so.3, so BLIS's libblas.so.3
# (the BLAS interface of libblis4-openmp) is the library to preload.
#
# usage: bench/train_vs_torch.sh [path/to/mart] [rounds] [steps]
set -eu
MART=${1:-build/mart}
ROUNDS=${2:-3}
STEPS=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLIS=$LIB/blis-openmp/libblas.so.3
TCMALLOC=$LIB/libtcmalloc_minimal.so.4
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for f in "$BLIS" "$TCMALLOC"; do
    [ -e "$f" ] || { echo "missing $f (apt-get install libblis4-openmp libtcmalloc-minimal4)" >&2; exit 1; }
done
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for r in $(seq "$ROUNDS"); do
    "$MART" bench train --config all --steps "$STEPS" | sed -n 's/^/mart /p' | grep -v threads >>"$OUT"
    LD_PRELOAD="$BLIS:$TCMALLOC" /usr/bin/python3 "$HERE/torch_train_step.py" --config all \
        --steps "$STEPS" --threads "$OMP_NUM_THREADS" | sed -n 's/^/torch /p' | grep -v "threads" >>"$OUT"
done
# Lines: "<who> <config> params ... <ms> ms/step <tok> tokens/s <gf> GFLOP/s ...": best = min ms.
awk '
{ who = $1; cfg = $2; for (i = 1; i <= NF; i++) { if ($i == "ms/step") ms = $(i - 1);
      if ($i == "tokens/s") tok = $(i - 1); if ($i == "GFLOP/s") gf = $(i - 1) }
  k = who " " cfg
  if (!(k in best) || ms < best[k]) { best[k] = ms; btok[k] = tok; bgf[k] = gf }
  cfgs[cfg] = 1 }
END {
  printf "%-6s %14s %14s %14s %14s %8s\n", "config", "mart tok/s", "mart GFLOP/s", "torch tok/s",
         "torch GFLOP/s", "ratio"
  for (c in cfgs) printf "%-6s %14.0f %14.1f %14.0f %14.1f %7.2fx\n", c, btok["mart " c],
         bgf["mart " c], btok["torch " c], bgf["torch " c], best["torch " c] / best["mart " c]
}' "$OUT"
