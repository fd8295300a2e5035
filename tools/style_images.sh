#!/usr/bin/env bash
# The images of examples/style_transfer from ImageMagick's built-in images (nothing is
# downloaded): the rose photograph as content; as styles a plasma fractal (seeded, so always the
# same) and the granite texture.
# Usage: bash tools/style_images.sh [DIR]   (default data/style)
set -euo pipefail
dir=${1:-data/style}
mkdir -p "$dir"
convert rose: -resize 256x256! "$dir/content.png"
convert -size 256x256 -seed 7 plasma:fractal -blur 0x1 "$dir/style.png"
convert granite: -resize 256x256! "$dir/granite.png"
echo "wrote $dir/content.png (ImageMagick rose:), $dir/style.png (plasma:fractal, seed 7), $dir/granite.png (granite:)"
