#!/usr/bin/env bash
# Speed of the built-in model at 1 NFE beside its peers in one run (issue 7's speed bar), on an
# otherwise idle machine: every method on the 100 RealSR images, 2 threads, PSNR only (metrics are
# computed outside the timed call anyway). Run from the repository root with ../shared beside it
# and `pip install -e .[peers]`.
#   bash model-training/default/evaluate-speed.sh [OUT]   (OUT default: docs/models/default/realsr-speed)
set -euo pipefail
OUT=${1:-docs/models/default/realsr-speed}
B=../shared/data/bench
flowmapsr bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --threads 2 \
    --metrics psnr --title "RealSR x4 speed" \
    --methods "bicubic,span,flowmapsr:steps=1,realesrgan,flowmapsr:steps=1,lora_scale=0" \
    --out "$OUT" --grid 1
