#!/usr/bin/env bash
# After continue.sh: the control at equal steps (run.sh's 32x8 net WITH the concatenated source,
# resumed from step 700 to 3 000) beside the 32x8 net without it, resumed from 3 000 to 6 000;
# same recipe as run.sh, one thread each. (The 3 000-step export was copied to
# $R/c32b8-noconcat-3000-export first.)
set -u
cd "$(dirname "$0")/../../.."
R=${R:-/work/runs/bb}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
COMMON="data.degradation=mild data.clean_fraction=0.3 optim.ema_decay=0.99
 optim.schedule=constant validation.every=0 checkpoint.keep=1
 progress=none tensorboard=false net.channels=32"
run() {
  name=$1; shift
  /usr/bin/time -v -a -o "$R/$name.time" .venv/bin/flowmapsr train flowmapsr-stage1-fm \
    output_dir="$R/$name" $COMMON "$@" >> "$R/$name.log" 2>&1
}
run c32b8 max_steps=3000 checkpoint.every=700 net.concat_source=true &
run c32b8-noconcat max_steps=6000 checkpoint.every=500 net.concat_source=false &
wait
grep -H "User time\|Exit" "$R"/c32b8*.time
