#!/usr/bin/env bash
# Issue 15: the README crop grid (text, fine edges, fur, scales) — LR, bicubic, SPAN, Real-ESRGAN,
# the built-in model at --mode fidelity / balanced / realism, HR.
cd /work/main
OMP_NUM_THREADS=2 .venv/bin/flowmapsr bench --lr /tmp/grid/LR --hr /tmp/grid/HR --scale 4 --crop-border 0 --threads 2 --grid 4 \
  --title "README crops: text, fine edges, fur, scales (x4)" \
  --methods "bicubic,span,realesrgan,flowmapsr:mode=fidelity,label=ours-fidelity,flowmapsr:mode=balanced,label=ours-balanced,flowmapsr:mode=realism,label=ours-realism" \
  --out /work/runs/c17/grid15 > /work/runs/c17/grid15.log 2>&1
# the four images (symlinks): RealSR Canon_001, Canon_034; ImageNetVal_RealESRGANdeg ILSVRC2012_val_00000079, _00000153, LR and HR each into /tmp/grid/{LR,HR}
