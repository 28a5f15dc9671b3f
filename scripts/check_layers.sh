#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md that can be checked by reading
# the sources: the library never includes the command line (src/cli/), only
# the files listed below reach into the CUDA engine (src/cuda/), and the CUDA
# engine reaches the trainer only through its engine interface. Prints each
# breach; exit 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
# Library code (everything in src/ but src/cli/) including a CLI header.
while IFS= read -r hit; do
  echo "layers: $hit: the library includes the command line"
  status=1
done < <(grep -rnE '#include "(cli/|args\.h|commands\.h|eval_common\.h)' src \
           --include='*.c' --include='*.h' --include='*.cu' --include='*.cuh' | grep -v '^src/cli/')
# Files outside src/cuda/ that include a CUDA engine header today: the
# feature extractor, until it too goes through an engine interface (the
# trainer's is src/train/engine.h).
CUDA_CLIENTS="src/eval/features.c"
for f in $(grep -rlE '#include "cuda/' src --include='*.c' --include='*.h' | grep -v '^src/cuda/'); do
  case " $(echo $CUDA_CLIENTS) " in
    *" $f "*) ;;
    *) echo "layers: $f includes src/cuda/; only the engine seam may (scripts/check_layers.sh lists today's)"; status=1 ;;
  esac
done
# The CUDA engine sees the trainer only through the engine interface: no
# header of the trainer, its loop or its data-parallel glue.
while IFS= read -r hit; do
  echo "layers: $hit: an engine includes the trainer (use train/engine.h)"
  status=1
done < <(grep -rnE '#include "train/(trainer|dist_train|train_run|train_log|train_settings|schedule)\.h"' src/cuda \
           --include='*.c' --include='*.h' --include='*.cu' --include='*.cuh')
[ $status -eq 0 ] && echo "layers: include rules hold"
exit $status
