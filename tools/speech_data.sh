#!/usr/bin/env bash
# Synthesises the WaveNet example's speech (examples/wavenet.cpp) with espeak-ng: the sentences
# below, each spoken by one of several voices, speeds and pitches, resampled by sox to 16 kHz
# mono 16-bit PCM. Every fifth utterance goes to heldout/, the rest to train/: the held-out
# sentences are never heard in training. sox -R makes its dither repeatable: the same bytes on
# every run. Nothing is downloaded (tools/setup.sh installs espeak-ng and sox).
# Usage: bash tools/speech_data.sh [OUT_DIR]   (default data/speech)
set -euo pipefail
out=${1:-data/speech}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "speech_data.sh: $tool not found (bash tools/setup.sh installs it)" >&2; exit 1; }
done
mkdir -p "$out/train" "$out/heldout"
rm -f "$out"/train/*.wav "$out"/heldout/*.wav
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sentences=(
  "The quick brown fox jumps over the lazy dog near the river bank."
  "A gradient tells each weight which way to move to make the loss smaller."
  "She sells sea shells by the sea shore on a bright summer morning."
  "Please call Stella and ask her to bring these things with her from the store."
  "The train to the city leaves at seven fifteen from platform number four."
  "Rain fell softly on the roof while the children slept upstairs."
  "Every morning he walks the dog around the park before breakfast."
  "Reverse mode differentiation records a tape and walks it backwards."
  "The museum opens at ten o'clock and closes late on Thursday evenings."
  "Six thick thistle sticks lay scattered across the garden path."
  "Would you like a cup of tea or would you prefer some coffee instead?"
  "The old lighthouse keeper counted the ships that passed in the night."
  "Our neighbours painted their front door a cheerful shade of yellow."
  "Convolutional networks share their weights across every position of the signal."
  "He forgot his umbrella, so he waited under the bridge until the storm passed."
  "The library will be closed on Monday for the national holiday."
  "Two hundred and forty seven people answered the survey last week."
  "Bright stars shone above the mountains as the campfire burned low."
  "The chef tasted the soup and added a pinch of salt and pepper."
  "Learning to play the violin takes patience, practice and a good teacher."
  "A large wave crashed against the rocks and sprayed the fishermen."
  "Turn left at the second traffic light and the bakery is on your right."
  "The committee will announce its decision at the end of the month."
  "My grandmother grows tomatoes, beans and sunflowers in her backyard."
  "Why does the moon look so much bigger when it rises over the horizon?"
  "The pilot announced that the flight would land twenty minutes early."
  "Quietly, the cat crept along the fence, watching the sparrows."
  "Numbers are stored in memory as patterns of ones and zeros."
  "The orchestra tuned their instruments while the audience found their seats."
  "Fresh bread from the oven smells wonderful on a cold winter day."
  "Could you repeat the last part of the question, please?"
  "The scientists measured the temperature of the lake every hour."
  "Yesterday the wind blew so hard that the fence fell over."
  "A small boat drifted slowly down the canal past the old mill."
  "The students presented their projects to the whole school on Friday."
  "Autumn leaves of red and gold covered the quiet country road."
  "Thank you for waiting, your call is important to us."
  "The detective examined the footprints leading away from the window."
  "Heavy traffic on the motorway delayed the delivery by three hours."
  "In the spring the meadow is full of bees and wild flowers."
  "Seven silver spoons were missing from the kitchen drawer."
  "The baby laughed every time the puppy licked her tiny hands."
  "Mountains, rivers and forests stretched as far as the eye could see."
  "Remember to switch off the lights when you leave the office."
  "The winning team lifted the trophy while the crowd cheered loudly."
)
voices=(en-us en-gb en-us+f3 en-gb-x-rp+m3 en-us+f2 en-gb-scotland en-029 en-us+m7 en-gb-x-gbclan+f4 en-us+klatt)
speeds=(135 150 165 175 145 160 185 140 155 170 130)
pitches=(35 50 65 45 70 40 55 60 30 75 48 58 42)

for i in "${!sentences[@]}"; do
  v=${voices[i % ${#voices[@]}]} s=${speeds[i % ${#speeds[@]}]} p=${pitches[i % ${#pitches[@]}]}
  split=train
  (( i % 5 == 4 )) && split=heldout
  name=$(printf 'utt%03d' "$i")
  espeak-ng -v "$v" -s "$s" -p "$p" -w "$tmp/$name.wav" "${sentences[i]}"
  sox -R "$tmp/$name.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out/$split/$name.wav" gain -3  # headroom for the resampler
done
for split in train heldout; do
  n=$(ls "$out/$split"/*.wav | wc -l)
  secs=$(for f in "$out/$split"/*.wav; do soxi -D "$f"; done | awk '{s += $1} END {printf "%.1f", s}')
  echo "speech_data.sh: $out/$split: $n utterances, $secs s at 16 kHz"
done
