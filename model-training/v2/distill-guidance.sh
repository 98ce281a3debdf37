#!/usr/bin/env bash
# Tried for the v2 model and left out of it (issue 15 note): stages 2 (shortcut self-distillation)
# and 3 (guidance) on the inference grids after run.sh's stage 1. On RealSR-25 at 1 NFE they
# lowered every metric (PSNR-Y 27.48 -> 27.38 -> 27.09, DISTS 0.2156 -> 0.2515 -> 0.2947).
#   R=/work/runs/v2 S1=... bash model-training/v2/distill-guidance.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/v2}
export OMP_NUM_THREADS=${THREADS:-2} OMP_WAIT_POLICY=PASSIVE
COMMON="data.degradation=mild data.clean_fraction=0.3 optim.ema_decay=0.99 checkpoint.keep=1
 progress=none tensorboard=false validation.every=0 net.channels=32 net.concat_source=false"
GRID='objective.pairs.time.kind=discrete objective.pairs.time.values=[0,0.25,0.5,0.75,1]'
train() {
  stage=$1; shift
  /usr/bin/time -v -a -o "$R/$stage.time" flowmapsr train "$@" output_dir="$R/$stage" $COMMON \
    >> "$R/$stage.log" 2>&1
}
S1=${S1:-$R/stage1-fm/export}
# Stage 2: shortcut self-distillation on the inference grids.
train stage2-distill flowmapsr-stage2-distill init_from="$S1" max_steps=800 \
  checkpoint.every=200 $GRID
# Stage 3: guidance trained into the map, same grids (no t = 1 emphasis: without the
# concatenated source every t teaches SR).
train stage3-guidance flowmapsr-stage3-guidance init_from="$R/stage2-distill/export" \
  max_steps=800 checkpoint.every=200 $GRID
