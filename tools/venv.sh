#!/usr/bin/env bash
# Creates (on first use) the git-ignored virtual environment with PyTorch,
# torchvision, timm, numpy, Pillow and OpenCV (the reference reads DAVIS
# frames with cv2) from PyPI that tools/ and bench/ scripts use as the
# reference oracle, and prints its python. Never needed to build,
# test or run dino.c. Override the location with DINO_VENV.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${DINO_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, timm, torchvision, PIL, numpy, cv2" 2>/dev/null; then
  echo "tools/venv.sh: installing torch, torchvision, timm, numpy, pillow, opencv-python-headless into $venv (large download)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision timm numpy pillow opencv-python-headless >&2
fi
echo "$venv/bin/python"
