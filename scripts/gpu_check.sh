#!/usr/bin/env bash
# The GPU check (docs/GPU.md), one script for a machine with an NVIDIA GPU, nvcc
# and PyTorch (system python3; nothing is installed, nothing is downloaded):
#   0. checks what the stages need (GPU, nvcc, the C libraries' headers,
#      torch with CUDA, numpy) and says what is missing, in one line each,
#   1. builds `make CUDA=1` (build-cuda/: the dino binary and tests/cuda/*),
#   2. runs the CUDA tests (every kernel against the CPU op; one full
#      training step against the CPU engine at tiny and ViT-S/16 dims;
#      determinism reruns),
#   3. benchmarks one DINO ViT-S/16 training step, batch 64, 2x224 + 8x96
#      crops, out_dim 65536: ours (`dino bench train --device cuda`, GEMMs in
#      bf16) against PyTorch eager with bf16 autocast, in the same run,
#   4. trains end to end with --device cuda on synthetic JPEGs (CPU loader
#      threads feeding the GPU; reports the data wait), resumes once, and
#      compares `dino features --device cuda` with the CPU's on the result,
#   5. (lowest priority, skipped when time is short) PyTorch under
#      torch.compile and our step with tf32 GEMMs,
#   6. prints a summary: every stage's outcome (ok, FAILED, TIMEOUT,
#      SKIPPED with the reason) and the table (images/s, step time, TFLOP/s,
#      MFU against the card's bf16 dense peak, ratio to PyTorch eager).
# A stage that fails is reported and the script goes on with the next one;
# a stage whose prerequisite is missing (no GPU, the build failed, no torch)
# is skipped with the reason. Exit status: 0 all ran and passed, 1 a stage
# failed, 2 nothing failed but the GPU stages could not run. Budget: under 8 minutes on one H100 (each
# stage's timeout comes from what is left). Everything it prints also goes
# to $OUT (or build-cuda/gpu_check). Missing Debian packages are not
# installed (no network); GPU_CHECK_SETUP=1 tries scripts/setup.sh first.
# Usage: scripts/gpu_check.sh            (GPU_CHECK_BUDGET=450 seconds)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUTDIR=${OUT:-build-cuda/gpu_check}
mkdir -p "$OUTDIR"
BUDGET=${GPU_CHECK_BUDGET:-450}
T0=$SECONDS
PY=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 8)
BATCH=${GPU_CHECK_BATCH:-64}
ITERS=${GPU_CHECK_ITERS:-10}
status=0
RESULTS=()  # "stage: outcome" lines for the summary

say() { echo "[gpu_check $((SECONDS - T0))s] $*" | tee -a "$OUTDIR/summary.txt"; }
left() { echo $((BUDGET - (SECONDS - T0))); }
skip() {  # skip NAME REASON
  say "$1: SKIPPED ($2)"
  RESULTS+=("$1: SKIPPED ($2)")
}
# Runs a stage under a timeout of min(cap, what is left); its output to a
# log, the last lines echoed. A failure sets status=1 and is returned.
stage() {
  local name=$1 cap=$2; shift 2
  local t
  t=$(left)
  [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -le 5 ]; then skip "$name" "time budget spent"; return 124; fi
  say "$name (timeout ${t}s): $*"
  timeout --kill-after=5 "$t" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$OUTDIR/$name.log"
  local what="ok"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then what="TIMEOUT after ${t}s"
  elif [ $rc -ne 0 ]; then what="FAILED (exit $rc, see $name.log)"; fi
  say "$name: $what"
  RESULTS+=("$name: $what")
  [ $rc -ne 0 ] && status=1
  return $rc
}
# stage_unless WHY NAME CAP CMD...: the stage, or SKIPPED when WHY is not empty.
stage_unless() {
  local why=$1; shift
  if [ -n "$why" ]; then skip "$1" "$why"; return 125; fi
  stage "$@"
}
# Our training step with GEMMs in mode $1; PyTorch's in mode $1 under cap $2.
ours_bench() {
  stage_unless "$NOGPU" "ours_$1" 90 env DINO_CUDA_GEMM="$1" build-cuda/dino bench train --device cuda \
    --batch "$BATCH" --iters "$ITERS" --warmup 2
}
torch_bench() {
  stage_unless "$NOTORCH" "torch_$1" "$2" "$PY" bench/bench_train_gpu.py --mode "$1" --batch "$BATCH" --iters "$ITERS"
}

: >"$OUTDIR/summary.txt"
say "start; output in $OUTDIR"

