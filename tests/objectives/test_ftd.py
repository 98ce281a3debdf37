"""FluxSR's objective ``ftd`` (seed 003 Eq. 15–21, Algorithm 1) on random tensors and oracles."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flowmapsr.nets import build_net
from flowmapsr.objectives import FlowBatch, ObjectiveConfig, build_objective
from flowmapsr.objectives.adl import adl_loss, capture_tokens
from flowmapsr.objectives.base import FTDConfig
from flowmapsr.objectives.distance import DistanceConfig
from flowmapsr.objectives.ftd import one_step, trajectory_point
from flowmapsr.objectives.perceptual import LPIPSLoss, PerceptualConfig

L2_ONLY = DistanceConfig(l2=1.0, perceptual=PerceptualConfig(kind="none"))
T_L = 0.35


def _objective(t_low=T_L, rec=0.0, adl=0.0, distance=L2_ONLY, **kw):
    cfg = FTDConfig(t_low=t_low, rec=rec, adl=adl, distance=distance, **kw)
    return build_objective(ObjectiveConfig(name="ftd", ftd=cfg)).double()


def _batch(gen, n=64, shape=(3, 4, 4)):
    z0, z_low, eps = torch.randn(3, n, *shape, generator=gen, dtype=torch.float64)
    return FlowBatch(hr=z0, src=z_low, noise=eps)


class SmoothNet(torch.nn.Module):
    """A fixed nonlinear ``v(x, t)`` (no relation to the data): ``(B, C, H, W), (B,) → same``."""

    def __init__(self, channels=3, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn(channels, channels, generator=g).double())

    def forward(self, x, t, r, cond=None):
        mixed = torch.einsum("oc,bchw->bohw", self.W, x)
        return torch.tanh(mixed) * (1 + t + 0.5 * r).view(-1, 1, 1, 1)


class CouplingOracle(torch.nn.Module):
    """An exact FTD student for a deterministic per-element coupling ``z_L = α·z_0 + c``,
    ``ε = β·z_0 + d`` (α, β > 0): the Eq. 16 point ``z_t = a·z_L + b·ε`` (a + b = 1, a, b ≥ 0)
    gives back ``z_0 = (z_t − a·c − b·d)/(a·α + b·β)``, so ``v(z_t, t) = (z_L − z_0)/T_L`` is a
    function of ``(z_t, t)`` alone."""

    def __init__(self, shape, t_low, seed=5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.t_low = t_low
        self.alpha, self.beta = 0.3 + torch.rand(2, *shape, generator=g, dtype=torch.float64)
        self.c, self.d = torch.randn(2, *shape, generator=g, dtype=torch.float64)

    def pairs(self, n, gen):
        z0 = torch.randn(n, *self.alpha.shape, generator=gen, dtype=torch.float64)
        return FlowBatch(hr=z0, src=self.alpha * z0 + self.c, noise=self.beta * z0 + self.d)

    def forward(self, x, t, r, cond=None):
        tt = t.view(-1, *([1] * (x.ndim - 1)))
        a, b = (1 - tt) / (1 - self.t_low), (tt - self.t_low) / (1 - self.t_low)
        z0 = (x - a * self.c - b * self.d) / (a * self.alpha + b * self.beta)
        return ((self.alpha - 1) * z0 + self.c) / self.t_low


def test_points_of_eq16_hit_the_lr_latent_at_t_low_and_the_noise_at_one(gen):
    b = _batch(gen, n=4)
    n = b.hr.shape[0]
    at_low = trajectory_point(b.src, b.noise, torch.full((n,), T_L, dtype=torch.float64), T_L)
    torch.testing.assert_close(at_low, b.src)
    at_one = trajectory_point(b.src, b.noise, torch.ones(n, dtype=torch.float64), T_L)
    torch.testing.assert_close(at_one, b.noise)
    mid = trajectory_point(b.src, b.noise, torch.full((n,), (1 + T_L) / 2).double(), T_L)
    torch.testing.assert_close(mid, (b.src + b.noise) / 2)


def test_ftd_equals_eq17_rearranged_on_random_tensors(gen):
    b, net = _batch(gen), SmoothNet()
    t = T_L + (1 - T_L) * torch.rand(64, generator=gen, dtype=torch.float64)
    res = _objective()(net, b, t=t)
    # E‖T_L·v_θ(z_t, t) − (z_L − z_0)‖², z_t written out from Eq. 16
    tt = t.view(-1, 1, 1, 1)
    z_t = (1 - tt) / (1 - T_L) * b.src + (tt - T_L) / (1 - T_L) * b.noise
    want = (T_L * net(z_t, t, t) - (b.src - b.hr)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(res.per_sample, want)
    torch.testing.assert_close(res.loss, want.mean())
    assert res.logs["loss_ftd"] > 1e-2 and res.logs["loss_rec"] == 0.0


def test_ftd_is_zero_at_the_oracle_and_positive_off_it(gen):
    """The batch oracle ``v = (z_L − z_0)/T_L`` (for every input) zeroes L_FTD and, its one step
    landing on z_0, L_Rec; the coupling oracle does it as a function of ``(z_t, t)``."""
    b = _batch(gen)
    target = (b.src - b.hr) / T_L

    def batch_oracle(x, t, r, cond=None):
        return target

    obj = _objective(rec=1.0)
    res = obj(batch_oracle, b, generator=torch.Generator().manual_seed(0))
    scale = float((b.src - b.hr).pow(2).mean())
    assert float(res.loss) / scale < 1e-20, res.logs

    oracle = CouplingOracle((3, 4, 4), T_L)
    pairs = oracle.pairs(64, gen)
    res = obj(oracle, pairs, generator=torch.Generator().manual_seed(1))
    assert float(res.loss) < 1e-20, res.logs
    off = obj(SmoothNet(), pairs, generator=torch.Generator().manual_seed(1))
    assert off.logs["loss_ftd"] > 1e-3 and off.logs["loss_rec"] > 1e-3


def test_one_step_output_is_eq18_and_is_what_l_rec_compares(gen):
    b, net = _batch(gen), SmoothNet()
    z0_hat = one_step(net, b.src, T_L)
    t = torch.full((64,), T_L, dtype=torch.float64)
    torch.testing.assert_close(z0_hat, b.src - T_L * net(b.src, t, t))
    obj = _objective(rec=2.0)
    res = obj(net, b, generator=torch.Generator().manual_seed(0))
    rec = (z0_hat - b.hr).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(torch.tensor(res.logs["loss_rec"]).double(), rec.mean())
    ftd = torch.tensor(res.logs["loss_ftd"]).double()
    torch.testing.assert_close(res.loss.detach(), ftd + 2 * rec.mean())


def test_l_rec_decodes_through_the_codec_and_compares_with_the_hr_pixels(gen):
    b, net = _batch(gen), SmoothNet()

    class Doubling:  # a stand-in codec: pixels = 2·latents
        def decode(self, z):
            return 2 * z

    pixels = torch.randn(b.hr.shape, generator=gen, dtype=torch.float64)
    obj = _objective(rec=1.0)
    obj.set_codec(Doubling())
    res = obj(net, dataclasses.replace(b, hr_image=pixels), generator=gen)
    want = (2 * one_step(net, b.src, T_L) - pixels).pow(2).flatten(1).mean(1).mean()
    torch.testing.assert_close(torch.tensor(res.logs["loss_rec"]).double(), want)


def test_tv_lpips_at_gamma_zero_is_mse_plus_lambda_lpips(perceptual_weights, gen):
    """L_Rec = MSE + λ·TV-LPIPS (Eq. 21) with γ = 0 is MSE + λ·LPIPS."""
    net = SmoothNet().float()
    z0, z_low, eps = (torch.rand(3, 2, 3, 32, 32, generator=gen) * 2 - 1).unbind(0)
    b = FlowBatch(hr=z0, src=z_low, noise=eps)
    lam = 0.7
    perc = PerceptualConfig(kind="tv_lpips", weight=lam, tv_gamma=0.0, fallback="none")
    obj = build_objective(
        ObjectiveConfig(
            name="ftd", ftd=FTDConfig(rec=1.0, adl=0.0, distance=DistanceConfig(1.0, perc))
        )
    )
    assert "tv_lpips" in obj.distance.description and "pretrained" in obj.distance.description
    res = obj(net, b, generator=torch.Generator().manual_seed(0))
    x0 = one_step(net, z_low, obj.config.ftd.t_low)
    want = (x0 - z0).pow(2).flatten(1).mean(1) + lam * LPIPSLoss("alex")(x0, z0)
    torch.testing.assert_close(torch.tensor(res.logs["loss_rec"]), want.mean())


def test_adl_reads_the_one_step_forward_only_and_gradients_reach_the_net(gen):
    net = build_net({"type": "small", "channels": 16, "blocks": 2, "concat_source": False})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    net = net.double()
    b = _batch(gen, n=4, shape=(3, 16, 16))
    obj = _objective(rec=1.0, adl=0.5)
    res = obj(net, b, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), capture_tokens(net) as tokens:
        one_step(net, b.src, T_L)
    assert len(tokens) == 2
    want = adl_loss(tokens).mean()
    torch.testing.assert_close(torch.tensor(res.logs["loss_adl"]).double(), want)
    total = res.logs["loss_ftd"] + res.logs["loss_rec"] + 0.5 * res.logs["loss_adl"]
    assert abs(float(res.loss.detach()) - total) < 1e-10
    res.loss.backward()
    assert net.conv_in.weight.grad.abs().sum() > 0
    assert all(not blk._forward_hooks for blk in net.blocks)


def test_times_are_drawn_in_t_low_to_one_from_the_generator(gen):
    obj = _objective()
    t, r, diag = obj.sample_times(1000, torch.Generator().manual_seed(3), "cpu")
    assert float(t.min()) >= T_L and float(t.max()) <= 1 and bool(diag.all())
    assert torch.equal(t, r)
    again = obj.sample_times(1000, torch.Generator().manual_seed(3), "cpu")[0]
    assert torch.equal(t, again)


def test_bad_inputs_are_one_line_errors(gen):
    b, net = _batch(gen, n=4), SmoothNet()
    with pytest.raises(ValueError, match="no noise"):
        _objective()(net, dataclasses.replace(b, noise=None))
    with pytest.raises(ValueError, match=r"t must lie in \[T_L, 1\]"):
        _objective()(net, b, t=torch.full((4,), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="t_low"):
        _objective(t_low=1.0)
    with pytest.raises(ValueError, match="no layer of the network"):
        _objective(adl=0.1)(net, b)  # SmoothNet has no residual blocks to hook


class CountingNet(SmoothNet):
    calls = 0

    def forward(self, x, t, r, cond=None):
        self.calls += 1
        return super().forward(x, t, r, cond)


def test_ftd_weight_scales_the_trajectory_term_and_zero_is_the_rec_only_ablation(gen):
    b, net = _batch(gen), CountingNet()
    full = _objective(rec=2.0)(net, b, generator=torch.Generator().manual_seed(0))
    assert net.calls == 2  # the trajectory point and the one-step generator
    half = _objective(rec=2.0, ftd=0.5)(net, b, generator=torch.Generator().manual_seed(0))
    rec, ftd = full.logs["loss_rec"], full.logs["loss_ftd"]
    assert half.logs["loss_ftd"] == pytest.approx(ftd)
    assert float(half.loss) == pytest.approx(0.5 * ftd + 2 * rec)
    net.calls = 0
    off = _objective(rec=2.0, ftd=0.0)(net, b, generator=torch.Generator().manual_seed(0))
    assert net.calls == 1 and off.logs["loss_ftd"] == 0.0
    assert float(off.loss) == pytest.approx(2 * rec)
    with pytest.raises(ValueError, match="nothing trains the map"):
        _objective(rec=0.0, ftd=0.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        _objective(ftd=-1.0)
