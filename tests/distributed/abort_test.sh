#!/usr/bin/env bash
# A rank that throws must end the whole mpirun job, with a message naming the rank, instead of
# leaving the other ranks waiting in a collective. Usage: abort_test.sh <mpiexec> <test program> [mpiexec flags...]
set -u
mpiexec=$1 prog=$2
shift 2
out=$(mktemp)
start=$(date +%s)
timeout 60 "$mpiexec" "$@" -np 2 "$prog" abort >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
fail() { echo "abort_test: $*"; rm -f "$out"; exit 1; }
[[ $rc -eq 124 ]] && fail "mpirun was still running after 60 s: the job hung"
[[ $rc -eq 0 ]] && fail "mpirun exited 0, expected a failure"
grep -q "rank 1 of 2: uncaught exception: deliberate failure on rank 1" "$out" || fail "no message naming rank 1 and its error"
rm -f "$out"
echo "abort_test: mpirun exited $rc after ${elapsed}s with the message (as expected)"
