#!/usr/bin/env bash
# Builds and runs the whole test suite: under AddressSanitizer + UndefinedBehaviorSanitizer, with
# clang, and optimised (Release, GCC) last; in between, each libFuzzer harness of tests/fuzz
# runs for a bounded time (FUZZ_SECONDS, default 50) and a finding fails the run.
# Usage: bash tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_SANITIZE=ON -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure -j"$jobs"
# The library and the suite also build with clang (tests compiled, run once, examples off).
CXX=clang++-14 cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-clang -j"$jobs"
echo "== tests, clang build"
ctest --test-dir build-clang --output-on-failure -j"$jobs"
# The readers of user input under libFuzzer (docs/reliability.md): seeds from tests/fuzz/<name>/,
# new inputs into a scratch corpus, a crashing input saved as build-fuzz/findings/<name>-crash-*.
CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_FUZZ=ON -DTAPEGRAD_BUILD_TESTS=OFF \
  -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j"$jobs"
echo "== fuzzing, ${FUZZ_SECONDS:-50} s per harness"
mkdir -p build-fuzz/findings
for h in idx safetensors checkpoint args; do
  rm -rf "build-fuzz/corpus-$h" && mkdir -p "build-fuzz/corpus-$h"
  rc=0
  UBSAN_OPTIONS=print_stacktrace=1 "build-fuzz/tests/fuzz/fuzz_$h" -max_total_time="${FUZZ_SECONDS:-50}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$h-" \
    "build-fuzz/corpus-$h" "tests/fuzz/$h" > "build-fuzz/fuzz-$h.log" 2>&1 || rc=$?
  echo "fuzz_$h: $(grep -E '^stat::number_of_executed_units' "build-fuzz/fuzz-$h.log" | tr -s ' ')"
  if ((rc != 0)); then
    tail -n 80 "build-fuzz/fuzz-$h.log"
    echo "fuzz_$h: a finding (exit $rc); the input is in build-fuzz/findings/, the log in build-fuzz/fuzz-$h.log"
    exit 1
  fi
done
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== tests, optimised build"
ctest --test-dir build --output-on-failure -j"$jobs"
