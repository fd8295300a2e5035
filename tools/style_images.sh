#!/usr/bin/env bash
# The content and style images of examples/style_transfer from ImageMagick's built-in images
# (nothing is downloaded): the rose photograph as content, the granite texture as style.
# Usage: bash tools/style_images.sh [DIR]   (default data/style)
set -euo pipefail
dir=${1:-data/style}
mkdir -p "$dir"
convert rose: -resize 256x256! "$dir/content.png"
convert granite: -resize 256x256! "$dir/style.png"
echo "wrote $dir/content.png (ImageMagick rose:) and $dir/style.png (granite:)"
