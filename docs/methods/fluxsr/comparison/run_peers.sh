#!/usr/bin/env bash
# Issue 17: FlowMapSR-small and FlowSR-small from scratch at ~60 CPU-thread-minutes each (1 thread,
# side by side; the source concatenated, the presets' default then), to compare with FluxSR-small
# (teacher 20 min x 2 threads + pairs + FTD 20 min x 1).
cd /work/main
R=/work/runs/c17
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="data.degradation=mild checkpoint.keep=1 checkpoint.every=200 progress=none tensorboard=false validation.every=0 optim.schedule=constant max_steps=100000"
/usr/bin/time -v .venv/bin/flowmapsr recipe flowmapsr-small --output $R/flowmapsr $COMMON \
  --stage stage1-fm:max_minutes=25 --stage stage1-fm:net.concat_source=true --stage stage2-distill:max_minutes=15 \
  --stage stage3-guidance:max_minutes=10 --stage stage4-adversarial:max_minutes=10 > $R/flowmapsr.log 2>&1 &
/usr/bin/time -v .venv/bin/flowmapsr recipe flowsr-small --output $R/flowsr $COMMON \
  --stage flowsr-stage1:max_minutes=35 --stage flowsr-stage1:net.concat_source=true --stage flowsr-stage2:max_minutes=25 > $R/flowsr.log 2>&1 &
wait
