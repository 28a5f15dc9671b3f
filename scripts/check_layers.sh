#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md that can be checked by reading
# the sources: the library never includes the command line (src/cli/), and
# only the files listed below reach into the CUDA engine (src/cuda/) until the
# engine interface replaces them. Prints each breach; exit 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
# Library code (everything in src/ but src/cli/) including a CLI header.
while IFS= read -r hit; do
  echo "layers: $hit: the library includes the command line"
  status=1
done < <(grep -rnE '#include "(cli/|args\.h|commands\.h|eval_common\.h)' src \
           --include='*.c' --include='*.h' --include='*.cu' --include='*.cuh' | grep -v '^src/cli/')
# Files outside src/cuda/ that include a CUDA engine header today.
CUDA_CLIENTS="src/train/trainer.c src/train/train_settings.c src/eval/features.c
src/cli/cmd_knn.c src/cli/cmd_train.c src/cli/cmd_features.c src/cli/cmd_bench.c"
for f in $(grep -rlE '#include "cuda/' src --include='*.c' --include='*.h' | grep -v '^src/cuda/'); do
  case " $(echo $CUDA_CLIENTS) " in
    *" $f "*) ;;
    *) echo "layers: $f includes src/cuda/; only the engine seam may (scripts/check_layers.sh lists today's)"; status=1 ;;
  esac
done
[ $status -eq 0 ] && echo "layers: include rules hold"
exit $status
