#!/bin/bash
# Training throughput and peak memory of the default MRI recipe on the CPU (VolumeNet D9C32 ×2, batch 8 of
# 24³ LR patches with a margin of 6, gradient checkpointing on), in one go so the numbers are comparable:
# one run with one thread in fp32 (--amp off) and in bf16 autocast (--amp bf16, where the CPU has native bf16),
# one bf16 run with two threads, and two one-thread bf16 runs side by side.
#
# usage: benchmarks/train_speed.sh DATA_DIR VAL_DIR [OUT_DIR]      (STEPS=6 steps per run by default)
# Prints one line per configuration: patches/s (training steps only, validation excluded) and peak RSS.
set -euo pipefail
data=${1:?DATA_DIR}; val=${2:?VAL_DIR}; out=${3:-train-speed}; steps=${STEPS:-6}
mkdir -p "$out"; out=$(cd "$out" && pwd)
recipe=(--data "$data" --val "$val" --model volumenet --depth 9 --channels 32 --modality mri --patch 24
        --margin 6 --batch 8 --lr 2e-4 --disk-cache --quiet --no-tensorboard)

run() {  # run NAME THREADS STEPS AMP: one training run; its peak RSS (KiB) goes to NAME.rss
  local name=$1 threads=$2 n=$3 amp=$4
  rm -rf "$out/$name"; mkdir -p "$out/$name"; ln -sfn ../cache "$out/$name/cache"
  OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads /usr/bin/time -f %M -o "$out/$name.rss" \
    volumenet-train "${recipe[@]}" --amp "$amp" --steps-per-epoch "$n" --max-steps "$n" --out "$out/$name" > "$out/$name.log" 2>&1
}

report() {  # report NAME LABEL: the last patches/s of the run and its peak memory
  local pps rss
  pps=$(tail -n 1 "$out/$1/metrics.csv" | awk -F, '{print $NF}')
  rss=$(awk '{printf "%.1f", $1 / 1048576}' "$out/$1.rss")
  printf '%-32s %6s patches/s   peak RSS %s GiB\n' "$2" "$pps" "$rss"
}

mkdir -p "$out/cache"
run warmup 2 1 off                # fills the LR cache once; not reported
run one_thread_fp32 1 "$steps" off
run one_thread 1 "$steps" bf16
run two_threads 2 "$steps" bf16
run side_a 1 "$steps" bf16 & run side_b 1 "$steps" bf16 & wait
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, torch $(python -c 'import torch; print(torch.__version__)'), $steps steps of 8 patches per run"
  report one_thread_fp32 "one run, 1 thread, fp32"
  report one_thread "one run, 1 thread, bf16"
  report two_threads "one run, 2 threads, bf16"
  report side_a "two bf16 runs side by side (A)"
  report side_b "two bf16 runs side by side (B)"
} | tee "$out/summary.txt"
