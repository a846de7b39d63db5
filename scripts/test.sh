#!/bin/sh
# Builds mart and runs the whole test suite through ctest (the README's command 2), twice: with
# 2 OpenMP threads and with 1, each time in a random test order, so that no verdict depends on
# the thread count or on the order of the tests.
# MART_SANITIZE=1 builds in build-asan with AddressSanitizer + UBSan and assert() on instead.
set -eu
cd "$(dirname "$0")/.."
if [ "${MART_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  flags="-DMART_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export MART_TEST_QUICK=1
else
  dir=build
  flags="-DCMAKE_BUILD_TYPE=Release"
fi
cmake -S . -B "$dir" -DMART_WERROR=ON $flags >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
for threads in 2 1; do
  echo "== ctest with OMP_NUM_THREADS=$threads, random order"
  OMP_NUM_THREADS=$threads ctest --output-on-failure --schedule-random -j"$(nproc)" --timeout 900
done
