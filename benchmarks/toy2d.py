"""2-D benchmark: flow maps vs flow matching + Euler on a multimodal target.

Trains one small MLP per objective (``fm``, ``shortcut``, ``lagrangian``, ``eulerian``) to map a
standard Gaussian source (t = 1) to a target distribution (t = 0: eight Gaussians on a circle, or
a checkerboard), then reports the energy distance between generated and fresh target samples at
1, 2 and 4 NFE (flow maps) and at 1, 2, 4 and 64 Euler steps (flow matching). Prints one JSON
object::

    {"distance": "energy", "results": [{"method": "fm_euler", "nfe": 1, "distance": ...}, ...]}

``--quick`` (default settings scaled down) finishes in under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from flowmapsr.inference.solvers import euler_solve, flowmap_solve, time_grid
from flowmapsr.nets import MLPFlowMap, MLPNetConfig
from flowmapsr.objectives import FlowBatch, ObjectiveConfig, build_objective
from flowmapsr.paths import PairSamplerConfig
from flowmapsr.training.ema import EMA


def eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(8, (n,), generator=g)
    ang = k.float() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([ang.cos(), ang.sin()], dim=1)
    return centres + 0.15 * torch.randn(n, 2, generator=g)


def checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2_ = torch.rand(n, generator=g) - torch.randint(2, (n,), generator=g) * 2.0
    x2 = x2_ + (torch.floor(x1) % 2)
    return torch.stack([x1, x2], dim=1) * 1.0


TARGETS = {"8gaussians": eight_gaussians, "checkerboard": checkerboard}


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance ``2E|X−Y| − E|X−X'| − E|Y−Y'|`` (Székely & Rizzo 2013), V-statistic."""
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).mean()
    yy = torch.cdist(y, y).mean()
    return float(2 * xy - xx - yy)


def train(objective_name: str, target, args, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = MLPFlowMap(MLPNetConfig(dim=2, hidden=args.hidden, depth=args.depth))
    cfg = ObjectiveConfig(
        name=objective_name,
        pairs=PairSamplerConfig(diagonal_fraction=args.diag_fraction),
        learned_weighting=args.learned_weighting,
    )
    obj = build_objective(cfg)
    ema = EMA(net, decay=args.ema)
    opt = torch.optim.Adam(list(net.parameters()) + list(obj.parameters()), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr * 0.05)
    for _ in range(args.steps):
        hr = target(args.batch, g)
        src = torch.randn(args.batch, 2, generator=g)
        res = obj(net, FlowBatch(hr=hr, src=src), generator=g)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(net)
    return ema.shadow


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small run (< 3 min on 2 cores)")
    p.add_argument("--target", choices=sorted(TARGETS), default="8gaussians")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--diag-fraction", type=float, default=0.75)
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument(
        "--learned-weighting", action="store_true", help="train with the learned λ(t, r) weighting"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--objectives", default="shortcut,lagrangian,eulerian", help="flow-map objectives to train"
    )
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 800 if args.quick else 4000
    # A 2-D MLP at batch 512 is too small to gain from threads; one thread avoids their overhead
    # (and their sensitivity to other load on the machine).
    torch.set_num_threads(args.threads)
    target = TARGETS[args.target]
    eval_g = torch.Generator().manual_seed(10_000 + args.seed)
    ref = target(args.samples, eval_g)
    src = torch.randn(args.samples, 2, generator=eval_g)
    floor = energy_distance(target(args.samples, eval_g), ref)

    results, timings = [], {}
    t0 = time.perf_counter()
    fm_net = train("fm", target, args, args.seed)
    timings["fm"] = time.perf_counter() - t0
    for nfe in (1, 2, 4, 64):
        with torch.no_grad():
            out = euler_solve(fm_net, src, time_grid(nfe))
        results.append({"method": "fm_euler", "nfe": nfe, "distance": energy_distance(out, ref)})
    for name in args.objectives.split(","):
        t0 = time.perf_counter()
        net = train(name, target, args, args.seed)
        timings[name] = time.perf_counter() - t0
        for nfe in (1, 2, 4):
            with torch.no_grad():
                out = flowmap_solve(net, src, time_grid(nfe))
            results.append({"method": name, "nfe": nfe, "distance": energy_distance(out, ref)})

    def dist(method, nfe):
        return next(r["distance"] for r in results if r["method"] == method and r["nfe"] == nfe)

    checks = {}
    for name in args.objectives.split(","):
        d1 = dist(name, 1)
        checks[name] = {
            "ratio_to_fm_euler_1": d1 / dist("fm_euler", 1),
            "ratio_to_fm_euler_64": d1 / dist("fm_euler", 64),
            "half_of_fm_1_step": d1 <= 0.5 * dist("fm_euler", 1),
            "within_2x_of_fm_64_steps": d1 <= 2.0 * dist("fm_euler", 64),
        }
    out = {
        "distance": "energy",
        "target": args.target,
        "samples": args.samples,
        "noise_floor": floor,
        "train_steps": args.steps,
        "train_seconds": timings,
        "results": results,
        "checks": checks,
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
