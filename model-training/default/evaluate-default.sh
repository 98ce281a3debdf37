#!/usr/bin/env bash
# The shipped default (LoRA scale 0.5, chosen from evaluate.sh's LoRA sweep) on every set, and
# the crop grid of the model card. Same conventions as evaluate.sh; run after it.
#   bash model-training/default/evaluate-default.sh [OUT]   (OUT default: docs/models/default)
set -euo pipefail
OUT=${1:-docs/models/default}
B=../shared/data/bench
T=${THREADS:-2}
M=${MODEL:+,model=$MODEL}
D="flowmapsr:steps=1,lora_scale=0.5$M"
D2="flowmapsr:steps=2,lora_scale=0.5$M"
D4="flowmapsr:steps=4,lora_scale=0.5$M"
X8=$(mktemp -d)
trap 'rm -rf "$X8"' EXIT
flowmapsr degrade $B/Set14/x4/HR -o "$X8/LR" --scale 8 --preset bicubic --seed 0

bench() { flowmapsr bench --threads "$T" "$@"; }
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --title "RealSR x4, default" \
    --methods "bicubic,$D,$D2,$D4" --out "$OUT/realsr-default"
bench --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 --title "Set5 x4, default" \
    --methods "bicubic,$D,$D2" --out "$OUT/set5-default"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 --title "Set14 x4, default" \
    --methods "bicubic,$D,$D2" --out "$OUT/set14-default"
bench --lr "$X8/LR" --hr $B/Set14/x4/HR --scale 8 --crop-border 8 --title "Set14 x8, default" \
    --methods "bicubic,$D,$D2" --out "$OUT/set14x8-default"
# The crop grid: LR, bicubic, Real-ESRGAN, ours at 1 and 2 NFE, HR (8 RealSR images, 4 shown).
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --limit 8 --grid 4 --title "RealSR crops" \
    --methods "bicubic,realesrgan,$D,$D2" --out "$OUT/grid"
