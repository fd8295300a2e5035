#!/usr/bin/env bash
# Where the cnn-bn training step spends its time, per op: `perf record` of tapegrad-train, the
# samples grouped by the kernel they fall in (each primitive's loop, OpenBLAS, libc's memcpy and
# memset), printed as a table. Needs Linux perf (Debian: linux-perf).
#
#   bench/profile_ops.sh                  # 1 thread, 6,400 training samples + the test pass
#   THREADS=2 SAMPLES=12800 bench/profile_ops.sh
#
# The evaluation pass over the 10,000 test images is part of the run (forward only); the
# percentages are of all samples of the process.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-1}
SAMPLES=${SAMPLES:-6400}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cmake --build "$BUILD_DIR" -j2 --target tapegrad-train >/dev/null
# Hardware cycles where the machine counts them, the kernel's clock otherwise (virtual machines).
EVENT=cycles
if perf stat -e cycles true 2>&1 | grep -q "not supported"; then EVENT=cpu-clock; fi
perf record -e "$EVENT" -q -o "$OUT/perf.data" "$BUILD_DIR/examples/tapegrad-train" --limit "$SAMPLES" --epochs 1 \
  --threads "$THREADS" --quiet --out "$OUT/run" | grep '^epoch'
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep '%' |
  /usr/bin/python3 -c '
import re, sys
groups = [  # (label, regex on the symbol); first match wins
    ("kernel (page faults, scheduling)", r"\[k\]"),
    ("conv: direct kernels (tiles, gradient transposes, padded copies)", r"direct::"),
    ("conv / linear GEMM (OpenBLAS sgemm kernels and packing)", r"sgemm|sger|saxpy"),
    ("unfold (im2col) inside conv; memcpy (mostly its copies)", r"unfold_rows_flat|unfold_planes|__memmove|memcpy"),
    ("fold (col2im)", r"fold_planes|fold_all"),
    ("max pool: window_argmax (running maximum)", r"window_argmax|running_max"),
    ("max pool: gather / scatter_add (and cross-entropy pick)", r"gather|scatter_add|index_rows"),
    ("batch norm: moments (statistics)", r"moments"),
    ("batch norm: fma (scale and shift, moments VJP)", r"prim::fma|scale_shift"),
    ("batch norm: mul_sum_to (scale gradient)", r"mul_sum_to|::dot<"),
    ("relu / relu_backward", r"relu"),
    ("sum reductions (bias gradients, losses)", r"reduce<"),
    ("broadcast binary ops (add, mul, sub, div)", r"broadcast_apply|binary<"),
    ("zero-fills (memset, fill_)", r"memset|fill_"),
    ("optimizer (SGD update)", r"optim::"),
    ("in-place accumulation (add_)", r"add_\("),
    ("transcendental (exp, log: softmax, cross-entropy)", r"simd::|exp|log"),
]
tot = {}
other = 0.0
for line in sys.stdin:
    m = re.match(r"\s*([0-9.]+)%\s+(.*)", line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    for label, rx in groups:
        if re.search(rx, sym):
            tot[label] = tot.get(label, 0.0) + pct
            break
    else:
        other += pct
print("| " + "op".ljust(62) + " | share |")
print("|" + "-" * 64 + "|-------|")
for label, pct in sorted(tot.items(), key=lambda kv: -kv[1]):
    print("| " + label.ljust(62) + " | %4.1f%% |" % pct)
print("| " + "everything else (tape, allocation, data loading, ...)".ljust(62) + " | %4.1f%% |" % other)
'
