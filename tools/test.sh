#!/usr/bin/env bash
# Builds and runs the whole test suite: under AddressSanitizer + UndefinedBehaviorSanitizer, with
# clang, and optimised (Release, GCC) last. Usage: bash tools/test.sh
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
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== tests, optimised build"
ctest --test-dir build --output-on-failure -j"$jobs"
