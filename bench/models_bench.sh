#!/usr/bin/env bash
# Issue 12's training-step comparison: tapegrad's zoo beside torchvision in the same run, one
# process per model and library (peak RSS is per process), alternating the two sides.
# Usage: bash bench/models_bench.sh [build-bench] [models...]   (default: resnet50 densenet121)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
shift || true
models=("${@:-resnet50 densenet121}")
[[ -x "$build/bench/models_bench" ]] || { echo "build $build with -DTAPEGRAD_BUILD_BENCH=ON first"; exit 1; }
lscpu | grep 'Model name'
for m in ${models[@]}; do
  "$build/bench/models_bench" --model "$m" --batch 16 --size 64 --threads 2
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_models.py --model "$m" --batch 16 --size 64 --threads 2
done
