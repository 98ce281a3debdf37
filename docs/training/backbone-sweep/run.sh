#!/usr/bin/env bash
# Issue 15: the small backbone chosen by quality per CPU cost. Stage-1 (fm) runs from scratch,
# one per width x depth (and one without the concatenated source), same data, seed, steps and
# schedule, two at a time on one thread each; /usr/bin/time gives each run's CPU seconds.
# 700 steps measures early training only: it ranks how fast each net learns, not where it ends.
#   c64b8 the shipped net (64 channels, 8 residual blocks)   c32b8 c48b8 narrower
#   c64b4 c64b12 shallower / deeper                           c64b8-noconcat no source channels
set -u
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
STEPS=${STEPS:-700}
mkdir -p "$R"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="max_steps=$STEPS data.degradation=mild data.clean_fraction=0.3 optim.ema_decay=0.99
 optim.schedule=constant validation.every=0 checkpoint.every=$STEPS checkpoint.keep=1
 progress=none tensorboard=false"
run() {
  name=$1; shift
  /usr/bin/time -v -o "$R/$name.time" .venv/bin/flowmapsr train flowmapsr-stage1-fm \
    output_dir="$R/$name" $COMMON "$@" > "$R/$name.log" 2>&1
}
{ run c64b8; run c32b8 net.channels=32; run c64b12 net.blocks=12; } &
{ run c48b8 net.channels=48; run c64b4 net.blocks=4; run c64b8-noconcat net.concat_source=false; } &
wait
grep -H "User time\|System time" "$R"/*.time
