#!/usr/bin/env bash
# Issue 17: a small FluxSR run — noise→HR teacher (20 min), 256 teacher pairs, then FTD with
# T_L ∈ {0.25, 0.5, 0.75} side by side (15 min each, 1 thread), bench on RealSR.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
R=${RUNS:-/work/runs/fx}
export OMP_WAIT_POLICY=PASSIVE
COMMON="data.degradation=mild checkpoint.keep=1 checkpoint.every=200 progress=none tensorboard=false"
OMP_NUM_THREADS=2 .venv/bin/flowmapsr train fluxsr-teacher-fm output_dir=$R/teacher max_minutes=20 max_steps=3000 optim.schedule=constant $COMMON > $R/teacher.log 2>&1
OMP_NUM_THREADS=2 .venv/bin/flowmapsr pairs generate --teacher $R/teacher/export --output $R/pairs --count 256 --size 128 --scale 4 --steps 8 --seed 0 --shard-size 64 > $R/pairs.log 2>&1
for TL in 0.25 0.5 0.75; do
  OMP_NUM_THREADS=1 .venv/bin/flowmapsr train fluxsr-ftd output_dir=$R/ftd-$TL init_from=$R/teacher/export \
    data.roots=[$R/pairs] data.crop_size=128 data.scales=[4] objective.ftd.t_low=$TL \
    max_minutes=15 max_steps=3000 optim.schedule=constant validation.every=0 $COMMON > $R/ftd-$TL.log 2>&1 &
done
wait
B=../shared/data/bench/RealSR
OMP_NUM_THREADS=2 .venv/bin/flowmapsr bench --lr $B/LR --hr $B/HR --scale 4 --crop-border 0 --limit 25 --threads 2 \
  --title "RealSR x4 (first 25): FluxSR FTD, T_L sweep (small net, 15 CPU-minutes each)" \
  --methods "bicubic,flowmapsr:model=$R/ftd-0.25/export,flowmapsr:model=$R/ftd-0.5/export,flowmapsr:model=$R/ftd-0.75/export" \
  --out $R/bench > $R/bench.log 2>&1
