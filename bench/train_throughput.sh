#!/usr/bin/env bash
# Training throughput of cnn-bn on Fashion-MNIST, tapegrad-train beside PyTorch 1.13 on the same
# model and data (bench/pytorch_cnn_bn.py), at 1 and 2 threads, runs interleaved so that both
# sides see the same machine; then (MEM=1) the peak RSS of one full epoch of each.
#
#   bench/train_throughput.sh                 # 3 rounds of 12,800 samples per configuration
#   REPS=5 SAMPLES=25600 bench/train_throughput.sh
#   MEM=1 bench/train_throughput.sh           # also one full epoch each, peak RSS (2 threads)
#
# Environment: BUILD_DIR (default build: the README's Release build), REPS (3), SAMPLES (12800),
# MEM (0), PYTHON (/usr/bin/python3). tapegrad's samples/s is the trainer's own (training loop
# only, data loading included, evaluation excluded); PyTorch's is its training loop over
# in-memory tensors (its best configuration, see ../shared/ENVIRONMENT.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
REPS=${REPS:-3}
SAMPLES=${SAMPLES:-12800}
MEM=${MEM:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target tapegrad-train >/dev/null
TRAIN="$BUILD_DIR/examples/tapegrad-train"

echo "== machine"
lscpu | grep -E '^(Model name|CPU\(s\)):' | sed 's/  */ /g'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

tg_rate() {  # threads -> samples/s from the trainer's epoch line
  "$TRAIN" --limit "$SAMPLES" --epochs 1 --threads "$1" --quiet --out "$OUT/tg" 2>&1 |
    sed -n 's/^epoch 1\/1: .* \([0-9.]*\) samples\/s$/\1/p'
}
pt_rate() {
  OPENBLAS_NUM_THREADS=1 "$PYTHON" bench/pytorch_cnn_bn.py --threads "$1" --samples "$SAMPLES" |
    sed -n 's/.*: \([0-9.]*\) samples\/s.*/\1/p'
}

echo "== cnn-bn training, batch 64, $SAMPLES samples per run, $REPS rounds (samples/s)"
printf '  %5s %7s %10s %10s %8s\n' round threads tapegrad PyTorch tg/PT
for ((r = 1; r <= REPS; ++r)); do
  for t in 1 2; do
    a=$(tg_rate "$t")
    b=$(pt_rate "$t")
    echo "$t $a $b" >>"$OUT/rates"
    printf '  %5d %7d %10.0f %10.0f %8.2f\n' "$r" "$t" "$a" "$b" "$(echo "$a / $b" | bc -l)"
  done
done
"$PYTHON" - "$OUT/rates" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("  medians:")
for t in ("1", "2"):
    a = statistics.median(float(r[1]) for r in rows if r[0] == t)
    b = statistics.median(float(r[2]) for r in rows if r[0] == t)
    verdict = "MET" if a >= b else "MISSED"
    print(f"  {t} thread(s): tapegrad {a:.0f}, PyTorch {b:.0f}, ratio {a / b:.2f} -> target >= PyTorch {verdict}")
    if t == "2":
        print(f"  hardware limit ~8,000 samples/s on two cores (../shared/ENVIRONMENT.md): tapegrad at "
              f"{a / 8000:.0%}, PyTorch at {b / 8000:.0%}")
EOF

if [[ "$MEM" == 1 ]]; then
  echo "== one full epoch (60,000 images), 2 threads: peak RSS (/usr/bin/time -f %M)"
  /usr/bin/time -f '%M' -o "$OUT/tg_rss" "$TRAIN" --epochs 1 --threads 2 --quiet --out "$OUT/tg_full" |
    grep '^epoch' | sed 's/^/  tapegrad: /'
  OPENBLAS_NUM_THREADS=1 /usr/bin/time -f '%M' -o "$OUT/pt_rss" "$PYTHON" bench/pytorch_cnn_bn.py --threads 2 --epoch |
    sed 's/^/  /'
  a=$(tail -1 "$OUT/tg_rss")
  b=$(tail -1 "$OUT/pt_rss")
  printf '  peak RSS: tapegrad %.0f MiB, PyTorch %.0f MiB, ratio %.2f -> target below PyTorch %s\n' \
    "$(echo "$a / 1024" | bc -l)" "$(echo "$b / 1024" | bc -l)" "$(echo "$a / $b" | bc -l)" \
    "$([[ $a -lt $b ]] && echo MET || echo MISSED)"
fi
