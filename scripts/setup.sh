#!/usr/bin/env bash
# Installs the Debian packages dino.c needs to build, test and run its demo.
# Safe to run any number of times: it installs only what is missing, through
# sudo when the user is not root.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  libopenblas-openmp-dev   # GEMM, threaded with OpenMP like our kernels
  libdnnl-dev              # oneDNN matmul: fp32 GEMMs on AVX-512, bf16 on AVX512-BF16/AMX
  libjpeg62-turbo-dev      # JPEG decoding (libjpeg-turbo)
  libpng-dev zlib1g-dev    # PNG reading and writing
  libzip-dev               # the zip container of PyTorch .pth files
  libcjson-dev             # safetensors JSON headers
  libplplot-dev plplot-driver-cairo  # `dino plot`
  dataset-fashion-mnist    # the default dataset of the demo
  libopenmpi-dev openmpi-bin  # `mpirun dino train`: data-parallel training (docs/DISTRIBUTED.md)
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
