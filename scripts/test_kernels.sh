#!/usr/bin/env bash
# Runs the built test suite (BUILD, default build) again under other OpenBLAS
# GEMM kernels. OpenBLAS picks its kernel from the CPU and each kernel sums in
# its own order, so a numeric test that passes only under this CPU's kernel
# would fail on another user's machine; OPENBLAS_CORETYPE makes this CPU run
# another's. KERNELS names the kernels to try (default: every one listed
# below); those this CPU cannot execute are skipped, and said so. The
# library's GEMMs go to OpenBLAS for these runs (DINO_GEMM=openblas; the
# default backend is oneDNN where it runs, docs/ENGINE.md), so the suite sees
# a third summation order besides oneDNN's.
#   scripts/test_kernels.sh build                  # all that this CPU can run
#   KERNELS="Haswell SkylakeX" scripts/test_kernels.sh build   # what CI runs
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
KERNELS=${KERNELS:-Sandybridge Haswell Zen SkylakeX}
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ $flags == *" $1 "* ]]; }
# the instruction set each kernel needs
runs() {
  case $1 in
    Sandybridge) has avx ;;
    Haswell | Zen) has avx2 && has fma ;;
    SkylakeX) has avx512f && has avx512bw && has avx512vl ;;
    *) return 1 ;;
  esac
}
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')
status=0
for k in $KERNELS; do
  if ! runs "$k"; then
    echo "== OPENBLAS_CORETYPE=$k: skipped, this CPU ($model) lacks its instructions"
    continue
  fi
  echo "== OPENBLAS_CORETYPE=$k on $model"
  DINO_GEMM=openblas OPENBLAS_CORETYPE=$k scripts/run_tests.sh "$BUILD" || status=1
done
exit $status
