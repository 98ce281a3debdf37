#!/usr/bin/env bash
# The second-generation built-in model (issue 15): the 32x8 small net without the concatenated
# source, four stages. Run from the repository root with ../shared/data/train beside it:
#   R=/work/runs/v2 bash model-training/v2/run.sh
# Every stage resumes exactly from its last checkpoint under $R when re-run (a finished stage
# is re-exported, not retrained: its export records the final step). Only the final weights
# are committed (src/flowmapsr/weights/default/); the checkpoints stay under $R.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/v2}
export OMP_NUM_THREADS=${THREADS:-2} OMP_WAIT_POLICY=PASSIVE
mkdir -p "$R"
COMMON="data.degradation=mild data.clean_fraction=0.3 optim.ema_decay=0.99 checkpoint.keep=1
 progress=none tensorboard=false validation.every=0 net.channels=32 net.concat_source=false"
# The 1-, 2- and 4-step grids: the times the map is sampled at (stages 2 and 3).
GRID='objective.pairs.time.kind=discrete objective.pairs.time.values=[0,0.25,0.5,0.75,1]'
train() {
  stage=$1; shift
  /usr/bin/time -v -a -o "$R/$stage.time" flowmapsr train "$@" output_dir="$R/$stage" $COMMON \
    >> "$R/$stage.log" 2>&1
}
# Stage 1: flow matching from scratch, constant rate. The shipped model's stage 1 is the 32x8 run
# of docs/training/backbone-sweep/continue.sh (this command, one thread), whose 3 000-step export
# was kept as bb/c32b8-noconcat-3000-export: pass it as S1 to start from it.
S1=${S1:-$R/stage1-fm/export}
if [ ! -f "$S1/model.safetensors" ]; then
  train stage1-fm flowmapsr-stage1-fm max_steps=3000 checkpoint.every=500 optim.schedule=constant
fi
# Stage 2: shortcut self-distillation on the inference grids.
train stage2-distill flowmapsr-stage2-distill init_from="$S1" max_steps=800 \
  checkpoint.every=200 $GRID
# Stage 3: guidance trained into the map, same grids (no t = 1 emphasis: without the
# concatenated source every t teaches SR).
train stage3-guidance flowmapsr-stage3-guidance init_from="$R/stage2-distill/export" \
  max_steps=800 checkpoint.every=200 $GRID
# Stage 4: LoRA adversarial fine-tune in the Real-ESRGAN style — l1 + LPIPS-alex + RpGAN on a
# U-Net discriminator with spectral norm — beside the stage-3 self-distillation anchor, on the
# 1-NFE sample. LoRA scale 0 at inference is stage 3's map; 1 is this stage's.
train stage4-adversarial flowmapsr-stage4-adversarial init_from="$R/stage3-guidance/export" \
  max_steps=${S4_STEPS:-1000} checkpoint.every=100 $GRID \
  adversarial.disc.kind=unet adversarial.disc.spectral_norm=true adversarial.disc.depth=3 \
  adversarial.weight=0.1 adversarial.perceptual.weight=1.0 adversarial.r_every=4 \
  'terms=[{name: l1, weight: 1.0}]'
