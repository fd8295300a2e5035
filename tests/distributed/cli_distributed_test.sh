#!/usr/bin/env bash
# tapegrad-train --distributed on a tiny generated IDX set: 2 ranks x batch 8 end with the weights
# of 1 rank x batch 16 (float32, to 1e-5), rank 0 alone prints and writes, and --resume under
# mpirun ends where a straight run does. Usage: cli_distributed_test.sh <tapegrad-train> <mpiexec> [mpiexec flags...]
set -euo pipefail
train=$1 mpiexec=$2
shift 2
flags=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

python3 "$(dirname "$0")/../make_idx_data.py" "$work/data"

common=(--distributed --model mlp --optimizer sgd --lr 0.05 --scheduler none --threads 1 --seed 3 --quiet
        --data "$work/data")
run() { local np=$1; shift; timeout 300 "$mpiexec" "${flags[@]}" -np "$np" "$train" "${common[@]}" "$@"; }

run 1 --batch-size 16 --epochs 3 --out "$work/one" > "$work/one.log"
run 2 --batch-size 8 --epochs 3 --out "$work/two" > "$work/two.log"
[[ $(grep -c "^epoch 3/3:" "$work/two.log") -eq 1 ]] || fail "expected one epoch line from rank 0 alone: $(cat "$work/two.log")"
grep -q "2 ranks x batch 8" "$work/two.log" || fail "the header does not say 2 ranks"
[[ $(wc -l < "$work/two/metrics.csv") -eq 4 ]] || fail "metrics.csv should list 3 epochs"

# The largest difference between the float32 tensors of two safetensors files.
python3 - "$work/one/model.safetensors" "$work/two/model.safetensors" <<'PY' || fail "2 x 8 does not follow 1 x 16"
import json, struct, sys
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        out[k] = struct.unpack("<%df" % (len(raw) // 4), raw) if v["dtype"] == "F32" else raw
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), (a.keys(), b.keys())
worst = max(max(abs(x - y) for x, y in zip(a[k], b[k])) for k in a)
print(f"largest |w(2 ranks x 8) - w(1 rank x 16)| after 12 steps: {worst:.3g}")
sys.exit(0 if worst <= 1e-5 else 1)
PY

# Interrupted after epoch 2 and resumed to 3 under mpirun: the straight run's weights, byte for byte.
run 2 --batch-size 8 --epochs 2 --out "$work/part" > /dev/null
run 2 --batch-size 8 --epochs 3 --out "$work/part" --resume "$work/part/checkpoint.safetensors" > /dev/null
cmp -s "$work/two/model.safetensors" "$work/part/model.safetensors" || fail "resumed weights differ from the straight run's"
echo "cli_distributed_test: passed"
