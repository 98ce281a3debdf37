#!/usr/bin/env bash
# Issue 15: the concatenation / zero-noise degeneracy of stage 1, measured. Three stage-1 (fm)
# continuations of the shipped stage-1 export (5 500 steps), side by side at 1 thread, same wall
# time, same data and seed (no-concat changes the input layer, so it cannot start there: not run):
#   base     the preset (concat source, no noise, t ~ U[0,1])
#   t1       half the draws at t = 1 (where the 1-NFE jump is used), rest on the 4-step grid
#   srcnoise σ = 0.1 Gaussian noise on the path's source (the network's concatenated source stays clean)
cd /work/main
R=/work/runs/root15
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="init_from=model-training/default/stage1-fm/export data.degradation=mild max_minutes=${MIN:-20} max_steps=100000 optim.schedule=constant validation.every=0 checkpoint.keep=1 checkpoint.every=200 progress=none tensorboard=false"
run() { name=$1; shift; /usr/bin/time -v .venv/bin/flowmapsr train flowmapsr-stage1-fm output_dir=$R/$name $COMMON "$@" > $R/$name.log 2>&1 & }
run base
run t1 objective.pairs.time.kind=discrete "objective.pairs.time.values=[0,0.25,0.5,0.75,1,1,1,1]"
run srcnoise data.source_noise=0.1
wait
