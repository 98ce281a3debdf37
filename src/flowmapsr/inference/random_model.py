"""Random-weight pipelines for tests, benchmarks and demos when no trained model is at hand.

A freshly built small net is nearly the identity map: its residual branches, FiLM layers and
the t − r / ω / prompt embeddings are zero-initialised, so tiling or precision checks on it could
not fail. :func:`random_pipeline` re-draws *every* parameter (zero-initialised ones included)
from a seeded generator and rescales the output layer so the network's update ``u`` has a
chosen standard deviation on a natural-ish input: outputs then differ from the bicubic source
by a visible, content-dependent amount, like a trained model's.
"""

from __future__ import annotations

import torch

from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import build_net


def _test_image(generator: torch.Generator, size: int = 64) -> torch.Tensor:
    """``(1, 3, size, size)`` in ``[-1, 1]``: smooth blobs plus fine noise (textured content)."""
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=generator)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    img = img + 0.1 * torch.randn(1, 3, size, size, generator=generator)
    return (img.clamp(0, 1) * 2 - 1).contiguous()


@torch.no_grad()
def randomize_net(net: torch.nn.Module, generator: torch.Generator, u_std: float = 0.15) -> None:
    """Re-draw every parameter of a small net in place (see module docstring)."""
    for name, p in net.named_parameters():
        if p.ndim >= 2:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=generator) / fan_in**0.5)
        else:
            p.copy_(0.05 * torch.randn(p.shape, generator=generator))
        if name.endswith("conv2.weight"):  # residual branches: keep a deep stack stable
            p.mul_(0.3)
    x = _test_image(generator)
    n = x.shape[0]
    t = torch.ones(n)
    from flowmapsr.flowmap import PROMPT_POS, Condition

    cond = Condition(
        prompt=torch.full((n,), PROMPT_POS, dtype=torch.long),
        omega=torch.ones(n),
        source=x,
    )
    u = net(x, t, torch.zeros(n), cond)
    out_layer = getattr(net, "conv_out", None)
    if out_layer is not None and float(u.std()) > 0:
        k = u_std / float(u.std())
        out_layer.weight.mul_(k)
        out_layer.bias.mul_(k)


def random_pipeline(
    net: dict | None = None,
    seed: int = 0,
    source_noise: float = 0.0,
    u_std: float = 0.15,
) -> SRPipeline:
    """An :class:`SRPipeline` around a randomised small net (``net``: its config dict)."""
    cfg = PipelineConfig(
        net=dict(net or {"type": "small"}),
        source_noise=source_noise,
        info={"random_weights": True, "seed": seed},
    )
    model = build_net(cfg.net)
    randomize_net(model, torch.Generator().manual_seed(int(seed)), u_std=u_std)
    return SRPipeline(model, cfg)
