#!/usr/bin/env bash
# Installs what tapegrad needs from Debian's packages (skips apt when all are present).
# Usage: bash tools/setup.sh [--with-torch]   (--with-torch adds python3-torch, python3-torchvision and libtorch-dev, for golden values and benchmarks)
set -euo pipefail
pkgs=(cmake g++ make python3 xtensor-dev libxsimd-dev libxtensor-blas-dev libopenblas-dev libfmt-dev doctest-dev
      libbenchmark-dev zlib1g-dev libpng-dev libstb-dev fonts-dejavu-core clang-14 libclang-rt-14-dev
      dataset-fashion-mnist libopenmpi-dev openmpi-bin imagemagick libcli11-dev espeak-ng sox)
if [[ "${1:-}" == "--with-torch" ]]; then pkgs+=(python3-torch python3-torchvision python3-numpy libtorch-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
