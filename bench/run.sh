#!/usr/bin/env bash
# `make bench`: dino.c against PyTorch + timm on this machine, in one run.
# Every line alternates ours and PyTorch's (REPS rounds, each side a separate
# process with the same thread count), so a shared, loaded machine slows both
# sides alike; the medians over the rounds and their ratio are printed, with
# achieved GFLOP/s (analytic count, see src/cli/cmd_bench.c) as a fraction of
# the plain 1024^3 sgemm rate that our process of the same round measured right
# after its timed loop (the load changes by the minute), and each process's peak RSS
# (getrusage ru_maxrss). Knobs (environment): THREADS (2), REPS (2),
# TRAIN_BATCH (2 images of 2x224+8x96 crops for ViT-S/16: one step is ~230
# GFLOP, tens of seconds on 2 shared cores), FMNIST_BATCH (64), INFER_BATCH
# (8, ViT-S/16), VITB_BATCH (4), TRAIN_ITERS (4 timed training steps per
# process) after TRAIN_WARMUP (2: the first steps pay for the page faults of
# the activation arena, over 1 GB for ViT-S/16; with 1 + 1 steps two runs of
# the same line differed by 30% on an Intel Xeon), ITERS (2 timed inference
# batches for ViT-B, 3 for ViT-S), RESNET_BATCH (8, ResNet-50 inference at
# 224), RESNET_STEP_BATCH (2 images of 2x224+8x96 crops: the teacher and
# student passes of a DINO step with a ResNet-50, bench/bench_resnet.py),
# SKIP_DATA=1, SKIP_RESNET=1, BF16 (1: also the ViT-S/16
# training and inference lines in bf16 mixed precision, ours with --use_bf16
# true against PyTorch's CPU autocast, BF16_TRAIN_ITERS (2) steps after 1;
# where this CPU has no AVX512-BF16 or AMX our side prints "n/a" and why,
# and PyTorch's runs anyway). The bf16 rows' % column is of oneDNN's bf16
# 1024^3 rate from `dino bench gemm` in the same run. The spread column is
# (max − min) / median of the rounds' images/s, ours and PyTorch's. The whole
# run takes ~20 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
THREADS=${THREADS:-2}
REPS=${REPS:-2}
TRAIN_BATCH=${TRAIN_BATCH:-2}
FMNIST_BATCH=${FMNIST_BATCH:-64}
INFER_BATCH=${INFER_BATCH:-8}
VITB_BATCH=${VITB_BATCH:-4}
RESNET_BATCH=${RESNET_BATCH:-8}
RESNET_STEP_BATCH=${RESNET_STEP_BATCH:-2}
ITERS=${ITERS:-2}
TRAIN_ITERS=${TRAIN_ITERS:-4}
TRAIN_WARMUP=${TRAIN_WARMUP:-2}
DINO=${DINO:-$root/build/dino}
PY=$(tools/venv.sh)
out=$(mktemp -d /tmp/dino_bench.XXXXXX)
export OMP_NUM_THREADS=$THREADS

echo "== dino.c vs PyTorch: train ViT-S/16 batch $TRAIN_BATCH (2x224+8x96), fmnist preset batch $FMNIST_BATCH, inference ViT-S/16 batch $INFER_BATCH and ViT-B/16 batch $VITB_BATCH at 224"
echo "== dino.c vs PyTorch, $(date -u '+%Y-%m-%d %H:%M UTC'), threads $THREADS, $REPS rounds, results in $out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch: $("$PY" -c 'import torch, timm; print(torch.__version__, "timm", timm.__version__)')"
echo "openblas: $(ls /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas*.so.* 2>/dev/null | head -1 | xargs -r basename)"
echo "pytorch cpu capability: $("$PY" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')"
BF16=${BF16:-1}
BF16_TRAIN_ITERS=${BF16_TRAIN_ITERS:-2}
# Our GEMM backends on this CPU (which one the fp32 rule picks, oneDNN's ISA
# and implementations, the bf16 1024^3 roofline or why there is none).
"$DINO" --threads "$THREADS" bench gemm --reps 3 >"$out/gemm" 2>&1 || { cat "$out/gemm"; exit 1; }
sed 's/^/gemm: /' "$out/gemm"
bf16_na=$(sed -n 's/^bf16: n\/a: //p' "$out/gemm")
bf16_roof=$(awk '$1 == "1024x1024x1024" { print $4 }' "$out/gemm")

# name, our command, PyTorch's command (ours "-": not run, PyTorch's only)
run_pair() {
  local name=$1 ours=$2 theirs=$3
  for r in $(seq 1 "$REPS"); do
    if [ "$ours" != "-" ]; then
    echo "-- $name round $r: ours"; eval "$ours" >"$out/$name.ours.$r" 2>&1 || { cat "$out/$name.ours.$r"; exit 1; }
    grep -E "median|peak RSS|precision" "$out/$name.ours.$r" | sed 's/^/   /'
    fi
    echo "-- $name round $r: pytorch"; eval "$theirs" >"$out/$name.torch.$r" 2>&1 || { cat "$out/$name.torch.$r"; exit 1; }
    grep -E "median|peak RSS|precision" "$out/$name.torch.$r" | sed 's/^/   /'
  done
}

