#!/usr/bin/env bash
cd "$(dirname "$0")/../../.."  # the repository root
B=../shared/data/bench/RealSR
S1=model-training/default/stage1-fm/export
F=${RUNS:-/work/runs/cmp}/flowsr/export
M=${RUNS:-/work/runs/cmp}/flowmapsr/export
OMP_WAIT_POLICY=PASSIVE .venv/bin/flowmapsr bench --lr $B/LR --hr $B/HR --scale 4 --crop-border 0 --limit 25 --threads 2 \
  --title "RealSR x4 (first 25): FlowSR vs FlowMapSR stage 2, same stage 1, 30 CPU-minutes each" \
  --methods "bicubic,flowmapsr:model=$S1,steps=1,flowmapsr:model=$F,steps=1,flowmapsr:model=$F,steps=2,flowmapsr:model=$F,steps=4,flowmapsr:model=$M,steps=1,flowmapsr:model=$M,steps=2,flowmapsr:model=$M,steps=4" \
  --grid-methods "bicubic,flowmapsr:model=$S1,steps=1,flowmapsr:model=$F,steps=1,flowmapsr:model=$M,steps=1" \
  --out ${RUNS:-/work/runs/cmp}/bench  # docs/methods/flowsr holds a copy
