#!/usr/bin/env bash
# Issue 17: FluxSR FTD on inverted pairs (512 photo crops through the fx teacher's reversed ODE),
# the paper's ablation layout, side by side at 1 thread each, 35 min wall each.
cd /work/main
R=/work/runs/c17
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="init_from=/work/runs/fx/teacher/export data.roots=[$R/pairs-inv] data.crop_size=128 data.scales=[4] data.degradation=mild max_minutes=${MIN:-35} max_steps=100000 optim.schedule=constant validation.every=0 checkpoint.keep=1 checkpoint.every=200 progress=none tensorboard=false"
run() { name=$1; shift; /usr/bin/time -v .venv/bin/flowmapsr train fluxsr-ftd output_dir=$R/ftd-$name $COMMON "$@" > $R/ftd-$name.log 2>&1 & }
run full
run noftd objective.ftd.ftd=0
run lpips objective.ftd.distance.perceptual.kind=lpips
run noadl objective.ftd.adl=0
wait
