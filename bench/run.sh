#!/usr/bin/env bash
# Builds the benchmarks (Release, -DTAPEGRAD_BUILD_BENCH=ON, into build-bench), runs the Google
# Benchmark program and the PyTorch script, and prints the ratios that docs/benchmarks.md reports.
#
#   bench/run.sh                          # everything, 5 repetitions, medians
#   REPS=3 bench/run.sh                   # fewer repetitions
#   OPENBLAS_CORETYPE=SkylakeX bench/run.sh   # pin OpenBLAS's kernels for tapegrad, the raw baseline and
#                                             # PyTorch alike (by default tapegrad upgrades OpenBLAS from its
#                                             # Prescott fallback itself; see docs/benchmarks.md)
#   bench/run.sh --benchmark_filter=Tape  # extra arguments go to bench_autograd
#
# Environment: BUILD_DIR (default build-bench), REPS (default 5), JOBS (default 1: the machine is
# shared), PYTHON (default /usr/bin/python3, the interpreter that has torch), SKIP_PYTORCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
REPS=${REPS:-5}
JOBS=${JOBS:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT="$BUILD_DIR/bench-results"

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_BENCH=ON \
  -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target bench_autograd
mkdir -p "$OUT"

echo "== machine"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|L2 cache|L3 cache):' | sed 's/  */ /g'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
if awk '{exit !($1 > 0.5)}' /proc/loadavg; then
  echo "warning: the machine is busy (1-minute load > 0.5); absolute numbers will be low, trust the ratios"
fi
if git rev-parse --git-dir >/dev/null 2>&1; then
  echo "git: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- autograd 2>/dev/null || echo ' (+ uncommitted changes in autograd/)')"
fi

echo "== tapegrad (bench_autograd, $REPS repetitions, medians)"
# Repetitions run in random order, so a burst of load from another process spreads over all
# benchmarks instead of landing on one side of a comparison.
"$BUILD_DIR/bench/bench_autograd" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_enable_random_interleaving=true \
  --benchmark_out="$OUT/tapegrad.json" --benchmark_out_format=json "$@"

if [[ "${SKIP_PYTORCH:-0}" != 1 ]]; then
  echo "== PyTorch ($PYTHON bench/pytorch_overhead.py)"
  # tapegrad moves OpenBLAS off its Prescott fallback (autograd/blas_core.cpp); PyTorch does not.
  # Time PyTorch's matmul also on the kernels tapegrad ended up with, for a same-kernels ratio.
  CORE=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["context"].get("openblas_core", ""))' \
    "$OUT/tapegrad.json")
  CORE_ARG=()
  if [[ -z "${OPENBLAS_CORETYPE:-}" && -n "$CORE" && "$CORE" != Prescott ]]; then CORE_ARG=(--coretype "$CORE"); fi
  "$PYTHON" bench/pytorch_overhead.py --json "$OUT/pytorch.json" "${CORE_ARG[@]}"
else
  rm -f "$OUT/pytorch.json"
fi

# libtorch from C++, when it was found at configure time (Debian's libtorch-dev).
rm -f "$OUT/libtorch.json"
if cmake --build "$BUILD_DIR" -j"$JOBS" --target libtorch_overhead >/dev/null 2>&1; then
  echo "== libtorch (bench/libtorch_overhead.cpp)"
  "$BUILD_DIR/bench/libtorch_overhead" | tee "$OUT/libtorch.json"
fi

echo "== ratios"
"$PYTHON" - "$OUT/tapegrad.json" "$OUT/pytorch.json" "$OUT/libtorch.json" <<'EOF'
import json, os, re, sys

tg = json.load(open(sys.argv[1]))
med = {}
for b in tg["benchmarks"]:
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    med[re.sub(r"/(real_time|min_time:[^/]*)", "", b["run_name"])] = b
pt = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None

def val(name, key):
    b = med.get(name)
    return None if b is None else b.get(key)

def status(ok):
    return "MET" if ok else "MISSED"

core = tg["context"].get("openblas_core", "?")
print(f"OpenBLAS: {tg['context'].get('openblas', '?')}; kernels in use: {core}")

