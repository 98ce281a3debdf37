#!/usr/bin/env bash
# The model card's numbers (issue 7): every table and figure in docs/models/default comes from
# this script. Run from the repository root with ../shared beside it and `pip install -e .[peers]`.
#   bash model-training/default/evaluate.sh [OUT]        (OUT default: docs/models/default)
# MODEL=DIR benchmarks a pipeline folder instead of the built-in model; THREADS (default 2) is
# the CPU thread count of every method, peers included.
set -euo pipefail
OUT=${1:-docs/models/default}
B=../shared/data/bench
T=${THREADS:-2}
M=${MODEL:+,model=$MODEL}
# The two ends of the model, and the knob sweeps (NFE, guidance ω, LoRA scale).
FID="flowmapsr:steps=1,guidance=1,lora_scale=0$M"
DEF="flowmapsr:steps=1$M"
NFE2="flowmapsr:steps=2$M"
REAL=${REALISM:-"flowmapsr:steps=1,lora_scale=1.25$M"}
KNOBS="flowmapsr:steps=4$M,flowmapsr:steps=1,guidance=2$M,flowmapsr:steps=1,guidance=3.5$M"
KNOBS="$KNOBS,flowmapsr:steps=1,lora_scale=0.5$M,flowmapsr:steps=1,lora_scale=2$M"

# x8 inputs: Set14 HR cropped to a multiple of 8, MATLAB-bicubic downscale (the project's resize).
X8=$(mktemp -d)
trap 'rm -rf "$X8"' EXIT
flowmapsr degrade $B/Set14/x4/HR -o "$X8/LR" --scale 8 --preset bicubic --seed 0

bench() { flowmapsr bench --threads "$T" "$@"; }
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --title "RealSR x4" \
    --methods "bicubic,realesrgan,span,$FID,$DEF,$NFE2,$REAL,$KNOBS" \
    --grid-methods "bicubic,realesrgan,$DEF,$NFE2" --out "$OUT/realsr"
bench --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 --title "Set5 x4" \
    --methods "bicubic,realesrgan,span,$FID,$DEF,$NFE2,$REAL" --out "$OUT/set5"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 --title "Set14 x4" \
    --methods "bicubic,realesrgan,span,$FID,$DEF,$NFE2,$REAL" --out "$OUT/set14"
bench --lr "$X8/LR" --hr $B/Set14/x4/HR --scale 8 --crop-border 8 --title "Set14 x8" \
    --methods "bicubic,$FID,$DEF,$NFE2,$REAL" --out "$OUT/set14x8"
