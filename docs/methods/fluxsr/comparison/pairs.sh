#!/usr/bin/env bash
# The inverted pairs of the comparison (the teacher: docs/methods/fluxsr/run.sh step 1).
cd /work/main
OMP_NUM_THREADS=1 .venv/bin/flowmapsr pairs generate --teacher /work/runs/fx/teacher/export --output /work/runs/c17/pairs-inv --count 512 --size 128 --scale 4 --steps 8 --seed 0 --shard-size 64 --degradation mild --from-images ../shared/data/train
