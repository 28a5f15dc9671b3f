#!/usr/bin/env bash
# The GPU check (issue 9), one script for a machine with an NVIDIA GPU, nvcc
# and PyTorch (system python3; nothing is installed, nothing is downloaded):
#   1. builds `make CUDA=1` (build-cuda/: the dino binary and tests/cuda/*),
#   2. runs the CUDA tests (every kernel against the CPU op; one full
#      training step against the CPU engine at tiny and ViT-S/16 dims;
#      determinism reruns),
#   3. benchmarks one DINO ViT-S/16 training step, batch 64, 2x224 + 8x96
#      crops, out_dim 65536: ours (`dino bench train --device cuda`, GEMMs in
#      bf16 and in tf32) against PyTorch eager with bf16 autocast and
#      torch.compile, in the same run on the same card,
#   4. trains end to end with --device cuda on synthetic JPEGs (CPU loader
#      threads feeding the GPU; reports the data wait), resumes once, and
#      compares `dino features --device cuda` with the CPU's on the result,
#   5. prints a summary table (images/s, step time, TFLOP/s, MFU against the
#      card's bf16 dense peak, ratio to PyTorch eager).
# Budget: under 8 minutes on one H100 (each stage has a timeout from what is
# left). Everything it prints also goes to $OUT (or build-cuda/gpu_check).
# Usage: scripts/gpu_check.sh            (GPU_CHECK_BUDGET=460 seconds)
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-build-cuda/gpu_check}
mkdir -p "$OUTDIR"
BUDGET=${GPU_CHECK_BUDGET:-460}
T0=$SECONDS
PY=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 8)
BATCH=${GPU_CHECK_BATCH:-64}
ITERS=${GPU_CHECK_ITERS:-10}
status=0

say() { echo "[gpu_check $((SECONDS - T0))s] $*" | tee -a "$OUTDIR/summary.txt"; }
left() { echo $((BUDGET - (SECONDS - T0))); }
# Runs a stage under a timeout of min(cap, what is left); its output to a log.
stage() {
  local name=$1 cap=$2; shift 2
  local t=$(left)
  [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -le 5 ]; then say "$name: SKIPPED (time budget spent)"; return 124; fi
  say "$name (timeout ${t}s): $*"
  timeout --kill-after=5 "$t" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$OUTDIR/$name.log"
  say "$name: exit $rc"
  return $rc
}

: >"$OUTDIR/summary.txt"
say "start; output in $OUTDIR"
{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv; } \
  >"$OUTDIR/device.txt" 2>&1 || true
cat "$OUTDIR/device.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tee -a "$OUTDIR/summary.txt"
make --no-print-directory CUDA=1 config 2>&1 | tee -a "$OUTDIR/summary.txt"  # the libraries the build found

# 1. Build: only what the check runs (the CPU library is built too: the engine links it).
stage build 240 make CUDA=1 -j"$JOBS" build-cuda/dino || { say "BUILD FAILED"; exit 1; }

# 2. CUDA tests (kernels, then the training step); 77 = no device.
stage cuda_test 200 make CUDA=1 -j"$JOBS" cuda-test || status=1
grep -E '^(FAIL|checks:)|normalised error|bit-identical|device:' "$OUTDIR/cuda_test.log" | head -80 \
  >"$OUTDIR/cuda_test_summary.txt" || true

# 3. Benchmarks, same card, same run.
stage ours_bf16 90 env DINO_CUDA_GEMM=bf16 build-cuda/dino bench train --device cuda --batch "$BATCH" \
  --iters "$ITERS" --warmup 2 || status=1
stage torch_eager 100 "$PY" bench/bench_train_gpu.py --mode eager --batch "$BATCH" --iters "$ITERS" || status=1
stage torch_compile 240 "$PY" bench/bench_train_gpu.py --mode compile --batch "$BATCH" --iters "$ITERS" || status=1

# 4. End to end: `dino train --device cuda` on a folder of synthetic JPEGs
#    (the loader's CPU threads decode and augment; "data wait" is the time a
#    step waited for them): 2 epochs of 11 steps, stopped after 16 steps (a
#    checkpoint at the epoch end and at the stop), then resumed mid-epoch to
#    the end (device download for saving, upload after loading).
E2E=${TMPDIR:-/tmp}/dino_gpu_check_e2e
rm -rf "$E2E"; mkdir -p "$E2E"
if stage e2e_data 60 "$PY" bench/make_synthetic_images.py "$E2E/images" --n $((11 * BATCH)) --size 384; then
  stage train_e2e 120 build-cuda/dino train --device cuda --data_path "$E2E/images" --output_dir "$E2E/run" \
    --batch_size_per_gpu "$BATCH" --epochs 2 --warmup_epochs 1 --log_every_steps 1 --saveckp_freq 0 \
    --num_workers "$JOBS" --stop_after_steps 16 || status=1
  stage train_resume 60 build-cuda/dino train --device cuda --data_path "$E2E/images" --output_dir "$E2E/run" \
    --batch_size_per_gpu "$BATCH" --epochs 2 --warmup_epochs 1 --log_every_steps 1 --saveckp_freq 0 \
    --num_workers "$JOBS" || status=1
  # Inference: the trained teacher's features on the GPU and on the CPU.
  if [ -f "$E2E/run/checkpoint.dino" ]; then
    stage features_gpu 60 build-cuda/dino features --device cuda --pretrained_weights "$E2E/run/checkpoint.dino" \
      --data_path "$E2E/images" --split train --output_dir "$E2E/feat_gpu" || status=1
    stage features_cpu 60 build-cuda/dino features --pretrained_weights "$E2E/run/checkpoint.dino" \
      --data_path "$E2E/images" --split train --output_dir "$E2E/feat_cpu" || status=1
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
  fi
fi
rm -rf "$E2E"

# Lowest priority (skipped when the budget is spent): our step with tf32 GEMMs.
stage ours_tf32 90 env DINO_CUDA_GEMM=tf32 build-cuda/dino bench train --device cuda --batch "$BATCH" \
  --iters "$ITERS" --warmup 2 || status=1

# 5. Summary table.
"$PY" - "$OUTDIR" "$BATCH" <<'EOF' | tee -a "$OUTDIR/summary.txt"
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
        rows.append((label + " (no result, see " + name + ".log)", float("nan"), float("nan"), float("nan")))
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
else:
    print("\nend-to-end training: no result (see train_e2e.log)")
r = read("train_resume")
if "resuming from" in r and "epoch 1/2 step 11/11" in r:
    print("resume on the GPU mid-epoch (epoch 1 step 5) to the end of epoch 2: ran (see train_resume.log)")
else:
    print("resume on the GPU: did not complete (see train_resume.log)")
EOF
cp -f "$OUTDIR/summary.txt" "$OUTDIR/summary_final.txt" 2>/dev/null || true
say "done in $((SECONDS - T0)) s, status $status"
exit $status
