#!/usr/bin/env bash
# tapegrad-gradcam end to end on a tiny generated IDX data set: a cnn-bn trained for a few steps by
# tapegrad-train, then the montage (a PNG of the expected size), the two checks printed, and bad
# flags rejected with a message.
# Usage: tests/gradcam_test.sh path/to/tapegrad-train path/to/tapegrad-gradcam
set -euo pipefail
train=$1
gradcam=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 64 training and 32 test images of 28x28 whose class sets a bright row, on black (make_idx_data.py).
python3 "$(dirname "$0")/make_idx_data.py" "$work/data" --clean

"$train" --model cnn-bn --data "$work/data" --epochs 3 --batch-size 16 --quiet --out "$work/run" >/dev/null
out=$("$gradcam" --model cnn-bn --weights "$work/run/model.safetensors" --data "$work/data" --limit 32 --count 6 \
      --out "$work/cam.png")
echo "$out"
grep -q "^target layer: '6' (ReLU)" <<<"$out" || fail "the default target layer is not cnn-bn's last ReLU"
grep -q '^32 test images, accuracy' <<<"$out" || fail "no accuracy line"
grep -q '^localisation: ' <<<"$out" || fail "no localisation line"
grep -q '^sanity check: Spearman correlation' <<<"$out" || fail "no sanity-check line"
# 6 images: 4 columns x 2 rows of (2 * 112 + 12) x (112 + 34) cells, plus the margin.
python3 - "$work/cam.png" <<'PY' || fail "the montage is not a PNG of the expected size"
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "signature"
w, h = struct.unpack(">II", d[16:24])
assert (w, h) == (4 * 236 + 8, 2 * 146 + 8), (w, h)
PY

# A named layer; a layer that does not exist; a missing flag.
"$gradcam" --model cnn-bn --weights "$work/run/model.safetensors" --data "$work/data" --limit 8 --count 2 \
  --layer 2 --out "$work/cam2.png" | grep -q "^target layer: '2' (ReLU)" || fail "--layer 2 not used"
set +e
err=$("$gradcam" --model cnn-bn --weights "$work/run/model.safetensors" --data "$work/data" --layer nope 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "--layer nope: exit $rc, expected 1"
grep -q "no module named 'nope'" <<<"$err" || fail "--layer nope: no message naming it: $err"
set +e
err=$("$gradcam" --model cnn-bn 2>&1)
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "no --weights: exit $rc, expected 2"
grep -q -- "--weights is required" <<<"$err" || fail "no --weights: $err"
set +e
err=$("$gradcam" --weights "$work/run/model.safetensors" --count 0 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] && grep -qF -- "--count expects a positive integer, got '0'" <<<"$err" || fail "--count 0: $rc $err"
set +e
err=$("$gradcam" --weights "$work/run/model.safetensors" --layr 2 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] && grep -qF -- "unknown option '--layr' (did you mean --layer?)" <<<"$err" || fail "--layr: $rc $err"
echo "gradcam_test: all checks passed"
