#!/usr/bin/env bash
# After run.sh: the LoRA-scale sweep of the stage-4 export at 1 NFE on the first 25 RealSR images
# and on Set14 x4 (fp32, 2 threads) — what the modes are chosen from.
#   R=/work/runs/v2 bash model-training/v2/sweep-lora.sh [OUT]
set -eu
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/v2}
OUT=${1:-$R/sweep-lora}
B=../shared/data/bench
S4=$R/stage4-adversarial/export
M=bicubic
for l in ${SCALES:-0 0.5 0.75 1 1.25}; do
  M="$M,flowmapsr:model=$S4,steps=1,lora_scale=$l,precision=fp32,label=lora$l"
done
export OMP_NUM_THREADS=2
bench() {
  .venv/bin/flowmapsr bench --threads 2 --metrics psnr,ssim,lpips,dists --methods "$M" "$@"
}
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --limit 25 --grid 3 \
  --title "RealSR x4 (first 25): v2 LoRA scales" --out "$OUT-realsr"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --title "Set14 x4: v2 LoRA scales" --out "$OUT-set14"