# 0. What the stages need.
TORCH_MSG=$("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -n 1)
say "$PY: $TORCH_MSG"
HAVE_TORCH=0
case "$TORCH_MSG" in *"available True"*) HAVE_TORCH=1 ;; esac
# A GPU: nvidia-smi lists one; without nvidia-smi (some containers), a
# device node or torch seeing one will do.
HAVE_GPU=0
if nvidia-smi -L >"$OUTDIR/device.txt" 2>&1 && grep -q '^GPU ' "$OUTDIR/device.txt"; then
  HAVE_GPU=1
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv >>"$OUTDIR/device.txt" 2>&1
  cat "$OUTDIR/device.txt"
elif ! command -v nvidia-smi >/dev/null 2>&1 && { ls /dev/nvidia[0-9]* >/dev/null 2>&1 || [ $HAVE_TORCH -eq 1 ]; }; then
  HAVE_GPU=1
  say "no nvidia-smi, but a GPU device node or torch sees a GPU: running the GPU stages"
else
  say "no NVIDIA GPU visible ($(head -c 200 "$OUTDIR/device.txt" | tr '\n' ' ')): the GPU stages are skipped"
fi
HAVE_NUMPY=0
"$PY" -c 'import numpy' >/dev/null 2>&1 && HAVE_NUMPY=1
[ $HAVE_NUMPY -eq 1 ] || say "$PY has no numpy: the end-to-end stages (synthetic images, feature comparison) are skipped"

# nvcc: $CUDA_HOME/bin/nvcc, else the one on PATH (CUDA_HOME follows it).
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ ! -x "$CUDA_HOME/bin/nvcc" ] && command -v nvcc >/dev/null 2>&1; then
  CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
fi
export CUDA_HOME
BUILD_BLOCKERS=()
if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  say "nvcc: $("$CUDA_HOME/bin/nvcc" --version | grep -i release | head -n 1) ($CUDA_HOME)"
else
  BUILD_BLOCKERS+=("nvcc (the CUDA toolkit; none in \$CUDA_HOME=$CUDA_HOME or on PATH)")
fi
for tool in cc make pkg-config; do
  command -v $tool >/dev/null 2>&1 || BUILD_BLOCKERS+=("$tool")
