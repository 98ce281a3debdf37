#!/usr/bin/env bash
# Issue 16: FlowSR stage 2 vs FlowMapSR stage 2 from the same stage-1 model, same wall time,
# run side by side (1 thread each) so both see the same machine load.
cd "$(dirname "$0")/../../.."  # the repository root
S1=model-training/default/stage1-fm/export
COMMON="init_from=$S1 data.degradation=mild data.clean_fraction=0.3 max_minutes=${MIN:-30} max_steps=3000 optim.schedule=constant checkpoint.keep=1 checkpoint.every=100 validation.every=0 progress=none tensorboard=false"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
.venv/bin/flowmapsr train flowsr-stage2-consistency output_dir=${RUNS:-/work/runs/cmp}/flowsr name=flowsr-stage2 $COMMON > ${RUNS:-/work/runs/cmp}/flowsr.log 2>&1 &
.venv/bin/flowmapsr train flowmapsr-stage2-distill output_dir=${RUNS:-/work/runs/cmp}/flowmapsr name=stage2-distill $COMMON > ${RUNS:-/work/runs/cmp}/flowmapsr.log 2>&1 &
wait
