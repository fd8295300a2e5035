#!/usr/bin/env bash
# tapegrad-wavenet end to end at a tiny size: generated WAV files (chirps and noise, 16 kHz
# mono 16-bit), three training steps, the held-out scores beside both baselines, a generated
# WAV of the expected length, bad flags (exit 2) and a missing data directory (exit 1).
# Usage: tests/wavenet_test.sh path/to/tapegrad-wavenet
set -euo pipefail
wavenet=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
python3 - "$work" <<'PY'
import math, os, random, struct, sys, wave
random.seed(1)
for split, n, secs in (("train", 3, 0.5), ("heldout", 1, 0.3)):
    os.makedirs(os.path.join(sys.argv[1], "data", split))
    for i in range(n):
        f0 = 200 + 80 * i
        frames = int(16000 * secs)
        xs = [0.4 * math.sin(2 * math.pi * (f0 + 300 * t / frames) * t / 16000) + random.gauss(0, 0.02) for t in range(frames)]
        with wave.open(os.path.join(sys.argv[1], "data", split, f"utt{i}.wav"), "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
            w.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, x)) * 32767)) for x in xs))
PY
small=(--layers 3 --cycles 1 --residual 4 --gate 4 --skip 8 --batch 2 --window 64 --threads 1)
"$wavenet" --data "$work/data" --out "$work/out" --steps 3 --log-every 1 "${small[@]}" --eval-seconds 0.2 \
  --generate-seconds 0.1 --naive-samples 20 | tee "$work/log.txt"
grep -q '^receptive field: 8 samples' "$work/log.txt" || fail "no receptive field"
[[ $(grep -c '^step ' "$work/log.txt") -eq 3 ]] || fail "expected 3 step lines"
grep -q 'held-out: 3200 samples' "$work/log.txt" || fail "held-out samples"
for what in 'WaveNet ' 'mu-law histogram' 'previous-sample'; do
  grep "$what" "$work/log.txt" | grep -q 'bits/sample' || fail "no $what score"
done
grep -q 'samples/s (cached' "$work/log.txt" || fail "no generation speed"
grep -q 'without the cache.*samples/s' "$work/log.txt" || fail "no uncached speed"
[[ $(stat -c %s "$work/out/generated.wav") -eq $((44 + 1600 * 2)) ]] || fail "generated.wav size"
for f in train.csv wavenet.safetensors; do [[ -s "$work/out/$f" ]] || fail "missing $f"; done
for bad in "--steps -1" "--bogus 3" "--layers 0" "--lr abc"; do
  set +e
  err=$("$wavenet" --data "$work/data" $bad 2>&1); rc=$?
  set -e
  [[ $rc -eq 2 ]] && grep -q "tapegrad-wavenet: " <<<"$err" || fail "$bad: exit $rc: $err"
done
set +e
err=$("$wavenet" --data "$work/nope" "${small[@]}" 2>&1); rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "nope/train" <<<"$err" || fail "a missing directory: $rc $err"
echo "wavenet_test: all checks passed"
