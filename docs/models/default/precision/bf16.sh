#!/bin/bash
# bf16 vs fp32 of the built-in model, balanced (default) and realism, 1 NFE, every bench set.
cd /work/main
B=../shared/data/bench; O=/work/runs/bf16; mkdir -p $O
X8=$O/x8; [ -d $X8/LR ] || .venv/bin/flowmapsr degrade $B/Set14/x4/HR -o $X8/LR --scale 8 --preset bicubic --seed 0
M="flowmapsr,flowmapsr:precision=bf16,flowmapsr:mode=realism,flowmapsr:mode=realism,precision=bf16,flowmapsr:mode=fidelity,precision=bf16"
b() { OMP_WAIT_POLICY=PASSIVE .venv/bin/flowmapsr bench --threads 1 --metrics psnr,ssim,lpips,dists --methods "$M" "$@"; }
b --lr $B/Set5/x4/LR --hr $B/Set5/x4/HR --scale 4 --crop-border 4 --out $O/set5
b --lr $B/Set14/x4/LR --hr $B/Set14/x4/HR --scale 4 --crop-border 4 --out $O/set14
b --lr $X8/LR --hr $B/Set14/x4/HR --scale 8 --crop-border 8 --out $O/set14x8
b --lr $B/ImageNetVal_RealESRGANdeg/LR --hr $B/ImageNetVal_RealESRGANdeg/HR --scale 4 --out $O/imagenet
b --lr $B/RealSR/LR --hr $B/RealSR/HR --scale 4 --out $O/realsr
