#!/usr/bin/env bash
# The README crop grid of the built-in model: text, fine edges, fur, scales (x4) — LR, bicubic,
# SPAN, Real-ESRGAN, the model at --mode fidelity / balanced / realism, HR. Four images: RealSR
# Canon_001 and Canon_034, ImageNetVal (Real-ESRGAN degradation) 00000079 and 00000153.
#   bash model-training/v2/crops.sh [OUT]          (OUT default: docs/models/v2/crops)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-docs/models/v2/crops}
B=$(cd ../shared/data/bench && pwd)
G=$(mktemp -d)
trap 'rm -rf "$G"' EXIT
mkdir -p "$G/LR" "$G/HR"
for d in LR HR; do  # LR and HR files have the same names in each set
  for f in RealSR/$d/Canon_001_LR4.png RealSR/$d/Canon_034_LR4.png \
      ImageNetVal_RealESRGANdeg/$d/ILSVRC2012_val_00000079.png \
      ImageNetVal_RealESRGANdeg/$d/ILSVRC2012_val_00000153.png; do
    ln -s "$B/$f" "$G/$d/"
  done
done
M="bicubic,span,realesrgan,flowmapsr:mode=fidelity,label=ours-fidelity"
M="$M,flowmapsr:mode=balanced,label=ours-balanced,flowmapsr:mode=realism,label=ours-realism"
flowmapsr bench --lr "$G/LR" --hr "$G/HR" --scale 4 --crop-border 0 --threads "${THREADS:-2}" \
  --grid 4 --title "README crops: text, fine edges, fur, scales (x4)" --methods "$M" --out "$OUT"
