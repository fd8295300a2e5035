#!/usr/bin/env bash
# tapegrad-style end to end at a small size: two generated PNGs (a gradient and a checkerboard),
# two L-BFGS steps and 20 Adam iterations that lower the loss, the output files, bad flags.
# Usage: tests/style_test.sh path/to/tapegrad-style
set -euo pipefail
style=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
python3 - "$work" <<'PY'
import struct, sys, zlib
def png(path, w, h, pixel):
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(w)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/content.png", 40, 30, lambda x, y: (6 * x, 8 * y, 128))
png(sys.argv[1] + "/style.png", 24, 24, lambda x, y: (255, 255, 0) if (x // 4 + y // 4) % 2 else (0, 0, 255))
PY
"$style" --content "$work/content.png" --style "$work/style.png" --size 32 --steps 2 --out "$work/lbfgs" \
  | tee "$work/lbfgs.log" | tail -2
grep -q 's each, 32x32' "$work/lbfgs.log" || fail "no time per evaluation"
for f in content.png style.png result.png loss.csv loss.svg; do [[ -s "$work/lbfgs/$f" ]] || fail "missing $f"; done
"$style" --content "$work/content.png" --style "$work/style.png" --size 32 --optimizer adam --steps 20 \
  --out "$work/adam" | tail -1
[[ $(wc -l < "$work/adam/loss.csv") -eq 21 ]] || fail "adam: expected 20 loss rows"
set +e
err=$("$style" --content "$work/content.png" --style "$work/style.png" --optimizer sgd 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "expects lbfgs or adam, got 'sgd'" <<<"$err" || fail "--optimizer sgd: $rc $err"
set +e
err=$("$style" --content "$work/nope.png" --style "$work/style.png" --size 32 2>&1); rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "nope.png" <<<"$err" || fail "a missing file: $rc $err"
for bad in "--size 3x|--size expects a positive integer, got '3x'" "--siez 32|unknown option '--siez' (did you mean --size?)" \
           "--lr|--lr expects a value" "--tv-weight=-1|--tv-weight expects a positive number, got '-1'"; do
  set +e
  err=$("$style" --content "$work/content.png" --style "$work/style.png" ${bad%%|*} 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 ]] && grep -qF -- "${bad#*|}" <<<"$err" || fail "${bad%%|*}: $rc $err"
done
set +e
err=$("$style" --content "$work/content.png" 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q -- "--style is required" <<<"$err" || fail "no --style: $rc $err"
echo "style_test: all checks passed"