fmnist_flags=$("$DINO" bench train --preset fmnist --print_config 1 | sed "s/--batch [0-9]*/--batch $FMNIST_BATCH/")
vits_flags=$("$DINO" bench train --batch "$TRAIN_BATCH" --print_config 1)

run_pair train_vits16 \
  "'$DINO' --threads $THREADS bench train --batch $TRAIN_BATCH --iters $TRAIN_ITERS --warmup $TRAIN_WARMUP" \
  "'$PY' bench/bench_train.py --threads $THREADS --iters $TRAIN_ITERS --warmup $TRAIN_WARMUP $vits_flags"
run_pair train_fmnist \
  "'$DINO' --threads $THREADS bench train --preset fmnist --batch $FMNIST_BATCH --iters $TRAIN_ITERS --warmup $TRAIN_WARMUP" \
  "'$PY' bench/bench_train.py --threads $THREADS --iters $TRAIN_ITERS --warmup $TRAIN_WARMUP $fmnist_flags"
run_pair infer_vits16 \
  "'$DINO' --threads $THREADS bench forward --arch vit_small --batch $INFER_BATCH --size 224 --iters $((ITERS + 1))" \
  "'$PY' bench/bench_forward.py --arch vit_small_patch16_224 --threads $THREADS --batch $INFER_BATCH --size 224 --iters $((ITERS + 1))"
run_pair infer_vitb16 \
  "'$DINO' --threads $THREADS bench forward --arch vit_base --batch $VITB_BATCH --size 224 --iters $ITERS" \
  "'$PY' bench/bench_forward.py --arch vit_base_patch16_224 --threads $THREADS --batch $VITB_BATCH --size 224 --iters $ITERS"
# DINOv2 ViT-S/14 (LayerScale, patch 14) at 224 on both sides: timm's
# vit_small_patch14_dinov2 built at img_size 224, ours with its grid at 224.
run_pair infer_dinov2_vits14 \
  "'$DINO' --threads $THREADS bench forward --arch dinov2_vits14 --batch $INFER_BATCH --size 224 --iters $((ITERS + 1))" \
  "'$PY' bench/bench_forward.py --arch vit_small_patch14_dinov2 --threads $THREADS --batch $INFER_BATCH --size 224 --iters $((ITERS + 1))"
names="train_vits16 train_fmnist infer_vits16 infer_vitb16 infer_dinov2_vits14"
if [ "${SKIP_RESNET:-0}" != 1 ]; then
  run_pair infer_resnet50 \
    "'$DINO' --threads $THREADS bench resnet --batch $RESNET_BATCH --iters $((ITERS + 1))" \
    "'$PY' bench/bench_resnet.py --threads $THREADS --batch $RESNET_BATCH --iters $((ITERS + 1))"
  run_pair step_resnet50 \
    "'$DINO' --threads $THREADS bench resnet --step --batch $RESNET_STEP_BATCH --iters $ITERS" \
    "'$PY' bench/bench_resnet.py --step --threads $THREADS --batch $RESNET_STEP_BATCH --iters $ITERS"
  names="$names infer_resnet50 step_resnet50"
fi
if [ "$BF16" = 1 ]; then
  names="$names train_vits16_bf16 infer_vits16_bf16"
  ob="'$DINO' --threads $THREADS bench train --batch $TRAIN_BATCH --iters $BF16_TRAIN_ITERS --warmup 1 --use_bf16 true"
  oi="'$DINO' --threads $THREADS bench forward --arch vit_small --batch $INFER_BATCH --size 224 --iters $((ITERS + 1)) --use_bf16 true"
  [ -n "$bf16_na" ] && ob=- && oi=-
  run_pair train_vits16_bf16 "$ob" \
    "'$PY' bench/bench_train.py --threads $THREADS --iters $BF16_TRAIN_ITERS --warmup 1 --bf16 $vits_flags"
  run_pair infer_vits16_bf16 "$oi" \
    "'$PY' bench/bench_forward.py --arch vit_small_patch16_224 --threads $THREADS --batch $INFER_BATCH --size 224 --iters $((ITERS + 1)) --bf16"
fi

if [ "${SKIP_DATA:-0}" != 1 ]; then
  echo "-- data pipeline (bench/bench_data.py: dino augment --bench vs torchvision DataLoader, 2 workers)"
  "$PY" bench/bench_data.py --n 32 --epochs 2 --batch 16 --dino "$DINO" >"$out/data" 2>&1 || { cat "$out/data"; exit 1; }
  sed 's/^/   /' "$out/data"
fi

