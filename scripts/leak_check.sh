#!/usr/bin/env bash
# A short end-to-end run of the tool under AddressSanitizer + LeakSanitizer
# (+ UBSan): builds build-asan/dino (the flags of `make asan`), makes a tiny
# IDX data set (64 train + 32 test images, no Python), then runs
#   dino train (2 epochs, tiny ViT) -> dino info -> dino features -> dino knn
#   -> dino attention (an 8x8 seed PNG) -> dino plot -> dino train again (resume: nothing left)
# and fails if any command exits non-zero or any sanitizer reports (a leak
# makes LeakSanitizer exit 23). Usage: scripts/leak_check.sh [workdir]
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-asan
make --no-print-directory -j2 BUILD=$B OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
  LDFLAGS="-fsanitize=address,undefined" $B/dino > /dev/null
W=${1:-$(mktemp -d /tmp/dino_leak_XXXXXX)}
mkdir -p "$W/data"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Only third-party font caches (PLplot -> cairo -> fontconfig) are suppressed.
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
export OMP_NUM_THREADS=2

# IDX files: big-endian header, then bytes (random pixels, labels 0..9).
idx_images() { printf '\x00\x00\x08\x03\x00\x00\x00'"$(printf '\\x%02x' "$2")"'\x00\x00\x00\x1c\x00\x00\x00\x1c' > "$1"; head -c $(( $2 * 784 )) /dev/urandom >> "$1"; }
idx_labels() { printf '\x00\x00\x08\x01\x00\x00\x00'"$(printf '\\x%02x' "$2")" > "$1"; for ((i = 0; i < $2; i++)); do printf "\\x$(printf %02x $((i % 10)))"; done >> "$1"; }
idx_images "$W/data/train-images-idx3-ubyte" 64
idx_labels "$W/data/train-labels-idx1-ubyte" 64
idx_images "$W/data/t10k-images-idx3-ubyte" 32
idx_labels "$W/data/t10k-labels-idx1-ubyte" 32

D=$B/dino
TINY=(--patch_size 4 --img_size 16 --embed_dim 16 --depth 2 --num_heads 2 --out_dim 32 --head_hidden_dim 16
      --head_bottleneck_dim 8 --global_crop_size 16 --local_crop_size 8 --local_crops_number 2
      --batch_size_per_gpu 16 --epochs 2 --warmup_epochs 1 --checkpoint_every_steps 2 --num_workers 2 --quiet)
step() { echo "leak_check: $*"; "$@" > "$W/last.log" 2>&1 || { echo "leak_check: FAILED (exit $?): $*"; tail -30 "$W/last.log"; exit 1; }; }
step $D train --data_path "$W/data" --output_dir "$W/out" "${TINY[@]}"
step $D info "$W/out/checkpoint.dino"
step $D features --pretrained_weights "$W/out/checkpoint.dino" --data_path "$W/data" --output_dir "$W/feat" --batch_size_per_gpu 16
step $D knn --pretrained_weights "$W/out/checkpoint.dino" --data_path "$W/data" --nb_knn 5 10 --batch_size_per_gpu 16
step $D attention fuzz/corpus/image/rgb.png --image_size 16 --pretrained_weights "$W/out/checkpoint.dino" --out "$W/attn"
step $D plot "$W/out/log.txt" --out "$W/curves.png" --width 320 --height 240
step $D train --data_path "$W/data" --output_dir "$W/out" "${TINY[@]}"
echo "leak_check: all commands ran clean under ASan + LeakSanitizer + UBSan (work folder $W)"
[ -z "${1:-}" ] && rm -rf "$W"
exit 0
