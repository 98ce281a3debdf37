#!/usr/bin/env bash
# What bf16 costs the no-concatenation nets at 3 000 steps (issue 15: bf16 is the CPU default
# only where it costs <= 0.05 dB): each in fp32 and bf16 beside SPAN, 2 threads, RealSR x4 first
# 25 (border 0) and Set14 x4 (border 4). The exports were copied to $R/*-3000-export.
set -eu
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
B=../shared/data/bench
M="span"
for v in c32b8 c64b8; do
  for p in fp32 bf16; do
    M="$M,flowmapsr:model=$R/$v-noconcat-3000-export,steps=1,precision=$p,label=$v-noconcat-3000-$p"
  done
done
export OMP_NUM_THREADS=2
.venv/bin/flowmapsr bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 \
  --limit 25 --threads 2 --grid 1 --title "RealSR x4 (first 25): fp32 vs bf16" \
  --methods "$M" --out "$R/eval-precision-realsr"
.venv/bin/flowmapsr bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --threads 2 --grid 1 --title "Set14 x4: fp32 vs bf16" --methods "$M" --out "$R/eval-precision-set14"
