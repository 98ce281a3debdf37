#!/usr/bin/env bash
# After continue.sh: the no-concatenation nets at 3 000 steps (and the 64x8 one at 700) at 1 NFE
# beside bicubic, SPAN and the shipped default model (all four stages, its default mode), 2
# threads each, on the first 25 RealSR x4 images (border 0) and Set14 x4 (border 4).
# (run.sh's 700-step export of c64b8-noconcat was copied to $R/c64b8-noconcat-700-export before
# continue.sh overwrote it.)
set -eu
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
B=../shared/data/bench
M="bicubic,span,flowmapsr:steps=1,label=shipped-default"
M="$M,flowmapsr:model=$R/c64b8-noconcat-700-export,steps=1,label=c64b8-noconcat-700"
M="$M,flowmapsr:model=$R/c64b8-noconcat/export,steps=1,label=c64b8-noconcat-3000"
M="$M,flowmapsr:model=$R/c32b8-noconcat/export,steps=1,label=c32b8-noconcat-3000"
export OMP_NUM_THREADS=2
.venv/bin/flowmapsr bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 \
  --limit 25 --threads 2 --grid 3 --title "RealSR x4 (first 25): no concatenated source, 3 000 steps, 1 NFE" \
  --methods "$M" --out "$R/eval2-realsr"
.venv/bin/flowmapsr bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --threads 2 --grid 3 --title "Set14 x4: no concatenated source, 3 000 steps, 1 NFE" \
  --methods "$M" --out "$R/eval2-set14"
