#!/bin/bash
# Peak RSS and CPU time of `flowmapsr train sd21-flowmapsr` (1 step, 256² crops, batch 1, one
# thread) on a real-size SD 2.1 folder with random weights, frozen_dtype float32 vs bfloat16.
# Run from the repository root: bash docs/bench/backbones/frozen_dtype_memory.sh
# (F: the folder to write/read, ~3.8 GB; OUT: run folders). Results: README "Large backbones".
F=${F:-/tmp/sd21-random}; OUT=${OUT:-/tmp/frozen-dtype}; D=docs/bench/backbones
[ -f $F/unet/config.json ] || python $D/make_sd21_random_folder.py $F
mkdir -p $OUT
for d in float32 bfloat16; do
  rm -rf $OUT/run-$d
  OMP_NUM_THREADS=1 /usr/bin/time -v -o $OUT/$d.time flowmapsr train sd21-flowmapsr \
    net.pretrained=$F codec.pretrained=$F output_dir=$OUT/run-$d frozen_dtype=$d \
    max_steps=1 data.kind=synthetic data.roots=[] data.degradation=bicubic data.crop_size=256 \
    data.batch_size=1 data.scales=[4] data.synthetic_count=4 codec.tile=null \
    validation.hr_dir="''" validation.lr_dir="''" validation.count=1 validation.crop=64 validation.steps=[1] \
    checkpoint.every=0 progress=none tensorboard=false log_every=1 optim.warmup_steps=1 > $OUT/$d.log 2>&1
  echo "$d rc=$? $(grep -E 'Maximum resident|User time|Elapsed' $OUT/$d.time | tr '\n' ' ')"
  # RSS by phase (after building, after the step; anonymous vs file-backed pages)
  OMP_NUM_THREADS=1 F=$F OUT=$OUT python $D/frozen_dtype_phases.py $d 2>/dev/null | tail -1
done
