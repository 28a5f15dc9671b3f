#!/usr/bin/env bash
# `make fuzz`: builds every libFuzzer target (fuzz/fuzz_<reader>.c) with clang
# under AddressSanitizer + UndefinedBehaviorSanitizer into build-fuzz/, then
# runs each one after the other (one process, one core) for FUZZ_SECONDS
# (default 60) from its seed corpus fuzz/corpus/<reader>/ plus what earlier
# runs found (build-fuzz/corpus/<reader>/, not committed). Crashing inputs go
# to build-fuzz/crashes/<reader>/; copy each into fuzz/regressions/<reader>/
# so that tests/test_regressions.c replays it in the normal build. A summary
# (executions, time, corpus, crashes per target) goes to build-fuzz/summary.txt.
# FUZZ_TARGETS="image idx" runs a subset; FUZZ_ARGS adds libFuzzer flags.
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-60}
B=build-fuzz
# clang with its libFuzzer runtime (Debian: clang, libclang-rt-14-dev); the
# normal build and `make test` do not need them, so only this script installs them.
can_fuzz() { echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
  clang -fsanitize=fuzzer,address -x c - -o /dev/null >/dev/null 2>&1; }
if ! can_fuzz; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "fuzz: installing clang and its libFuzzer runtime"
  $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null || true
  can_fuzz || { echo "fuzz: needs clang with libFuzzer (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
fi

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for t in $FUZZ_TARGETS; do targets+=("$t"); done
else
  for f in fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# Images above 4 Mpx are refused in the fuzz build only (decode.h allows 89 Mpx,
# as Pillow): a 400-byte JPEG declaring 87 Mpx is valid and takes over 10 s to
# decode under ASan, which would stall the fuzzer without finding anything.
OPT="-O1 -fsanitize=fuzzer-no-link $SAN -Wno-pass-failed -DIMAGE_MAX_PIXELS=4000000LL"
mkdir -p $B
# make does not track flags: rebuild from scratch when they change.
if [ "$(cat $B/.flags 2>/dev/null)" != "$OPT" ]; then rm -rf $B/src $B/libdino.a $B/fuzz; echo "$OPT" > $B/.flags; fi
make --no-print-directory -j2 CC=clang BUILD=$B OPT="$OPT" LDFLAGS="-fsanitize=address,undefined" \
  $B/libdino.a > $B/build.log 2>&1 || { tail -30 $B/build.log; exit 1; }
# A target whose reader is not in this tree yet (#error in fuzz_<reader>.c) is skipped.
built=()
for t in "${targets[@]}"; do
  if make --no-print-directory CC=clang BUILD=$B OPT="$OPT" LDFLAGS="-fsanitize=address,undefined" \
       "$B/fuzz/fuzz_$t" >> $B/build.log 2>&1; then built+=("$t"); else echo "fuzz: skipping $t (does not build here; see $B/build.log)"; fi
done
targets=("${built[@]}")

# Per-target libFuzzer options: inputs large enough for the format.
max_len() {
  case $1 in
    cifar) echo 16384 ;;
    image|pth|safetensors|checkpoint) echo 65536 ;;
    *) echo 8192 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Font caches of PLplot's cairo driver live until exit (scripts/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
failed=()
printf "%-12s %10s %8s %8s %8s %s\n" target execs exec/s seconds corpus crashes > $B/summary.txt
for t in "${targets[@]}"; do
  mkdir -p "$B/corpus/$t" "$B/crashes/$t" "fuzz/corpus/$t"
  dict=(); [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  log="$B/fuzz_$t.log"
  echo "fuzz: $t for ${SECS}s (log $log)"
  "$B/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/crashes/$t/" "${dict[@]}" \
    ${FUZZ_ARGS:-} "$B/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+' | tail -1)
  ncorp=$(ls "$B/corpus/$t" | wc -l)
  ncrash=$(ls "$B/crashes/$t" | wc -l)
  printf "%-12s %10s %8s %8s %8s %s\n" "$t" "${execs:-?}" "${rate:-?}" "${secs:-?}" "$ncorp" "$ncrash" | tee -a $B/summary.txt
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E 'ERROR|SUMMARY|fuzz contract|internal error|runtime error' "$log" | head -5
  fi
done
cat $B/summary.txt
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs in $B/crashes/)"
  exit 1
fi
