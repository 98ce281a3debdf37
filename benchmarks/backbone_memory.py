"""Parameters and training / inference memory of the real-size large backbones (issue 14).

COMPUTED (no weights, no GPU): each backbone is built from its published config
(:mod:`flowmapsr.nets.known_configs`) on the meta device (accelerate's ``init_empty_weights``),
wrapped in our adapter (``UNetFlowMap`` / ``FluxFlowMap``: widened input, t − r / ω embeddings,
77- or 512-token prompt bank) with the LoRA of its preset attached by our own
:func:`~flowmapsr.nets.lora.attach_lora` (peft) — so the parameter and trainable counts are those
of the exact modules a run would train. Its VAE and text encoders are built the same way. From
the counts (bytes per parameter; activations NOT included — they depend on resolution, batch,
attention kernel and checkpointing):

- ``train_gib`` (the presets' setup: ``frozen_dtype: bfloat16``): frozen base weights in bf16 (2
  B/param), the trainable parameters (LoRA + the zero-initialised extras) in fp32 with their
  fp32 gradients, Adam's two moments and an fp32 EMA of the trainable parameters (4 + 4 + 8 + 4
  = 20 B/param), the VAE in bf16 (the trainer encodes targets / sources), plus a frozen bf16
  teacher copy of the whole net when the objective needs one (``consistency``; ``shortcut`` does
  not). Text encoders are needed only once, to fill the prompt bank, so they are listed apart
  (``text_encoders_bf16_gib``).
- ``train_gib_frozen_fp32``: the same run with ``frozen_dtype=float32`` (the frozen base and VAE
  kept in fp32, 4 B per frozen parameter; the EMA still shares the frozen weights,
  training/ema.py). ``train_gib`` is what the presets' ``frozen_dtype: bfloat16`` holds.
- ``train_gib_with_frozen_teacher``: the same with a frozen bf16 teacher copy of the net, as a
  ``consistency`` (FlowSR stage 2) run on this backbone would hold.
- ``inference_bf16_gib``: backbone (LoRA merged) + VAE in bf16.

MEASURED on this CPU (``--measure sd21:64 sdxl:64 ...``): peak resident memory (``ru_maxrss`` of
a fresh subprocess per case) and seconds of one forward + backward of a real-size UNet (random
init, built directly in bf16) through our adapter with the preset's LoRA, on one latent sample
of the given side (64: a 512² image), 77-token prompt, loss = mean(u²). FLUX (11.9 B) is not
measured: its bf16 weights alone (22 GiB) do not fit the shared 24 GiB machine.

Run: ``OMP_NUM_THREADS=1 python benchmarks/backbone_memory.py [--measure sd21:64 sdxl:128]
[--threads 1]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

GIB = 1024**3
# Bytes per trainable parameter: fp32 weight, fp32 grad, Adam m and v, fp32 EMA.
TRAINABLE_BYTES = 4 + 4 + 8 + 4


def _adapter(key: str, preset):
    """Our flow-map adapter around the published backbone, on the meta device, LoRA attached."""
    from accelerate import init_empty_weights

    from flowmapsr.nets.known_configs import KNOWN, build
    from flowmapsr.nets.lora import attach_lora

    lib, cls, cfg = KNOWN[key]["backbone"]
    with init_empty_weights():
        backbone = build(lib, cls, cfg)
        net = _wrap(key, preset, backbone)
        attach_lora(net, preset.lora)
    return net


def _wrap(key: str, preset, backbone):
    from dataclasses import replace

    n = preset.net
    if key == "flux":
        from flowmapsr.nets.flux_adapter import FluxFlowMap

        return FluxFlowMap(replace(n, pretrained=None), backbone=backbone)
    from flowmapsr.nets.unet_adapter import UNetFlowMap

    return UNetFlowMap(replace(n, pretrained=None), backbone=backbone)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def computed(key: str) -> dict:
    """Counts and the memory figures computed from them (GiB)."""
    from flowmapsr.nets.known_configs import KNOWN, build_meta
    from flowmapsr.objectives import OBJECTIVES
    from flowmapsr.training.presets import resolve_config

    preset_name = f"{key}-flowmapsr"
    preset = resolve_config(preset_name)
    known = KNOWN[key]
    backbone = _count(build_meta(*known["backbone"]))
    net = _adapter(key, preset)
    total = _count(net)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    lora = sum(p.numel() for n, p in net.named_parameters() if "lora_" in n)
    frozen = total - trainable
    vae = _count(build_meta(*known["vae"]))
    encoders = {
        part: _count(build_meta(*known[part]))
        for part in ("text_encoder", "text_encoder_2")
        if part in known
    }
    teacher = OBJECTIVES[preset.objective.name].needs_frozen_teacher
    base_bf16 = 2 * frozen
    train = base_bf16 + TRAINABLE_BYTES * trainable + 2 * vae + (2 * total if teacher else 0)
    frozen_fp32 = 4 * frozen + TRAINABLE_BYTES * trainable + 4 * vae
    frozen_fp32 += 4 * total if teacher else 0
    return {
        "preset": preset_name,
        "weights": known["repo"],
        "backbone_params": backbone,
        "adapter_params": total,
        "trainable_params": trainable,
        "lora_params": lora,
        "lora_rank": preset.lora.rank,
        "vae_params": vae,
        "text_encoder_params": encoders,
        "objective": preset.objective.name,
        "frozen_teacher": teacher,
        "computed": {
            "weights_bf16_gib": round(2 * total / GIB, 2),
            "train_gib": round(train / GIB, 2),
            "train_gib_frozen_fp32": round(frozen_fp32 / GIB, 2),
            "train_gib_with_frozen_teacher": round(
                (train + (0 if teacher else 2 * total)) / GIB, 2
            ),
            "inference_bf16_gib": round((2 * (total - lora) + 2 * vae) / GIB, 2),
            "text_encoders_bf16_gib": round(2 * sum(encoders.values()) / GIB, 2),
            "excludes": "activations, CUDA context, allocator slack",
        },
    }


def _child_measure(key: str, side: int) -> None:
    """One forward + backward of the real-size ``key`` UNet (random bf16 weights) through the
    adapter with the preset's LoRA on one ``(1, 4, side, side)`` latent; prints one JSON line."""
    import torch

    from flowmapsr.flowmap import Condition
    from flowmapsr.nets.known_configs import KNOWN, build
    from flowmapsr.nets.lora import attach_lora
    from flowmapsr.training.presets import resolve_config

    preset = resolve_config(f"{key}-flowmapsr")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    # Built in bf16 directly (default dtype), so the fp32 init never sits in memory: the
    # resident weights are those of a bf16 frozen base.
    torch.set_default_dtype(torch.bfloat16)
    net = _wrap(key, preset, build(*KNOWN[key]["backbone"]))
    attach_lora(net, preset.lora)
    torch.set_default_dtype(torch.float32)
    net.train()
    build_s = time.perf_counter() - t0
    after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, side, side, generator=g).bfloat16()
    src = torch.randn(1, 4, side, side, generator=g).bfloat16()
    t = torch.tensor([0.7])
    r = torch.tensor([0.2])
    cond = Condition(prompt=torch.zeros(1, dtype=torch.long), source=src)
    t0 = time.perf_counter()
    u = net(x, t, r, cond)
    fwd_s = time.perf_counter() - t0
    loss = u.float().square().mean()
    t0 = time.perf_counter()
    loss.backward()
    bwd_s = time.perf_counter() - t0
    grads = sum(p.grad is not None for p in net.parameters() if p.requires_grad)
    print(
        json.dumps(
            {
                "params": _count(net),
                "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
                "trainable_with_grad": grads,
                "dtype": str(next(net.backbone.parameters()).dtype),
                "backbone": key,
                "latent": [1, 4, side, side],
                "image": f"{side * 8}x{side * 8}",
                "rss_after_build_mib": round(after_build / 1024),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "build_s": round(build_s, 1),
                "forward_s": round(fwd_s, 1),
                "backward_s": round(bwd_s, 1),
                "loss_finite": bool(torch.isfinite(loss)),
                "threads": torch.get_num_threads(),
            }
        )
    )


def measure(key: str, side: int, threads: int, timeout: float) -> dict:
    import os

    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--child", key, str(side)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"did not finish within {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--measure",
        nargs="*",
        metavar="KEY:SIDE",
        help="also measure CPU forward+backward cases, e.g. sd21:64 sdxl:64 sdxl:128 "
        "(backbone:latent side; default sd21:64)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1200.0)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child_measure(a.child[0], int(a.child[1]))
        return
    out = {
        "what": "computed from parameter counts (meta device, published configs); no GPU run",
        "backbones": [computed(k) for k in ("sdxl", "sd21", "flux")],
    }
    if a.measure is not None:
        cases = a.measure or ["sd21:64"]
        out["measured_cpu_forward_backward"] = [
            {"case": c, **measure(*c.split(":")[:1], int(c.split(":")[1]), a.threads, a.timeout)}
            for c in cases  # one subprocess per case, one after another: maxrss is its own
        ]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
