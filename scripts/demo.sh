#!/usr/bin/env bash
# The main job, from a fresh Debian machine: installs what is missing, builds,
# trains a ViT with DINO on Fashion-MNIST (Debian's dataset-fashion-mnist
# package) with the small-image recipe (`dino train --preset fmnist`), then
# reports what the model learned (weighted k-NN top-1 of the teacher's
# features on the test set) and draws the training curves.
#
#   scripts/demo.sh [OUTPUT_DIR]     default runs/fmnist
#
# `--preset fmnist` is the short schedule (2 epochs, about 10 minutes on 2
# cores with the evaluation); extra training flags go in DINO_TRAIN_FLAGS.
# DINO_RANKS=N trains on N MPI processes of one thread each, splitting the
# batch of 64 between them (faster than threads on this small model). The long
# recipe (docs/TRAINING.md, under 2 hours on 2 cores):
#   DINO_RANKS=2 DINO_TRAIN_FLAGS="--epochs 40 --eval_knn_every 8" scripts/demo.sh runs/fmnist40
# Interrupted, it resumes from the last checkpoint when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fmnist}
DATA=/usr/share/datasets/fashion-mnist

# Check DINO_RANKS before installing and building, so a typo fails at once.
RANKS=${DINO_RANKS:-1}
[[ $RANKS =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: DINO_RANKS must be a positive whole number, not '$RANKS'" >&2; exit 2; }
BATCH=64  # --preset fmnist's global batch, split between the ranks
(( BATCH % RANKS == 0 )) || { echo "demo.sh: DINO_RANKS must divide the batch of $BATCH" >&2; exit 2; }

scripts/setup.sh
make -j"$(nproc)" build/dino >/dev/null
TRAIN=(build/dino train)
if [ "$RANKS" -gt 1 ]; then
  MPI=(mpirun -np "$RANKS" --oversubscribe --bind-to none --mca btl self,vader)
  [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
  TRAIN=("${MPI[@]}" build/dino --threads 1 train --batch_size_per_gpu $((BATCH / RANKS)))
fi
echo "== training: ${TRAIN[*]} --preset fmnist --eval_knn_every 1 --output_dir $OUT ${DINO_TRAIN_FLAGS:-}"
# shellcheck disable=SC2086
"${TRAIN[@]}" --preset fmnist --eval_knn_every 1 --output_dir "$OUT" ${DINO_TRAIN_FLAGS:-}

echo "== k-NN evaluation of the teacher (Fashion-MNIST train set as memory, test set as queries)"
build/dino knn --pretrained_weights "$OUT/checkpoint.dino" --data_path "$DATA" --nb_knn 10 20 \
  | tee "$OUT/knn.txt"
build/dino plot "$OUT/log.txt" --out "$OUT/curves.png"
echo "== done: model $OUT/checkpoint.dino, log $OUT/log.txt, curves $OUT/curves.png, k-NN $OUT/knn.txt"