done
# The C libraries' headers (the dev packages of scripts/setup.sh).
check_headers() {
  local cflags missing=() pair h pkg
  cflags=$(pkg-config --cflags libpng libzip libcjson zlib plplot 2>/dev/null)
  for pair in "cblas.h:libopenblas-openmp-dev" "jpeglib.h:libjpeg62-turbo-dev" "png.h:libpng-dev" \
              "zlib.h:zlib1g-dev" "zip.h:libzip-dev" "cJSON.h:libcjson-dev" "plplot.h:libplplot-dev"; do
    h=${pair%%:*}; pkg=${pair#*:}
    # shellcheck disable=SC2086
    printf '#include <%s>\n' "$h" | cc -E -x c - $cflags -I/usr/include/x86_64-linux-gnu/openblas-openmp \
      -I/usr/include/aarch64-linux-gnu/openblas-openmp -I/usr/include/openblas -I/usr/include/cjson \
      -I/usr/include/plplot -I/usr/include/libpng16 >/dev/null 2>&1 || missing+=("$h ($pkg)")
  done
  echo "${missing[*]:-}"
}
if command -v cc >/dev/null 2>&1; then
  MISSING_HEADERS=$(check_headers)
  if [ -n "$MISSING_HEADERS" ] && [ "${GPU_CHECK_SETUP:-0}" = 1 ]; then
    say "missing headers: $MISSING_HEADERS; GPU_CHECK_SETUP=1: trying scripts/setup.sh (90 s)"
    timeout 90 scripts/setup.sh >"$OUTDIR/setup.log" 2>&1 || say "scripts/setup.sh failed (see setup.log)"
    MISSING_HEADERS=$(check_headers)
  fi
  [ -n "$MISSING_HEADERS" ] && BUILD_BLOCKERS+=("the headers $MISSING_HEADERS")
fi
make --no-print-directory CUDA=1 config 2>&1 | tee -a "$OUTDIR/summary.txt"  # the libraries the build found

# 1. Build: only what the check runs (the CPU library is built too: the engine
#    links it). When nvcc fails (another toolkit: a host compiler it does not
#    list, a warning ours does not give), once more with those allowed.
BUILD_OK=0
BUILD_FLAGS=()  # make variables the retry needed, for the test build too
if [ ${#BUILD_BLOCKERS[@]} -gt 0 ]; then
  for b in "${BUILD_BLOCKERS[@]}"; do say "build needs: $b"; done
  say "install them (Debian: scripts/setup.sh lists the packages; this machine has no network)"
  skip build "missing: ${BUILD_BLOCKERS[*]}"
elif stage build 240 make CUDA=1 -j"$JOBS" build-cuda/dino; then
  BUILD_OK=1
elif grep -qE '\.cuh?\([0-9]+\)|unsupported GNU version|all-warnings|nvcc (error|fatal)' "$OUTDIR/build.log" &&
     [ "$(left)" -gt 120 ]; then
  cp "$OUTDIR/build.log" "$OUTDIR/build_first.log"
  BUILD_FLAGS=(NVCC_WERROR= "NVCC=$CUDA_HOME/bin/nvcc -allow-unsupported-compiler")
  if stage build_retry 180 make CUDA=1 -j"$JOBS" "${BUILD_FLAGS[@]}" build-cuda/dino; then
    BUILD_OK=1
    say "built only with nvcc warnings allowed / an unsupported host compiler: see build_first.log"
  fi
fi
NOGPU=""
[ $HAVE_GPU -eq 1 ] || NOGPU="no NVIDIA GPU visible"
[ $BUILD_OK -eq 1 ] || NOGPU=${NOGPU:-"the build did not succeed"}
NOTORCH=""
[ $HAVE_TORCH -eq 1 ] || NOTORCH="no torch with CUDA in $PY: $TORCH_MSG"

# 2. CUDA tests (kernels, then the training step); 77 = no device.
stage_unless "$NOGPU" cuda_test 200 make CUDA=1 -j"$JOBS" ${BUILD_FLAGS[@]+"${BUILD_FLAGS[@]}"} cuda-test
if grep -q 'skipped: no CUDA device' "$OUTDIR/cuda_test.log" 2>/dev/null; then
  say "cuda_test: the tests saw no CUDA device although one was detected above: nothing was checked"
  RESULTS+=("cuda_test: tests SKIPPED by the binaries (no CUDA device for them)")
  status=1
fi
[ -f "$OUTDIR/cuda_test.log" ] && grep -E '^(FAIL|checks:)|normalised error|bit-identical|device:' \
  "$OUTDIR/cuda_test.log" | head -80 >"$OUTDIR/cuda_test_summary.txt"

# 3. Benchmarks, same card, same run.
ours_bench bf16
torch_bench eager 100

# 4. End to end: `dino train --device cuda` on a folder of synthetic JPEGs
#    (the loader's CPU threads decode and augment; "data wait" is the time a
#    step waited for them): 2 epochs of 11 steps, stopped after 16 steps (a
#    checkpoint at the epoch end and at the stop), then resumed mid-epoch to
#    the end (device download for saving, upload after loading).
E2E=${TMPDIR:-/tmp}/dino_gpu_check_e2e
if [ -n "$NOGPU" ]; then
  for s in e2e_data train_e2e train_resume features_gpu features_cpu; do skip $s "$NOGPU"; done
elif [ $HAVE_NUMPY -eq 0 ]; then
  for s in e2e_data train_e2e train_resume features_gpu features_cpu; do skip $s "no numpy in $PY"; done
else
  rm -rf "$E2E"; mkdir -p "$E2E"
  TRAIN_FLAGS=(--device cuda --data_path "$E2E/images" --output_dir "$E2E/run" --batch_size_per_gpu "$BATCH"
               --epochs 2 --warmup_epochs 1 --log_every_steps 1 --saveckp_freq 0 --num_workers "$JOBS")
  if stage e2e_data 60 "$PY" bench/make_synthetic_images.py "$E2E/images" --n $((11 * BATCH)) --size 384; then
    stage train_e2e 120 build-cuda/dino train "${TRAIN_FLAGS[@]}" --stop_after_steps 16
    stage train_resume 60 build-cuda/dino train "${TRAIN_FLAGS[@]}"
    # Inference: the trained teacher's features on the GPU and on the CPU.
    if [ -f "$E2E/run/checkpoint.dino" ]; then
      FEAT_FLAGS=(--pretrained_weights "$E2E/run/checkpoint.dino" --data_path "$E2E/images" --split train)
      stage features_gpu 60 build-cuda/dino features --device cuda "${FEAT_FLAGS[@]}" --output_dir "$E2E/feat_gpu"
      stage features_cpu 60 build-cuda/dino features "${FEAT_FLAGS[@]}" --output_dir "$E2E/feat_cpu"
      if [ -f "$E2E/feat_gpu/train_features.npy" ] && [ -f "$E2E/feat_cpu/train_features.npy" ]; then
        "$PY" - "$E2E" <<'PYEOF' 2>&1 | tee -a "$OUTDIR/summary.txt" || status=1
import sys
import numpy as np
d = sys.argv[1]
g = np.load(d + "/feat_gpu/train_features.npy").astype(np.float64)
c = np.load(d + "/feat_cpu/train_features.npy").astype(np.float64)
e = np.linalg.norm(g - c) / np.linalg.norm(c)
print(f"dino features --device cuda vs cpu: {g.shape[0]} x {g.shape[1]} features, normalised error {e:.3e} "
      f"({'ok' if e < 1e-2 else 'TOO LARGE'}; tf32 GEMMs, bound 1e-2)")
sys.exit(0 if e < 1e-2 else 1)
PYEOF
      else
        say "features: no comparison (a features stage wrote no train_features.npy)"
      fi
    else
      for s in features_gpu features_cpu; do skip $s "no checkpoint from the training stages"; done
    fi
  else
    for s in train_e2e train_resume features_gpu features_cpu; do skip $s "no synthetic images"; done
  fi
  rm -rf "$E2E"
fi

# 5. Lowest priority (skipped when the budget is spent).
torch_bench compile 200
ours_bench tf32

# 6. Summary: the stages, then the table (python3 of the system, no modules
#    beyond the standard library).
{
  echo
  echo "stages:"
  for r in "${RESULTS[@]}"; do echo "  $r"; done
} | tee -a "$OUTDIR/summary.txt"
python3 - "$OUTDIR" "$BATCH" <<'EOF' 2>&1 | tee -a "$OUTDIR/summary.txt"
import json, os, re, sys
out, batch = sys.argv[1], int(sys.argv[2])
rows, peak = [], None
def read(name):
    p = os.path.join(out, name + ".log")
    return open(p, errors="replace").read() if os.path.exists(p) else ""
for name in ("torch_eager", "torch_compile"):
    for line in read(name).splitlines():
        if line.startswith("{"):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "images_per_s" in d:
                peak = peak or d.get("peak_bf16_tflops")
                rows.append((d["engine"], d["images_per_s"], d["step_s_median"], d["tflops"]))
for name, label in (("ours_bf16", "dino.c cuda, GEMM bf16"), ("ours_tf32", "dino.c cuda, GEMM tf32")):
    txt = read(name)
    ips = re.search(r"images/s: ([0-9.]+) \(median\)", txt)
    med = re.search(r"train step: median ([0-9.]+) s", txt)
    gf = re.search(r"GFLOP/s: ([0-9.]+) \(median\)", txt)
    if ips and med and gf:
        rows.append((label, float(ips.group(1)), float(med.group(1)), float(gf.group(1)) / 1000))
    else:
        why = " (no result, see " + name + ".log)" if txt else " (not run)"
        rows.append((label + why, float("nan"), float("nan"), float("nan")))
eager = next((r[1] for r in rows if r[0].startswith("pytorch eager")), None)
print(f"\nDINO ViT-S/16 training step, batch {batch}, 2x224 + 8x96 crops, out_dim 65536"
      f"{'; MFU against %.1f bf16 dense TFLOP/s' % peak if peak else ''}")
print(f"{'engine':44s} {'images/s':>9s} {'step ms':>8s} {'TFLOP/s':>8s} {'MFU':>6s} {'vs eager':>8s}")
for name, ips, med, tf in rows:
    mfu = f"{100 * tf / peak:5.1f}%" if peak and tf == tf else "    -"
    ratio = f"{ips / eager:7.2f}x" if eager and ips == ips else "       -"
    print(f"{name:44s} {ips:9.1f} {1000 * med:8.1f} {tf:8.1f} {mfu:>6s} {ratio}")
# End to end: steps after the first three (set-up, first checkpoint excluded).
lines = re.findall(r"\| ([0-9.]+) img/s \| data wait ([0-9.]+) s", read("train_e2e"))
if len(lines) > 4:
    steady = lines[3:]
    ips = sum(float(a) for a, _ in steady) / len(steady)
    wait = sum(float(b) for _, b in steady) / len(steady)
    print(f"\ndino train --device cuda on synthetic JPEGs, batch {batch}: {ips:.1f} images/s in trainer_step, "
          f"mean data wait {1000 * wait:.1f} ms per step over {len(steady)} steps "
          f"(the GPU idles only when the wait exceeds the queued optimizer tail)")
elif read("train_e2e"):
    print("\nend-to-end training: no result (see train_e2e.log)")
else:
    print("\nend-to-end training: not run")
r = read("train_resume")
if "resuming from" in r and "epoch 1/2 step 11/11" in r:
    print("resume on the GPU mid-epoch (epoch 1 step 5) to the end of epoch 2: ran (see train_resume.log)")
elif r:
    print("resume on the GPU: did not complete (see train_resume.log)")
EOF
# Exit 0: everything ran and passed; 1: a stage failed; 2: nothing failed
# but the GPU stages did not run (no GPU, or no build), so nothing was checked.
[ $status -eq 0 ] && [ -n "$NOGPU" ] && status=2
cp -f "$OUTDIR/summary.txt" "$OUTDIR/summary_final.txt" 2>/dev/null || true
say "done in $((SECONDS - T0)) s, status $status"
exit $status