# median of the numbers a sed expression extracts from a set of files
med() {
  local expr=$1; shift
  sed -n "$expr" "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
sg='s/^sgemm .*: \([0-9.]*\) GFLOP\/s/\1/p'
sgemm=$(med "$sg" $(ls "$out"/*.ours.* | grep -v _bf16))
# median over the rounds of 100 * (GFLOP/s of side in round r) / (sgemm of our run in round r);
# bf16 rows: of the bf16 1024^3 roofline (n/a without one)
pct() {
  local name=$1 side=$2 gf=$3
  if [[ $name == *_bf16 ]]; then
    [ -z "$bf16_na" ] && [ -n "$bf16_roof" ] || { echo nan; return; }
    med "$gf" "$out/$name.$side".* | awk -v b="$bf16_roof" '{ print 100 * $1 / b }'
    return
  fi
  for r in $(seq 1 "$REPS"); do
    awk -v g="$(sed -n "$gf" "$out/$name.$side.$r")" -v s="$(sed -n "$sg" "$out/$name.ours.$r")" 'BEGIN { print 100 * g / s }'
  done | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
echo
echo "sgemm 1024^3 measured in our runs: median $sgemm GFLOP/s, range $(sed -n "$sg" $(ls "$out"/*.ours.* | grep -v _bf16) | sort -g | sed -n '1p;$p' | tr '\n' ' ')GFLOP/s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BF16" = 1 ] && echo "bf16 GEMM roofline (oneDNN bf16 1024^3, dino bench gemm): ${bf16_na:+n/a: }${bf16_na:-$bf16_roof GFLOP/s}"
echo
# (max − min) / median of the numbers a sed expression extracts, in percent
spread() {
  local expr=$1; shift
  sed -n "$expr" "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}
    m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f%%", 100 * (v[NR]-v[1]) / m}'
}
echo "| benchmark | dino.c img/s | PyTorch img/s | speed-up | spread of rounds (dino.c / PyTorch) | dino.c GFLOP/s (% of sgemm) | PyTorch GFLOP/s (% of sgemm) | peak RSS dino.c | peak RSS PyTorch | RSS ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for name in $names; do
  if [[ $name == train_* ]]; then ips='s/^images\/s: \([0-9.]*\).*/\1/p'; gf='s/^GFLOP\/s: \([0-9.]*\) (median).*/\1/p'
  else ips='s/^median: .* s per batch, \([0-9.]*\) images\/s.*/\1/p'; gf='s/^median: .* images\/s, \([0-9.]*\) GFLOP\/s/\1/p'; fi
  if [ ! -e "$out/$name.ours.1" ]; then  # bf16 without the ISA: PyTorch's side only
    ti=$(med "$ips" "$out/$name".torch.*); tg=$(med "$gf" "$out/$name".torch.*)
    trss=$(med 's/^peak RSS: \([0-9.]*\) MiB/\1/p' "$out/$name".torch.*)
    echo "| $name | n/a: $bf16_na | $ti | n/a | n/a / $(spread "$ips" "$out/$name".torch.*) | n/a | $tg (n/a) | n/a | $trss MiB | n/a |"
    continue
  fi
  oi=$(med "$ips" "$out/$name".ours.*); ti=$(med "$ips" "$out/$name".torch.*)
  og=$(med "$gf" "$out/$name".ours.*); tg=$(med "$gf" "$out/$name".torch.*)
  orss=$(med 's/^peak RSS: \([0-9.]*\) MiB/\1/p' "$out/$name".ours.*)
  trss=$(med 's/^peak RSS: \([0-9.]*\) MiB/\1/p' "$out/$name".torch.*)
  op=$(pct "$name" ours "$gf"); tp=$(pct "$name" torch "$gf")
  os=$(spread "$ips" "$out/$name".ours.*); ts=$(spread "$ips" "$out/$name".torch.*)
  awk -v n="$name" -v oi="$oi" -v ti="$ti" -v og="$og" -v tg="$tg" -v op="$op" -v tp="$tp" -v orss="$orss" -v trss="$trss" \
    -v os="$os" -v ts="$ts" \
    'BEGIN { printf "| %s | %.3g | %.3g | %.2fx | %s / %s | %.1f (%.0f%%) | %.1f (%.0f%%) | %.0f MiB | %.0f MiB | %.2f |\n",
             n, oi, ti, oi / ti, os, ts, og, op, tg, tp, orss, trss, orss / trss }'
done
if [ -f "$out/data" ]; then
  d=$(sed -n 's/^dino.c loader: \([0-9.]*\) images\/s .*/\1/p' "$out/data")
  r=$(sed -n 's/.*-> \([0-9.]*\)x torchvision.*/\1/p' "$out/data")
  c=$(sed -n 's/.*-> \([0-9.]*\)x less CPU.*/\1/p' "$out/data")
  echo "| data pipeline (2x224+8x96 crops, 2 workers) | $d | $(awk -v d="$d" -v r="$r" 'BEGIN{printf "%.1f", d / r}') | ${r}x (CPU time: ${c}x less) | | | | | | |"
fi