# Tape overhead.
fb = val("Tape/fwd_bwd", "op_time")
if fb is not None:
    fr, ng = val("Tape/fwd_record", "op_time"), val("Tape/fwd_nograd", "op_time")
    sc = val("Tape/scalar_fwd_bwd", "op_time")
    print("\nTape overhead, ns per op (100-op chain on one-element tensors)")
    print(f"  {'':<30}{'tapegrad':>10}{'PyTorch':>10}{'tg/PT':>8}")
    rows = (("forward + backward", fb, "chain_fwd_bwd_ns_per_op"),
            ("forward (recording)", fr, "chain_fwd_record_ns_per_op"),
            ("forward under no-grad", ng, "chain_fwd_nograd_ns_per_op"),
            ("number operands, f + b", sc, "scalar_fwd_bwd_ns_per_op"))
    for label, t, key in rows:
        if t is None:
            continue
        p = pt[0].get(key) if pt else None
        ps = f"{p:>10.0f}{t * 1e9 / p:>8.2f}" if p else f"{'-':>10}{'-':>8}"
        print(f"  {label:<30}{t * 1e9:>10.0f}{ps}")
    if os.path.exists(sys.argv[3]):
        lt = json.load(open(sys.argv[3]))
        print(f"  libtorch {lt['libtorch']} from C++, same chains (tapegrad / libtorch):")
        for label, t, key in (("forward + backward", fb, "chain_fwd_bwd_ns_per_op"),
                              ("number operands, f + b", sc, "scalar_fwd_bwd_ns_per_op")):
            if t is not None:
                print(f"  {label:<30}{t * 1e9:>10.0f}{lt[key]:>10.0f}{t * 1e9 / lt[key]:>8.2f}")
    worst = max(fb, sc or 0)
    print(f"  target: forward + backward <= 500 ns/op, tensor and number operands -> {status(worst * 1e9 <= 500)}")

# Matmul.
if val("Matmul/tapegrad_fwd_bwd/n:256/threads:1", "FLOPS") is not None:
    print("\nMatmul forward + backward, GFLOP/s (6 n^3 flops); raw = the same 3 cblas_sgemm calls")
    print("  separate: medians of the separate benchmarks; paired: tapegrad and raw timed in the same")
    print("  iterations, best iteration of each (the target is judged on paired best/best).")
    print(f"  PyTorch: on the same OpenBLAS kernels ({core}), fastest step; tg/PT uses paired tapegrad;")
    print("  'PT as is': PyTorch with the environment as given (OpenBLAS picks its own kernels)")
    print(f"  {'':>13}{'--------- separate ---------':>30}{'------------ paired ------------':>36}")
    print(f"  {'threads':>7}{'n':>6}{'tapegrad':>10}{'raw x3':>10}{'tg/raw':>8}"
          f"{'tapegrad':>10}{'raw x3':>9}{'tg/raw':>8}{'(mean)':>9}{'raw NN':>9}{'PyTorch':>9}{'tg/PT':>7}{'PT as is':>10}")
    worst = 1e9
    for threads in (1, 2):
        for n in (256, 512, 1024):
            a = val(f"Matmul/tapegrad_fwd_bwd/n:{n}/threads:{threads}", "FLOPS")
            r = val(f"Matmul/raw_sgemm_x3/n:{n}/threads:{threads}", "FLOPS")
            nn = val(f"Matmul/raw_sgemm_nn/n:{n}/threads:{threads}", "FLOPS")
            pname = f"Matmul/paired/n:{n}/threads:{threads}"
            pa, pr = val(pname, "tg_FLOPS"), val(pname, "raw_FLOPS")
            ratio, ratio_mean = val(pname, "tg_over_raw"), val(pname, "tg_over_raw_mean")
            if a is None or r is None:
                continue
            judged = ratio if ratio is not None else a / r
            worst = min(worst, judged)
            p = p_inst = None
            for cfg in pt or []:  # PyTorch: torch threads = OPENBLAS_NUM_THREADS = threads
                if cfg["threads"] == threads and cfg["openblas_threads"] == threads:
                    g = cfg["matmul_gflops"][str(n)] * 1e9
                    same = cfg.get("coretype") == core or (core == "Prescott" and not cfg.get("coretype"))
                    if same:
                        p = g
                    if not cfg.get("coretype") or cfg.get("coretype") == os.environ.get("OPENBLAS_CORETYPE"):
                        p_inst = g
            ps = f"{p / 1e9:>9.1f}{pa / p if pa else a / p:>7.2f}" if p else f"{'-':>9}{'-':>7}"
            ps += f"{p_inst / 1e9:>10.1f}" if p_inst else f"{'-':>10}"
            paired = (f"{pa / 1e9:>10.1f}{pr / 1e9:>9.1f}{ratio:>8.2f}{ratio_mean:>9.2f}" if pa
                      else f"{'-':>10}{'-':>9}{'-':>8}{'-':>9}")
            print(f"  {threads:>7}{n:>6}{a / 1e9:>10.1f}{r / 1e9:>10.1f}{a / r:>8.2f}{paired}"
                  f"{(nn or 0) / 1e9:>9.1f}{ps}")
    print(f"  target: tapegrad >= 0.90 x raw sgemm everywhere (worst {worst:.2f}) -> {status(worst >= 0.90)}")

