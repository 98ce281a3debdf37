#!/usr/bin/env bash
# After eval-control.sh: the 32x8 no-concatenation stage 1 with the preset's decaying schedule
# (cosine after 200 warm-up steps) for 3 000 steps from scratch, otherwise run.sh's recipe, on
# two threads; then benched beside the constant-rate 3 000-step run (fp32, 1 NFE, 2 threads).
set -eu
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
B=../shared/data/bench
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
/usr/bin/time -v -o "$R/c32b8-noconcat-cosine.time" .venv/bin/flowmapsr train flowmapsr-stage1-fm \
  output_dir="$R/c32b8-noconcat-cosine" max_steps=3000 data.degradation=mild data.clean_fraction=0.3 \
  optim.ema_decay=0.99 optim.schedule=cosine validation.every=0 checkpoint.every=500 \
  checkpoint.keep=1 progress=none tensorboard=false net.channels=32 net.concat_source=false \
  > "$R/c32b8-noconcat-cosine.log" 2>&1
M="bicubic,flowmapsr:model=$R/c32b8-noconcat-3000-export,steps=1,precision=fp32,label=constant-3000"
M="$M,flowmapsr:model=$R/c32b8-noconcat-cosine/export,steps=1,precision=fp32,label=cosine-3000"
bench() { .venv/bin/flowmapsr bench --threads 2 --grid 1 --methods "$M" "$@"; }
bench --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --crop-border 0 --limit 25 \
  --title "RealSR x4 (first 25): 32x8 stage 1, constant vs cosine" --out "$R/eval4-realsr"
bench --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 \
  --title "Set14 x4: 32x8 stage 1, constant vs cosine" --out "$R/eval4-set14"
bench --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 \
  --title "Set5 x4: 32x8 stage 1, constant vs cosine" --out "$R/eval4-set5"
