#!/usr/bin/env bash
cd /work/main
R=/work/runs/root15
B=../shared/data/bench/RealSR
OMP_NUM_THREADS=2 .venv/bin/flowmapsr bench --lr $B/LR --hr $B/HR --scale 4 --crop-border 0 --limit 25 --threads 2 --grid 3 \
  --title "RealSR x4 (first 25): stage-1 continuations, 1 NFE — the concatenation degeneracy" \
  --methods "bicubic,flowmapsr:model=model-training/default/stage1-fm/export,steps=1,label=start,flowmapsr:model=$R/base/export,steps=1,label=base,flowmapsr:model=$R/t1/export,steps=1,label=t1-heavy,flowmapsr:model=$R/srcnoise/export,steps=1,label=source-noise" \
  --out $R/bench > $R/bench.log 2>&1
