#!/usr/bin/env bash
# After continue2.sh: the 32x8 net with and without the concatenated source at equal steps
# (3 000), and the one without at 6 000, at 1 NFE in fp32, beside bicubic, SPAN and the shipped
# default model, 2 threads each, on all five bench sets (RealSR: the first 25; Set14 x8 made
# from Set14's HR by bicubic x8 downscaling, as model-training/default/evaluate-default.sh does).
set -eu
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
B=../shared/data/bench
M="bicubic,span,flowmapsr:steps=1,label=shipped-default"
M="$M,flowmapsr:model=$R/c32b8/export,steps=1,precision=fp32,label=c32b8-concat-3000"
M="$M,flowmapsr:model=$R/c32b8-noconcat-3000-export,steps=1,precision=fp32,label=c32b8-noconcat-3000"
M="$M,flowmapsr:model=$R/c32b8-noconcat/export,steps=1,precision=fp32,label=c32b8-noconcat-6000"
export OMP_NUM_THREADS=2
X8=$(mktemp -d)
trap 'rm -rf "$X8"' EXIT
.venv/bin/flowmapsr degrade $B/Set14/x4/HR -o "$X8/LR" --scale 8 --preset bicubic --seed 0
bench() { .venv/bin/flowmapsr bench --threads 2 --grid 3 --methods "$M" "$@"; }  # a later --methods wins
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --limit 25 \
  --title "RealSR x4 (first 25): 32x8 with / without the concatenated source" --out "$R/eval3-realsr"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --title "Set14 x4: 32x8 with / without the concatenated source" --out "$R/eval3-set14"
bench --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 \
  --title "Set5 x4: 32x8 with / without the concatenated source" --out "$R/eval3-set5"
# SPAN x4 has no x8 model: that method fails there, and bench then exits non-zero.
bench --lr "$X8/LR" --hr $B/Set14/x4/HR --scale 8 --crop-border 8 --methods "bicubic,${M#bicubic,span,}" \
  --title "Set14 x8: 32x8 with / without the concatenated source" --out "$R/eval3-set14x8"
bench --lr $B/ImageNetVal_RealESRGANdeg/LR --hr $B/ImageNetVal_RealESRGANdeg/HR --scale 4 \
  --crop-border 0 --title "ImageNetVal (Real-ESRGAN degradation) x4: 32x8 with / without the concatenated source" \
  --out "$R/eval3-imagenet"
