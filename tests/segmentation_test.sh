#!/usr/bin/env bash
# tapegrad-segmentation end to end at a tiny size: canvases from a generated IDX data set
# (make_idx_data.py: 28 x 28 items whose class sets a bright row), a width-4 U-Net for two
# epochs of three steps, the report (class weights, per-epoch metrics, per-class IoU), the
# outputs (metrics.csv, the PNG's size, the safetensors' names), the same numbers from the same
# seed, unweighted loss, bad flags (exit 2) and a missing data directory (exit 1).
# Usage: tests/segmentation_test.sh path/to/tapegrad-segmentation
set -euo pipefail
seg=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
python3 "$(dirname "$0")/make_idx_data.py" "$work/data"
small=(--data "$work/data" --train-canvases 24 --test-canvases 8 --width 4 --batch 4 --epochs 2 --steps 3
       --show 4 --threads 1)
"$seg" "${small[@]}" --out "$work/a" | tee "$work/log.txt"
grep -q '^data: 24 train canvases (from 64 train items), 8 test canvases (from 32 test items), 64x64' "$work/log.txt" \
  || fail "no data line"
grep -q '^class weights (median frequency balancing):' "$work/log.txt" || fail "no class weights"
[[ $(grep -c '% of train pixels  weight ' "$work/log.txt") -eq 11 ]] || fail "expected 11 class weights"
# background is most of the canvas, so its median-frequency weight is below 1
grep -E '^ +0 background .* weight 0\.[0-9]+$' "$work/log.txt" >/dev/null || fail "background weight not < 1"
[[ $(grep -c '^epoch [12]  3 steps  train loss [0-9.]*  .* test pixel accuracy 0\.[0-9]*  mean IoU [01]\.[0-9]*$' \
      "$work/log.txt") -eq 2 ]] || fail "expected 2 epoch lines"
[[ $(grep -cE ' IoU ([01]\.[0-9]{4}|nan) +[0-9]+ px  recall ' "$work/log.txt") -eq 11 ]] || fail "expected 11 per-class rows"
grep -q '^test: pixel accuracy 0\.[0-9]*, mean IoU [01]\.[0-9]* (over the classes present)' "$work/log.txt" \
  || fail "no final metrics"
python3 - "$work/log.txt" <<'PY' || fail "the mean IoUs are not the means of the per-class IoUs"
import math, re, sys
text = open(sys.argv[1]).read()
iou = [float(v) for v in re.findall(r"IoU ([0-9.]+|nan) +[0-9]+ px", text)]
m = re.search(r"mean IoU ([0-9.]+) \(over the classes present\), mean IoU of the 10 item classes ([0-9.]+)", text)
mean = lambda xs: sum(x for x in xs if not math.isnan(x)) / sum(1 for x in xs if not math.isnan(x))
assert len(iou) == 11 and abs(mean(iou) - float(m.group(1))) < 2e-4 and abs(mean(iou[1:]) - float(m.group(2))) < 2e-4, (iou, m.groups())
PY
python3 - "$work/a" <<'PY' || fail "outputs are not well-formed"
import csv, json, struct, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/metrics.csv")))
assert [r["epoch"] for r in rows] == ["1", "2"], rows
for r in rows:
    assert r["steps"] == "3"
    assert float(r["train_loss"]) > 0
    assert 0 <= float(r["test_pixel_accuracy"]) <= 1 and 0 <= float(r["test_mean_iou"]) <= 1, r
png = open(d + "/segmentation.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n", "signature"
w, h = struct.unpack(">II", png[16:24])
assert (w, h) == (4 * 64 + 5 * 2, 3 * 64 + 4 * 2), (w, h)
st = open(d + "/segmentation.safetensors", "rb").read()
n = struct.unpack("<Q", st[:8])[0]
names = set(json.loads(st[8:8 + n])) - {"__metadata__"}
for want in ("enc1.0.weight", "enc1.1.running_mean", "up2.weight", "up2.bias", "up1.weight", "dec1.3.weight",
             "head.weight", "head.bias"):
    assert want in names, (want, sorted(names))
PY
# The same seed gives the same numbers (timings aside).
"$seg" "${small[@]}" --out "$work/b" >/dev/null
cmp <(cut -d, -f1-5 "$work/a/metrics.csv") <(cut -d, -f1-5 "$work/b/metrics.csv") || fail "not deterministic"
# Unweighted: every class weight 1, and a different loss.
"$seg" "${small[@]}" --weighting none --epochs 1 --out "$work/c" >"$work/none.txt"
grep -q '^class weights (none, every class 1):' "$work/none.txt" || fail "--weighting none"
[[ $(grep -c 'weight 1\.000$' "$work/none.txt") -eq 11 ]] || fail "--weighting none: weights not 1"
[[ $(sed -n 2p "$work/c/metrics.csv" | cut -d, -f3) != $(sed -n 2p "$work/a/metrics.csv" | cut -d, -f3) ]] \
  || fail "the weighted and unweighted losses are equal"
# The square root of median-frequency weights: background's weight is the square root of its median one.
"$seg" "${small[@]}" --weighting sqrt --epochs 1 --steps 1 --out "$work/d" >"$work/sqrt.txt"
grep -q '^class weights (square root of median frequency balancing):' "$work/sqrt.txt" || fail "--weighting sqrt"
python3 - "$work/log.txt" "$work/sqrt.txt" <<'PY' || fail "--weighting sqrt: not the square roots"
import re, sys
def weights(path):
    return [float(m.group(1)) for m in re.finditer(r"weight ([0-9.]+)$", open(path).read(), re.M)]
med, sq = weights(sys.argv[1]), weights(sys.argv[2])
assert len(med) == len(sq) == 11
assert all(abs(s * s - m) < 6e-4 + 1.1e-3 * s for m, s in zip(med, sq)), (med, sq)  # both printed to 3 decimals
PY
for bad in "--epochs 0" "--steps -1" "--batch x" "--lr abc" "--size 30" "--size 66" "--weighting inverse" \
           "--bogus 3" "--train-canvases"; do
  set +e
  err=$("$seg" --data "$work/data" $bad 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 ]] && grep -q "^tapegrad-segmentation: " <<<"$err" || fail "$bad: exit $rc: $err"
done
set +e
err=$("$seg" --data "$work/nope" --train-canvases 4 2>&1); rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "nope" <<<"$err" || fail "a missing data directory: $rc $err"
echo "segmentation_test: all checks passed"
