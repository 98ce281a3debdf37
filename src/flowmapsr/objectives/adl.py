"""The attention diversification loss (ADL) of FluxSR: how alike a layer's output tokens are.

For a layer ``l`` with output tokens ``A_1 … A_N`` (``C`` features each) and their mean
``Ā = (1/N)·Σ_i A_i`` (seed 003 Eq. 22)::

    ADL^(l) = (1/N)·Σ_i cos(A_i, Ā),        ADL = (1/L)·Σ_l ADL^(l)          (Eq. 23)

1 when every token is the same vector (FluxSR's periodic artifacts: tokens sharing components),
lower as they spread; minimising it pushes the tokens apart. It is not bounded below by 0: only
``Σ_i ‖A_i‖·cos(A_i, Ā) = N·‖Ā‖ ≥ 0`` holds, so small-norm tokens pointing away from the mean
make it negative (keep its weight μ small; see :mod:`.ftd`). Computed per sample ``(B,)`` in at
least float32, then averaged over the batch by the objective.

The features are read with forward hooks, so any network works whose layers can be named:

- the FLUX adapter (:mod:`flowmapsr.nets.flux_adapter`): the outputs of
  ``backbone.transformer_blocks.<i>`` and ``backbone.single_transformer_blocks.<i>``. In
  diffusers 0.42 both block types return the tuple ``(encoder_hidden_states,
  hidden_states)``; ADL reads the image tokens ``hidden_states`` ``(B, N, C)`` (the last
  element), not the text tokens.
- the UNet adapter (:mod:`flowmapsr.nets.unet_adapter`, SD 2.1 / SDXL): the outputs
  ``(B, h·w, C)`` of the ``BasicTransformerBlock`` s inside its attention stages.
- the small conv net (:mod:`flowmapsr.nets.small`): the outputs ``(B, C, H, W)`` of its
  residual blocks ``blocks.<i>``, taken as ``H·W`` tokens of ``C`` features — each spatial
  position of the (pixel-unshuffled) feature map is a token, so ADL there measures how alike
  the feature vectors at different positions are. A conv net has no attention: the loss is the
  same formula on its features, not a statement about attention.

A ``(B, C, H, W)`` output is always read as ``H·W`` tokens of ``C`` features, a ``(B, N, C)``
output as ``N`` tokens; a tuple output contributes its last element.
Reference: FluxSR (Li et al., ICML 2025), seed 003 Eq. 22–23, after Guo et al. 2023.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

# Default layers per backbone (``re.fullmatch`` over ``named_modules`` names; the optional
# ``.*\.`` prefix admits wrappers such as DDP's ``module.`` or torch.compile's ``_orig_mod.``).
ADL_LAYERS = {
    "small": r"(?:.*\.)?blocks\.\d+",
    "flux": r"(?:.*\.)?backbone\.(?:single_)?transformer_blocks\.\d+",
    "unet": r"(?:.*\.)?backbone\.(?:down_blocks\.\d+|mid_block|up_blocks\.\d+)"
    r"\.attentions\.\d+\.transformer_blocks\.\d+",
}
AUTO = "(?:" + "|".join(ADL_LAYERS.values()) + ")"


def layer_pattern(layers: str) -> str:
    """``auto`` → the union of :data:`ADL_LAYERS`; a backbone name → its regex; else as given."""
    if layers == "auto":
        return AUTO
    return ADL_LAYERS.get(layers, layers)


def as_tokens(output) -> torch.Tensor:
    """A layer's output as tokens ``(B, N, C)``: a tuple's last element; ``(B, C, H, W)`` →
    ``(B, H·W, C)``; ``(B, N, C)`` as is."""
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if not torch.is_tensor(output):
        raise TypeError(f"ADL: a hooked layer returned {type(output).__name__}, not a tensor")
    if output.ndim == 4:
        return output.flatten(2).transpose(1, 2)
    if output.ndim == 3:
        return output
    raise ValueError(
        f"ADL: a hooked layer returned shape {tuple(output.shape)}; "
        "expected (B, C, H, W) or (B, N, C)"
    )


def token_similarity(tokens: torch.Tensor) -> torch.Tensor:
    """Eq. 22–23 for one layer: ``(B, N, C) → (B,)``, the mean over tokens of ``cos(A_i, Ā)``."""
    a = tokens.to(torch.promote_types(tokens.dtype, torch.float32))
    mean = a.mean(dim=1, keepdim=True)
    return F.cosine_similarity(a, mean.expand_as(a), dim=-1, eps=1e-8).mean(dim=1)


def adl_loss(layer_tokens: list[torch.Tensor]) -> torch.Tensor:
    """ADL per sample ``(B,)``: :func:`token_similarity` averaged over the layers."""
    if not layer_tokens:
        raise ValueError("ADL: no layer output was recorded")
    return torch.stack([token_similarity(t) for t in layer_tokens]).mean(dim=0)


#: The end of capture_tokens' error for FluxSR's objective (its config keys).
FTD_FIX = "set objective.ftd.adl_layers to a regex of its module names, or objective.ftd.adl=0"


def find_layers(net: nn.Module, layers: str = "auto") -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of ``net``'s modules whose names fully match ``layer_pattern(layers)``
    (empty where none does, or ``net`` is not a module)."""
    regex = re.compile(layer_pattern(layers))
    modules = net.named_modules() if isinstance(net, nn.Module) else ()
    return [(name, m) for name, m in modules if regex.fullmatch(name)]


@contextmanager
def capture_tokens(
    net: nn.Module,
    layers: str = "auto",
    fix: str = FTD_FIX,
) -> Iterator[list[torch.Tensor]]:
    """Record, as tokens ``(B, N, C)``, the outputs of ``net``'s modules whose names fully match
    ``layer_pattern(layers)``, for every forward run inside the ``with`` block; the hooks are
    removed on exit (so other forwards, and a checkpointed block's recomputation in backward,
    record nothing). The recorded tensors keep their graph: ADL's gradient reaches the net.
    ``fix`` ends the error where no layer matches (what the caller's config should change)."""
    chosen = [m for _, m in find_layers(net, layers)]
    if not chosen:
        raise ValueError(
            f"ADL: no layer of the network ({type(net).__name__}) matches "
            f"'{layer_pattern(layers)}'; {fix}"
        )
    recorded: list[torch.Tensor] = []

    def hook(module, args, output):
        recorded.append(as_tokens(output))

    handles = [m.register_forward_hook(hook) for m in chosen]
    try:
        yield recorded
    finally:
        for h in handles:
            h.remove()