# Elementwise.
if val("Elementwise/tapegrad_add/threads:1", "bytes_per_second") is not None:
    print("\nElementwise on 10M floats (no grad), GB/s (inputs read + output written)")
    print(f"  {'op':<6}{'tapegrad':>10}{'plain loop':>12}{'tg/plain':>10}{'tapegrad 2 thr':>16}")
    worst = 1e9
    for op in ("add", "mul", "exp", "relu"):
        a = val(f"Elementwise/tapegrad_{op}/threads:1", "bytes_per_second")
        a2 = val(f"Elementwise/tapegrad_{op}/threads:2", "bytes_per_second")
        p = val(f"Elementwise/plain_{op}", "bytes_per_second")
        if a is None or p is None:
            continue
        worst = min(worst, a / p)
        t2 = f"{a2 / 1e9:>16.2f}" if a2 else f"{'-':>16}"
        print(f"  {op:<6}{a / 1e9:>10.2f}{p / 1e9:>12.2f}{a / p:>10.2f}{t2}")
    print(f"  target: >= 0.80 x the plain loop, 1 thread each (worst {worst:.2f}) -> {status(worst >= 0.80)}")

# Windows.
m = val("Window/memcpy_same_bytes", "bytes_per_second")
if m is not None:
    print("\nunfold / fold, N=32 C=64 32x32, 3x3, pad 1, GB/s (output written + input read)")
    print(f"  {'op':<8}{'GB/s':>8}{'memcpy':>8}{'ratio':>8}{'2 threads':>11}")
    worst = 1e9
    for op in ("unfold", "fold"):
        a = val(f"Window/tapegrad_{op}/threads:1", "bytes_per_second")
        a2 = val(f"Window/tapegrad_{op}/threads:2", "bytes_per_second")
        if a is None:
            continue
        worst = min(worst, a / m)
        t2 = f"{a2 / 1e9:>11.2f}" if a2 else f"{'-':>11}"
        print(f"  {op:<8}{a / 1e9:>8.2f}{m / 1e9:>8.2f}{a / m:>8.2f}{t2}")
    r = val("Window/read_only_same_bytes", "bytes_per_second")
    if r is not None:
        fo = val("Window/tapegrad_fold/threads:1", "bytes_per_second")
        print(f"  a read-only stream of the same bytes: {r / 1e9:.2f} GB/s ({r / m:.2f} x memcpy);"
              f" fold / read-only = {fo / r:.2f} (fold's traffic is 90% reads)")
    for name, label in (("memcpy_im2col_pattern", "diagnostic: unfold's data movement as 9 memcpys per plane"),
                        ("diag_unfold_padded_stream", "diagnostic: unfold via padded plane + streaming stores"),
                        ("diag_fold_padded", "diagnostic: fold via padded plane")):
        d = val(f"Window/{name}", "bytes_per_second")
        if d is not None:
            print(f"  {label:<56}{d / 1e9:>7.2f} GB/s{d / m:>6.2f} x memcpy")
    print(f"  warm loops (data left in this VM's 260 MiB L3 by the previous iteration): worst {worst:.2f} x memcpy")
mc = val("WindowCold/memcpy_same_bytes", "bytes_per_second")
if mc is not None:
    print("\nunfold / fold from memory: a 512 MiB buffer written before each iteration (untimed), 1 thread")
    print(f"  {'op':<8}{'GB/s':>8}{'memcpy':>8}{'ratio':>8}{'read-only':>11}{'ratio':>8}")
    rc = val("WindowCold/read_only_same_bytes", "bytes_per_second")
    worst = 1e9
    for op in ("unfold", "fold"):
        a = val(f"WindowCold/tapegrad_{op}", "bytes_per_second")
        if a is None:
            continue
        worst = min(worst, a / mc)
        ro = f"{rc / 1e9:>11.2f}{a / rc:>8.2f}" if rc else f"{'-':>11}{'-':>8}"
        print(f"  {op:<8}{a / 1e9:>8.2f}{mc / 1e9:>8.2f}{a / mc:>8.2f}{ro}")
    print(f"  target: memory speed, taken as >= 0.80 x memcpy from memory, 1 thread (worst {worst:.2f})"
          f" -> {status(worst >= 0.80)}")
EOF
