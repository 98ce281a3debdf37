"""Models whose source sits inside the path (FluxSR: the LR latent at T_L) sample from there."""

from __future__ import annotations

import json

import pytest
import torch

from flowmapsr.flowmap import PROMPT_POS, Condition
from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.inference.solvers import time_grid
from flowmapsr.nets import build_net
from flowmapsr.objectives import ObjectiveConfig
from flowmapsr.objectives.base import FTDConfig
from flowmapsr.objectives.ftd import one_step
from flowmapsr.training.config import TrainConfig
from flowmapsr.training.export import pipeline_config

T_L = 0.35


def test_time_grid_runs_from_the_source_time_to_zero():
    for kind in ("uniform", "late"):
        g = time_grid(4, kind, start=T_L)
        assert g[0] == pytest.approx(T_L) and g[-1] == 0 and torch.all(g[1:] < g[:-1])
    torch.testing.assert_close(time_grid(2, start=0.5), torch.tensor([0.5, 0.25, 0.0]))
    assert torch.equal(time_grid(3, start=1.0), time_grid(3))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="start time"):
            time_grid(2, start=bad)


def _pipe(**fields):
    torch.manual_seed(0)
    cfg = PipelineConfig(net={"type": "small", "channels": 8, "blocks": 2}, **fields)
    net = build_net(cfg.net)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return SRPipeline(net, cfg)


def test_one_step_from_the_source_time_is_eq18(gen):
    pipe = _pipe(solver="euler", source_time=T_L, steps=1)
    src = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    n = src.shape[0]
    cond = Condition(
        prompt=torch.full((n,), PROMPT_POS, dtype=torch.long),
        omega=torch.ones(n),
        source=src,
    )
    with torch.no_grad():
        want = one_step(pipe.net, src, T_L, cond)  # ẑ_0 = z_L − T_L·v_θ(z_L, T_L)
    torch.testing.assert_close(pipe.sample(src), want)
    # the default source time (1) is another model: a jump of length 1 from t = 1
    assert not torch.allclose(_pipe(solver="euler", steps=1).sample(src), want)


def test_source_time_saves_loads_and_is_checked(tmp_path):
    pipe = _pipe(solver="euler", source_time=T_L)
    folder = pipe.save_pretrained(tmp_path / "m")
    assert SRPipeline.from_pretrained(folder).config.source_time == pytest.approx(T_L)
    cfg_path = folder / "config.json"
    raw = json.loads(cfg_path.read_text())
    for fields, match in (
        ({"source_time": 0.0}, "source_time must lie"),
        ({"source_time": 0.5, "solver": "consistency"}, "consistency solver needs"),
    ):
        cfg_path.write_text(json.dumps({**raw, **fields}))
        with pytest.raises(ValueError, match=match):
            SRPipeline.from_pretrained(folder)


def test_ftd_exports_start_at_t_low_with_the_euler_solver():
    cfg = TrainConfig(objective=ObjectiveConfig(name="ftd", ftd=FTDConfig(t_low=0.3)))
    p = pipeline_config(cfg, {})
    assert p.solver == "euler" and p.source_time == pytest.approx(0.3)
    other = pipeline_config(TrainConfig(objective=ObjectiveConfig(name="fm")), {})
    assert other.solver == "flowmap" and other.source_time == 1.0
