#!/usr/bin/env bash
# tapegrad-detection end to end at a tiny size: generated IDX data (each class a filled rectangle
# of its own shape, so the canvases' boxes are those rectangles), three training steps, the
# report (proposal recall, the per-class AP table, mAP), its files (metrics.csv, ap.csv, the
# weights, a PNG of the expected size), the same numbers on a second run with the same seed, bad
# flags (exit 2) and a missing data directory (exit 1).
# Usage: tests/detection_test.sh path/to/tapegrad-detection
set -euo pipefail
det=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

python3 - "$work/data" <<'PY'
import gzip, os, random, struct, sys
root = sys.argv[1]
os.makedirs(root)
rng = random.Random(5)
for prefix, n in (("train", 64), ("t10k", 32)):
    labels = [i % 10 for i in range(n)]
    pixels = bytearray()
    for y in labels:
        w, h = 8 + 2 * y, 26 - 2 * y  # class y: a w x h rectangle, centred
        x0, y0 = (28 - w) // 2, (28 - h) // 2
        img = [0] * 784
        for r in range(y0, y0 + h):
            for c in range(x0, x0 + w):
                img[r * 28 + c] = 180 + rng.randrange(0, 70)
        pixels += bytes(img)
    with gzip.open(os.path.join(root, prefix + "-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(pixels))
    with gzip.open(os.path.join(root, prefix + "-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labels))
PY

small=(--data "$work/data" --size 48 --train-canvases 16 --test-canvases 6 --min-scale 0.6 --max-scale 0.9
       --epochs 2 --batch 4 --rois 16 --max-steps 3 --threads 1 --log-every 1)
"$det" "${small[@]}" --draw 5 --out "$work/out" | tee "$work/log.txt"
grep -q '^data: 16 train canvases (.* objects), 6 test canvases' "$work/log.txt" || fail "no data line"
grep -Eq '^proposals: [0-9]+ sliding windows per canvas .* (0\.[0-9]+|1\.000) of the test objects' "$work/log.txt" \
  || fail "no proposal line"
[[ $(grep -c '^step ' "$work/log.txt") -eq 3 ]] || fail "expected 3 step lines (--max-steps 3)"
grep -q '^trained 3 steps of 4 canvases x 16 rois' "$work/log.txt" || fail "no training summary"
for name in 'T-shirt/top' 'Trouser' 'Pullover' 'Dress' 'Coat' 'Sandal' 'Shirt' 'Sneaker' 'Bag' 'Ankle boot'; do
  grep -q "^$name " "$work/log.txt" || fail "no AP row for $name"
done
grep -Eq '^mAP@0.5 \(VOC, all-points\): (0|1)\.[0-9]{4}$' "$work/log.txt" || fail "no mAP line"
grep -Eq '^mAP@0.5 without box regression .*: (0|1)\.[0-9]{4}$' "$work/log.txt" || fail "no mAP line without regression"
[[ $(wc -l < "$work/out/metrics.csv") -eq 4 ]] || fail "metrics.csv: expected a header and 3 rows"
head -1 "$work/out/metrics.csv" | grep -q '^step,epoch,loss,cls_loss,box_loss' || fail "metrics.csv header"
[[ $(wc -l < "$work/out/ap.csv") -eq 12 ]] || fail "ap.csv: expected a header, 10 classes and the mean"
[[ -s "$work/out/detection.safetensors" ]] || fail "no weights"
# 5 canvases of 48 x 48 drawn 4x: 4 columns x 2 rows of 192-pixel cells, 6 pixels apart.
python3 - "$work/out/detection.png" <<'PY' || fail "detection.png is not a PNG of the expected size"
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "signature"
w, h = struct.unpack(">II", d[16:24])
assert (w, h) == (4 * 192 + 5 * 6, 2 * 192 + 3 * 6), (w, h)
PY
# The same seed gives the same losses and the same scores.
"$det" "${small[@]}" --out "$work/again" --draw 0 > "$work/log2.txt"
cut -d, -f1-6 "$work/out/metrics.csv" > "$work/a.csv"
cut -d, -f1-6 "$work/again/metrics.csv" > "$work/b.csv"
cmp -s "$work/a.csv" "$work/b.csv" || fail "a second run with the same seed trained differently"
cmp -s "$work/out/ap.csv" "$work/again/ap.csv" || fail "a second run with the same seed scored differently"
[[ ! -e "$work/again/detection.png" ]] || fail "--draw 0 still drew"

for bad in "--epochs 0" "--bogus 3" "--lr abc" "--size 8" "--fg-fraction 2" "--min-items 3 --max-items 2" \
           "--bg-iou 0.6 --fg-iou 0.5"; do
  set +e
  err=$("$det" --data "$work/data" $bad 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 ]] && grep -q "tapegrad-detection: " <<<"$err" || fail "$bad: exit $rc: $err"
done
set +e
err=$("$det" --data "$work/data" --min-items 3 --max-items 2 2>&1)
set -e
grep -qF -- "--min-items (3) is above --max-items (2)" <<<"$err" || fail "no message naming --min-items: $err"
set +e
err=$("$det" --data "$work/nope" --threads 1 2>&1); rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "nope" <<<"$err" || fail "a missing directory: $rc $err"
echo "detection_test: all checks passed"
