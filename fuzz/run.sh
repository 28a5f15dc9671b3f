#!/usr/bin/env bash
# Builds and runs one libFuzzer target (clang, ASan, UBSan) for a while:
#   fuzz/run.sh pickle [seconds]   fuzz/run.sh files [seconds]
# Seeds come from tests/fixtures/io_*; crashes are written to fuzz/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz/run.sh pickle|files [seconds]}
secs=${2:-60}
mkdir -p fuzz/out/corpus_$target
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Isrc $(pkg-config --cflags libzip libcjson zlib)"
srcs="src/io/*.c src/common.c src/params.c src/rng.c src/vit.c src/head.c src/model.c src/ops_cpu.c"
BLAS_INC=$(ls -d /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp 2>/dev/null | head -1 || true)
clang $flags ${BLAS_INC:+-I$BLAS_INC} -fopenmp fuzz/fuzz_$target.c $srcs -o fuzz/out/fuzz_$target \
  $(pkg-config --libs libzip libcjson zlib) -lopenblas -lm -fopenmp
seeds=fuzz/out/seeds_$target
mkdir -p $seeds
if [ "$target" = files ]; then
  i=0
  for f in tests/fixtures/io_*; do
    [ "$(stat -c %s "$f")" -lt 300000 ] || continue
    for k in 0 1 2 3; do printf "\\x$(printf %02x $k)" | cat - "$f" > $seeds/$i.$k; done
    i=$((i + 1))
  done
else
  for f in tests/fixtures/io_misc_p*.pth tests/fixtures/io_evil_*.pth; do
    unzip -p "$f" '*/data.pkl' > "$seeds/$(basename "$f").pkl" 2>/dev/null || true
  done
fi
fuzz/out/fuzz_$target -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 \
  -artifact_prefix=fuzz/out/ fuzz/out/corpus_$target $seeds
