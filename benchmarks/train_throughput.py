"""Training throughput: HR megapixels per second per objective and backbone size.

One training step = objective forward (with the EMA teacher) + backward + AdamW step, on a
batch of ``--batch`` HR crops of ``--crop``². Objectives: fm, shortcut, lagrangian, eulerian;
sizes: the small backbone's presets below. Measurements are interleaved round-robin over
(size, objective) and the median of ``--repeats`` rounds is kept, so load from other processes
hits every cell alike; each figure is also reported as a ratio to ``fm`` of the same size in the
same run (the baseline). Prints one JSON object.

    python benchmarks/train_throughput.py --sizes tiny,small --batch 8 --crop 128
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.objectives import FlowBatch, ObjectiveConfig, build_objective
from flowmapsr.training.ema import EMA

SIZES = {  # name: (channels, blocks) of the small backbone
    "tiny": (32, 4),  # the smoke recipe's net
    "small": (64, 8),  # the default of the stage presets
}
OBJECTIVES = ["fm", "shortcut", "lagrangian", "eulerian"]


def make_cell(size: str, objective: str, batch: int, crop: int, seed: int):
    ch, blocks = SIZES[size]
    torch.manual_seed(seed)
    net = build_net({"type": "small", "channels": ch, "blocks": blocks})
    obj = build_objective(ObjectiveConfig(name=objective, learned_weighting=objective != "fm"))
    ema = EMA(net, decay=0.999)
    params = [p for p in list(net.parameters()) + list(obj.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, crop, crop, generator=g) * 2 - 1
    src = torch.rand(batch, 3, crop, crop, generator=g) * 2 - 1
    fb = FlowBatch(hr=hr, src=src, cond=Condition(source=src))
    n_params = sum(p.numel() for p in net.parameters())

    def step():
        opt.zero_grad(set_to_none=True)
        res = obj(net, fb, generator=g, teacher=ema.shadow)
        res.loss.backward()
        opt.step()
        ema.update(net)

    return step, n_params


def round_robin(steps: dict, n: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each ``steps[key]()``: one warm-up call each (allocator, JVP
    tracing), then ``repeats`` rounds of ``n`` calls per cell, interleaved so that load from
    other processes hits every cell alike. Returns ``key → [seconds per call, per round]``."""
    for step in steps.values():
        step()
    times: dict = {k: [] for k in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            times[key].append((time.perf_counter() - t0) / n)
    return times


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per cell per round")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (median is kept)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    objectives = [o for o in args.objectives.split(",") if o]
    for s in sizes:
        if s not in SIZES:
            raise SystemExit(f"unknown size '{s}'; choose from {sorted(SIZES)}")
    if "fm" not in objectives:
        objectives = ["fm", *objectives]
    cells = {
        (s, o): make_cell(s, o, args.batch, args.crop, args.seed) for s in sizes for o in objectives
    }
    times = round_robin({k: step for k, (step, _) in cells.items()}, args.steps, args.repeats)
    mp = args.batch * args.crop * args.crop / 1e6
    result = {
        "benchmark": "train_throughput",
        "machine": machine(),
        "batch": args.batch,
        "crop": args.crop,
        "steps": args.steps,
        "repeats": args.repeats,
        "baseline": "fm (same size, same run)",
        "sizes": {},
    }
    for s in sizes:
        ch, blocks = SIZES[s]
        entry = {
            "channels": ch,
            "blocks": blocks,
            "params_M": round(cells[(s, "fm")][1] / 1e6, 3),
            "objectives": {},
        }
        base = statistics.median(times[(s, "fm")])
        for o in objectives:
            sec = statistics.median(times[(s, o)])
            entry["objectives"][o] = {
                "sec_per_step": round(sec, 4),
                "hr_mp_per_s": round(mp / sec, 4),
                "ratio_to_fm": round(base / sec, 3),
            }
        result["sizes"][s] = entry
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
