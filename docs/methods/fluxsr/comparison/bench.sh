#!/usr/bin/env bash
# Issue 17: the three methods at ~equal CPU budgets + FluxSR's ablations, RealSR first 25, 2 threads.
cd /work/main
R=/work/runs/c17
B=../shared/data/bench/RealSR
OMP_NUM_THREADS=2 .venv/bin/flowmapsr bench --lr $B/LR --hr $B/HR --scale 4 --crop-border 0 --limit 25 --threads 2 \
  --title "RealSR x4 (first 25): FlowMapSR-small, FlowSR-small, FluxSR-small at ~1 CPU-hour each, and FluxSR ablations" \
  --methods "bicubic,flowmapsr:label=built-in,flowmapsr:model=$R/flowmapsr/final,label=FlowMapSR,flowmapsr:model=$R/flowsr/final,label=FlowSR,flowmapsr:model=/work/runs/fx/ftd-0.5/export,label=FluxSR-sampled-pairs,flowmapsr:model=$R/ftd-full/export,label=FluxSR,flowmapsr:model=$R/ftd-noftd/export,label=FluxSR-no-FTD,flowmapsr:model=$R/ftd-lpips/export,label=FluxSR-LPIPS,flowmapsr:model=$R/ftd-noadl/export,label=FluxSR-no-ADL" \
  --grid-methods "bicubic,flowmapsr:model=$R/flowmapsr/final,label=FlowMapSR,flowmapsr:model=$R/flowsr/final,label=FlowSR,flowmapsr:model=$R/ftd-full/export,label=FluxSR,flowmapsr:model=$R/ftd-noftd/export,label=FluxSR-no-FTD" \
  --out $R/bench > $R/bench.log 2>&1
