"""FlowSR's objectives against analytic oracles: the SR flow (stage 1) and HR-regularised
consistency distillation (stage 2), plus the multistep consistency solver."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.inference.solvers import consistency_solve, flowmap_solve, time_grid
from flowmapsr.objectives import FlowBatch, ObjectiveConfig, build_objective
from flowmapsr.objectives.consistency import to_hr_end
from flowmapsr.objectives.distance import Distance, DistanceConfig
from flowmapsr.objectives.perceptual import PerceptualConfig
from flowmapsr.paths.time_sampling import PairSampler, PairSamplerConfig
from flowmapsr.testing import GaussianFlow, StraightGaussianFlow

L2_ONLY = DistanceConfig(l2=1.0, perceptual=PerceptualConfig(kind="none"))


class Perturbed(torch.nn.Module):
    """``net`` plus a smooth error that depends on ``x``, ``t`` and ``r``."""

    def __init__(self, net, eps=0.05, seed=7):
        super().__init__()
        self.net, self.eps = net, eps
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(net.dim, net.dim, generator=g, dtype=torch.float64)

    def forward(self, x, t, r, cond=None):
        bump = torch.tanh(x @ self.W) * (1 + t + 0.5 * r).unsqueeze(-1)
        return self.net(x, t, r, cond) + self.eps * bump


def _objective(name, **kw):
    return build_objective(ObjectiveConfig(name=name, distance=L2_ONLY, **kw)).double()


def _straight_batch(n=256, seed=0, dim=4):
    oracle = StraightGaussianFlow(dim=dim, seed=seed + 3)
    hr, src = oracle.pairs(n, torch.Generator().manual_seed(seed))
    return oracle, FlowBatch(hr=hr, src=src)


def _pairs(n, seed=1, fast=4):
    cfg = PairSamplerConfig(sampler="fast_slow", fast_steps=fast, diagonal_fraction=0.0)
    t, r, _ = PairSampler(cfg)(n, torch.Generator().manual_seed(seed))
    return t.double(), r.double()


def test_straight_oracle_velocity_is_the_bridge_direction_everywhere():
    oracle, b = _straight_batch(64)
    for tv in (0.0, 0.3, 1.0):
        t = torch.full((64,), tv, dtype=torch.float64)
        x = (1 - tv) * b.hr + tv * b.src
        torch.testing.assert_close(oracle(x, t, torch.zeros_like(t)), b.src - b.hr)
        torch.testing.assert_close(to_hr_end(oracle, x, t), b.hr)


def test_srflow_zero_at_the_oracle_positive_off_it():
    oracle, b = _straight_batch()
    t = torch.rand(256, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    obj = _objective("srflow")
    res = obj(oracle, b, t=t)
    assert res.loss < 1e-20, res.logs
    off = obj(Perturbed(oracle), b, t=t)
    assert off.logs["loss_velocity"] > 1e-4 and off.logs["loss_image"] > 1e-5
    assert res.per_sample.shape == (256,)


def test_consistency_zero_at_the_oracle_and_each_term_sees_its_own_error():
    oracle, b = _straight_batch()
    t, r = _pairs(256)
    obj = _objective("consistency")
    res = obj(oracle, b, t=t, r=r, teacher=oracle, frozen=oracle)
    assert res.loss < 1e-20, res.logs
    assert res.per_sample.shape == (256,)
    # A wrong student: every term is > 0.
    bad = obj(Perturbed(oracle), b, t=t, r=r, teacher=oracle, frozen=oracle)
    assert min(bad.logs["loss_cd"], bad.logs["loss_hr"], bad.logs["loss_flow"]) > 1e-5
    # A wrong EMA target: only the consistency term moves (L_hr, L_flow use the exact student).
    ema_off = obj(oracle, b, t=t, r=r, teacher=Perturbed(oracle), frozen=oracle)
    assert ema_off.logs["loss_cd"] > 1e-5
    assert ema_off.logs["loss_hr"] < 1e-20 and ema_off.logs["loss_flow"] < 1e-20
    # A wrong teacher moves x̂_r off the line: the exact map sends it to another HR image, so
    # both the target (L_cd) and the HR branch (L_hr) see it; L_flow does not use the teacher.
    teach_off = obj(oracle, b, t=t, r=r, teacher=oracle, frozen=Perturbed(oracle))
    assert teach_off.logs["loss_cd"] > 1e-6 and teach_off.logs["loss_hr"] > 1e-6
    assert teach_off.logs["loss_flow"] < 1e-20


def test_consistency_on_a_curved_flow_exact_with_the_map_step_and_second_order_with_euler():
    """On the independent-coupling Gaussian flow the trajectories curve: the teacher's Euler
    step errs by O(Δ²), so L_cd (a squared error) falls ~16× when Δ halves; with the teacher's
    own exact map it is 0."""
    oracle = GaussianFlow(dim=3, seed=4)
    g = torch.Generator().manual_seed(0)
    n = 512
    t = 0.9 * torch.ones(n, dtype=torch.float64)
    x_t = oracle.sample_marginal(t, None, g)
    # hr, src on the line through x_t with the flow's own tangent (so x_t = path point at t)
    v = oracle(x_t, t, t)
    batch = FlowBatch(hr=x_t - 0.9 * v, src=x_t + 0.1 * v)
    weights = {"cd": 1.0, "hr": 0.0, "flow": 0.0}
    from flowmapsr.objectives.base import ConsistencyWeights

    exact = _objective("consistency", consistency=ConsistencyWeights(teacher_step="map", **weights))

    class ExactMap(torch.nn.Module):
        def forward(self, x, t, r, cond=None):
            return oracle(x, t, r, cond)

    res = exact(ExactMap(), batch, t=t, r=t - 0.2, teacher=oracle, frozen=oracle)
    assert res.logs["loss_cd"] < 1e-20
    euler = _objective("consistency", consistency=ConsistencyWeights(**weights))
    losses = [
        euler(oracle, batch, t=t, r=t - d, teacher=oracle, frozen=oracle).logs["loss_cd"]
        for d in (0.2, 0.1, 0.05)
    ]
    ratios = [losses[i] / losses[i + 1] for i in range(2)]
    assert losses[0] > 1e-8
    assert all(10 < q < 24 for q in ratios), (losses, ratios)


def test_consistency_needs_the_frozen_teacher():
    oracle, b = _straight_batch(8)
    with pytest.raises(ValueError, match="frozen"):
        _objective("consistency")(oracle, b, generator=torch.Generator())


def test_consistency_gradients_reach_only_the_student():
    _, b = _straight_batch(32, dim=3)
    student, ema, teacher = (torch.nn.Linear(3, 3).double() for _ in range(3))

    def wrap(m):
        return lambda x, t, r, cond=None: m(x) * (1 + t - r).unsqueeze(-1)

    obj = _objective("consistency")
    res = obj(
        wrap(student), b, generator=torch.Generator(), teacher=wrap(ema), frozen=wrap(teacher)
    )
    res.loss.backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    assert ema.weight.grad is None and teacher.weight.grad is None


def test_fast_slow_pairs_follow_their_docstring():
    n, slow, fast = 40_000, 1000, 4
    cfg = PairSamplerConfig(
        sampler="fast_slow", slow_steps=slow, fast_steps=fast, slow_jump=0.25,
        diagonal_fraction=0.0,
    )  # fmt: skip
    t, r, diag = PairSampler(cfg)(n, torch.Generator().manual_seed(0))
    assert not diag.any() and torch.all(r < t) and torch.all(t <= 1)
    k = r * slow
    torch.testing.assert_close(k, k.round(), atol=1e-3, rtol=0)  # r on the slow grid
    assert 0 <= int(k.round().min()) and int(k.round().max()) == slow - 1
    # r is uniform over the grid: each tenth of [0, 1) gets a tenth of the draws.
    counts = torch.histc(r, bins=10, min=0, max=1) / n
    assert torch.all((counts - 0.1).abs() < 0.01), counts
    gap = t - r
    unclipped = r <= 1 - 1 / fast
    is_fast = (gap - 1 / fast).abs() < 1e-6
    is_slow = (gap - 1 / slow).abs() < 1e-6
    assert torch.all((is_fast | is_slow)[unclipped])
    share_slow = float(is_slow[unclipped].double().mean())
    assert abs(share_slow - 0.25) < 0.01, share_slow
    clipped = ~unclipped
    assert torch.all((t[clipped] == 1) | is_slow[clipped])


def test_consistency_solver_refines_and_one_step_equals_the_flow_map_jump():
    oracle, b = _straight_batch(16)
    one = consistency_solve(oracle, b.src, time_grid(1))
    torch.testing.assert_close(one, flowmap_solve(oracle, b.src, time_grid(1)))
    torch.testing.assert_close(consistency_solve(oracle, b.src, time_grid(4)), b.hr)
    calls = []

    def counting(x, t, r, cond=None):
        calls.append((float(t[0]), float(r[0])))
        return oracle(x, t, r, cond)

    consistency_solve(counting, b.src, time_grid(4))
    assert calls == [(1.0, 0.0), (0.75, 0.0), (0.5, 0.0), (0.25, 0.0)]


def test_distance_is_l2_plus_the_weighted_perceptual_term_and_keeps_no_state():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
        torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
    )
    l2 = Distance(L2_ONLY)
    torch.testing.assert_close(l2(x, y), (x - y).pow(2).flatten(1).mean(1))
    perc = PerceptualConfig(kind="sobel_l1", weight=0.5)
    d = Distance(DistanceConfig(l2=2.0, perceptual=perc))
    from flowmapsr.objectives.perceptual import SobelL1

    want = 2.0 * (x - y).pow(2).flatten(1).mean(1) + 0.5 * SobelL1()(x, y)
    torch.testing.assert_close(d(x, y), want)
    assert d.state_dict() == {} and "sobel" in d.description
    assert d.double()(x.double(), y.double()).dtype == torch.float64


def test_prompt_cfg_extrapolates_from_the_negative_prompt():
    from flowmapsr.flowmap import PROMPT_NEG, PROMPT_POS, Condition
    from flowmapsr.inference.solvers import prompt_cfg

    def net(x, t, r, cond):
        return x * 0 + cond.prompt.to(x.dtype).unsqueeze(-1)  # u = the prompt id

    x, t = torch.zeros(3, 2), torch.ones(3)
    pos = Condition(prompt=torch.full((3,), PROMPT_POS))
    neg = Condition(prompt=torch.full((3,), PROMPT_NEG))
    for g in (1.0, 2.5):
        u = prompt_cfg(net, g, neg)(x, t, t, pos)
        torch.testing.assert_close(
            u, torch.full((3, 2), PROMPT_NEG + g * (PROMPT_POS - PROMPT_NEG))
        )


def test_clip_iqa_term_is_the_two_caption_softmax_and_reaches_the_student(tmp_path):
    from flowmapsr.objectives.base import ConsistencyWeights
    from flowmapsr.objectives.clip_iqa import CLIPQualityLoss, _tensor
    from flowmapsr.testing.text_encoders import write_clip_model

    folder = write_clip_model(tmp_path / "clip")
    iqa = CLIPQualityLoss(folder, "a sharp image", "a blur image")
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x.requires_grad_(True)
    got = iqa(x)
    # By hand: CLIP's image and text features, cosine logits at the model's scale.
    m = iqa.model
    img = torch.nn.functional.interpolate((x + 1) / 2, size=(32, 32), mode="bicubic")
    feats = _tensor(m.get_image_features(pixel_values=(img - iqa.mean) / iqa.std))
    e = torch.nn.functional.normalize(feats, dim=-1)
    logits = m.logit_scale.exp() * e @ iqa.text.T
    torch.testing.assert_close(got, -torch.log_softmax(logits, -1)[:, 0])
    got.sum().backward()
    assert x.grad.abs().sum() > 0
    # In the consistency objective: an extra logged term, gradients to the student only.
    obj = build_objective(
        ObjectiveConfig(
            name="consistency",
            distance=L2_ONLY,
            consistency=ConsistencyWeights(iqa=0.5, iqa_model=str(folder)),
        )
    )
    net = torch.nn.Conv2d(3, 3, 1)
    b = FlowBatch(hr=torch.rand(2, 3, 16, 16) * 2 - 1, src=torch.rand(2, 3, 16, 16) * 2 - 1)
    res = obj(lambda x, t, r, c=None: net(x), b, generator=torch.Generator(),
              teacher=lambda x, t, r, c=None: x, frozen=lambda x, t, r, c=None: x)  # fmt: skip
    assert "loss_iqa" in res.logs and "CLIP IQA" in obj.iqa_note
    res.loss.backward()
    assert net.weight.grad is not None
    assert obj.state_dict() == {}  # the CLIP model is not checkpointed
    with pytest.raises(FileNotFoundError, match="no such folder"):
        CLIPQualityLoss(tmp_path / "none", "a", "b")
