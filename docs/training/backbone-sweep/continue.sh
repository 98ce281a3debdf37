#!/usr/bin/env bash
# After run.sh: the no-concatenation net, which alone beat bicubic at 700 steps, trained further
# (the 64x8 run resumed exactly from its step-700 checkpoint; constant learning rate, so this is
# the same as one longer run) beside a 32x8 one from scratch with the same recipe, one thread each.
set -u
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
STEPS=${STEPS:-3000}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="max_steps=$STEPS data.degradation=mild data.clean_fraction=0.3 optim.ema_decay=0.99
 optim.schedule=constant validation.every=0 checkpoint.every=500 checkpoint.keep=1
 progress=none tensorboard=false net.concat_source=false"
run() {
  name=$1; shift
  /usr/bin/time -v -a -o "$R/$name.time" .venv/bin/flowmapsr train flowmapsr-stage1-fm \
    output_dir="$R/$name" $COMMON "$@" >> "$R/$name.log" 2>&1
}
run c64b8-noconcat &
run c32b8-noconcat net.channels=32 &
wait
grep -H "User time\|Exit" "$R"/*noconcat.time
