#!/usr/bin/env bash
# The model card of the second-generation built-in model: its three modes beside bicubic, SPAN x4,
# Real-ESRGAN x4plus and the first-generation model (model-training/default/shipped: the folder
# as it shipped until 2026-12-04; its default mode) on the five bench sets, 2 threads for every
# method, in one run per set. Balanced also runs in fp32 (the built-in model runs bf16 under
# --precision auto on CPUs with AVX-512 BF16) to measure what bf16 costs. Run from the
# repository root with ../shared beside it and `pip install -e .[peers]`:
#   bash model-training/v2/evaluate.sh [OUT]          (OUT default: docs/models/v2)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-docs/models/v2}
B=../shared/data/bench
T=${THREADS:-2}
M=${MODEL:+,model=$MODEL}
OURS="flowmapsr:mode=fidelity$M,flowmapsr:mode=balanced$M,flowmapsr:mode=realism$M"
OURS="$OURS,flowmapsr:mode=balanced,precision=fp32$M"
OLD="flowmapsr:model=model-training/default/shipped,label=first-generation"
X8=$(mktemp -d)
trap 'rm -rf "$X8"' EXIT
flowmapsr degrade $B/Set14/x4/HR -o "$X8/LR" --scale 8 --preset bicubic --seed 0
bench() { flowmapsr bench --threads "$T" "$@"; }
GRID="bicubic,span,realesrgan,flowmapsr:mode=fidelity$M,flowmapsr:mode=balanced$M"
GRID="$GRID,flowmapsr:mode=realism$M"
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --title "RealSR x4" \
    --methods "bicubic,span,realesrgan,$OLD,$OURS" --grid 6 --grid-methods "$GRID" \
    --out "$OUT/realsr"
bench --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 --title "Set5 x4" \
    --methods "bicubic,span,realesrgan,$OLD,$OURS" --out "$OUT/set5"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 --title "Set14 x4" \
    --methods "bicubic,span,realesrgan,$OLD,$OURS" --grid 4 --grid-methods "$GRID" \
    --out "$OUT/set14"
# SPAN x4 has no x8 model (and Real-ESRGAN's x8 is not among the peers): bicubic and the models.
bench --lr "$X8/LR" --hr $B/Set14/x4/HR --scale 8 --crop-border 8 --title "Set14 x8" \
    --methods "bicubic,$OLD,$OURS" --out "$OUT/set14x8"
bench --lr $B/ImageNetVal_RealESRGANdeg/LR --hr $B/ImageNetVal_RealESRGANdeg/HR --scale 4 \
    --crop-border 0 --title "ImageNetVal (Real-ESRGAN degradation) x4" \
    --methods "bicubic,span,realesrgan,$OLD,$OURS" --out "$OUT/imagenet"
