#!/usr/bin/env bash
# After run.sh: each stage's export at 1 NFE on the first 25 RealSR images beside bicubic, and
# stage 4's LoRA-scale and guidance sweeps (the knobs the modes are chosen from), fp32, 2 threads.
#   R=/work/runs/v2 bash model-training/v2/eval-stages.sh [OUT]
set -eu
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/v2}
S1=${S1:-$R/stage1-fm/export}
OUT=${1:-$R/eval-stages}
B=../shared/data/bench
f() { echo "flowmapsr:model=$1,steps=${3:-1},precision=fp32,label=$2${4:+,$4}"; }
M="bicubic,$(f "$S1" stage1),$(f "$R/stage2-distill/export" stage2)"
M="$M,$(f "$R/stage3-guidance/export" stage3)"
S4=$R/stage4-adversarial/export
for l in 0 0.5 1; do M="$M,$(f "$S4" "stage4-lora$l" 1 "lora_scale=$l")"; done
M="$M,$(f "$S4" stage4-lora1-2nfe 2 lora_scale=1),$(f "$S4" stage4-lora1-w2 1 lora_scale=1,guidance=2)"
export OMP_NUM_THREADS=2
.venv/bin/flowmapsr bench --threads 2 --grid 3 --methods "$M" --lr $B/RealSR/LR --hr $B/RealSR/HR \
  --scale 4 --crop-border 0 --limit 25 --title "RealSR x4 (first 25): the v2 stages" --out "$OUT-realsr"
