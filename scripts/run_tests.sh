#!/usr/bin/env bash
# Runs every test binary in BUILD/tests (tests/test_*.c) and adds up their checks.
# Each binary prints "ok ..." / "FAIL ..." lines and a last line "checks: P passed, F failed".
# Exit status is non-zero when any check fails or any binary crashes.
set -uo pipefail
BUILD=${1:-build}
# Tests run many short parallel regions; spinning OpenMP threads waste the
# cores when anything else runs on the machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0; broken=()
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue;; esac
  name=$(basename "$t")
  log="$BUILD/tests/$name.log"
  start=$EPOCHREALTIME
  "$t" >"$log" 2>&1; rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  line=$(grep -E '^checks: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  p=$(echo "$line" | sed -E 's/checks: ([0-9]+) passed.*/\1/'); p=${p:-0}
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/'); f=${f:-0}
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    [ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
    broken+=("$name")
    echo "FAIL $name (exit $rc, ${secs}s) — log: $log"
    grep -E '^FAIL' "$log" | head -20
    [ -z "$line" ] && tail -5 "$log"
  else
    echo "ok   $name: $p checks (${secs}s)"
  fi
done
echo "$total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ] && [ ${#broken[@]} -eq 0 ]
