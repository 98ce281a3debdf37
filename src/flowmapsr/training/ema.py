"""Exponential moving average of a model's weights, usable directly as a teacher network.

Written by hand (a few lines) because the maintained alternatives either copy per step through
Python loops (``torch.optim.swa_utils.AveragedModel`` with a custom avg_fn) or live in a
heavier dependency (diffusers' ``EMAModel`` expects diffusers models); this one keeps a module
copy updated with fused ``torch._foreach_lerp_``.

Frozen parameters (``requires_grad=False`` when the EMA is made, e.g. a LoRA run's base weights)
are *shared* with the model, not copied: their average is themselves, and a copy of a frozen
SDXL or FLUX base would double the memory of a LoRA run for nothing.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``shadow ← decay·shadow + (1 − decay)·model`` after each step.

    warmup: effective decay ``min(decay, (1 + n) / (10 + n))`` for update count n, so early EMA
    weights are not dominated by the random initialisation. Buffers are copied, not averaged.
    Parameters frozen at construction are the model's own tensors in the shadow (see the module
    docstring); unfreezing one later does not make it averaged.
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.999, warmup: bool = True, share_frozen=True
    ):
        super().__init__()
        self.decay = decay
        self.warmup = warmup
        # share_frozen=False under FSDP: sharding replaces (and may free) the model's tensors.
        frozen = {id(p): p for p in model.parameters() if share_frozen and not p.requires_grad}
        self.shadow = copy.deepcopy(model, memo=dict(frozen)).eval()
        self.shadow.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        n = int(self.num_updates)
        if self.warmup:
            return min(self.decay, (1 + n) / (10 + n))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = dict(model.named_parameters())
        dst_p, src_p = [], []
        for name, p in self.shadow.named_parameters():
            q = src[name]
            if p is q:  # a frozen weight shared with the model: nothing to average
                continue
            if hasattr(q, "full_tensor"):  # an FSDP2 shard (DTensor): gather (collective)
                q = q.full_tensor()
            if p.is_floating_point():
                dst_p.append(p)
                src_p.append(q.detach().to(p.dtype))
        if dst_p:
            torch._foreach_lerp_(dst_p, src_p, 1.0 - d)
        for (_, b), (_, c) in zip(self.shadow.named_buffers(), model.named_buffers()):
            b.copy_(c)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)
