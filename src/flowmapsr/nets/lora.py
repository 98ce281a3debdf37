"""LoRA adapters on any backbone through peft, with a scale knob for inference.

The adversarial stage trains only these adapters; at inference the LoRA scale moves the output
between the distilled map (scale 0) and the adversarially sharpened one (scale 1, or more).
Reference: Hu et al. 2022 (LoRA, arXiv 2106.09685); FlowMapSR §4.3 (LoRA adversarial fine-tuning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

ADAPTER = "default"


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 8.0
    # Regex over module names; the default hits every 3×3 conv of the small net's blocks.
    targets: str = r".*blocks\.\d+\.conv[12]"
    dropout: float = 0.0
    extra: dict = field(default_factory=dict)
    # Regex (re.search over parameter names) of base weights trained beside the adapters: the
    # zero-initialised inputs a LoRA cannot reach (an adapter's widened first layer for the
    # source latent, its t − r / ω embeddings). "" = adapters only.
    also_train: str = ""


def attach_lora(net: nn.Module, config: LoRAConfig) -> nn.Module:
    """Insert LoRA adapters into ``net`` in place (base weights frozen) and return it."""
    from peft import LoraConfig, inject_adapter_in_model

    peft_cfg = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        target_modules=config.targets,
        lora_dropout=config.dropout,
        **config.extra,
    )
    net = inject_adapter_in_model(peft_cfg, net, adapter_name=ADAPTER)
    also = re.compile(config.also_train) if config.also_train else None
    for name, p in net.named_parameters():
        p.requires_grad_("lora_" in name or (also is not None and bool(also.search(name))))
    return net


def has_lora(net: nn.Module) -> bool:
    return any("lora_" in name for name, _ in net.named_parameters())


def lora_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights (names as in ``net.state_dict()``)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if "lora_" in k}


def base_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone weights without adapters, under the names of the plain (un-adapted) net."""
    out = {}
    for k, v in net.state_dict().items():
        if "lora_" in k:
            continue
        out[k.replace(".base_layer.", ".")] = v
    return out


def set_lora_scale(net: nn.Module, scale: float) -> None:
    """Multiply every adapter's contribution by ``scale`` (0 = off, 1 = as trained)."""
    from peft.tuners.lora import LoraLayer

    for module in net.modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.scaling:
            base = module.lora_alpha[ADAPTER] / module.r[ADAPTER]
            module.scaling[ADAPTER] = base * scale


def merged_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every adapter folded into its base layer at its current scale.

    The copy is the plain backbone (no peft wrappers, gradients off): for inference it costs
    exactly what the un-adapted network costs, while ``net`` itself keeps its adapters so the
    scale can still be changed. Merging uses peft's ``merge`` (W + scale·ΔW in the base layer).
    """
    import copy

    from peft.tuners.lora import LoraLayer

    plain = copy.deepcopy(net)
    targets = [(name, m) for name, m in plain.named_modules() if isinstance(m, LoraLayer)]
    for name, module in targets:
        if ADAPTER in module.lora_A:
            module.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        parent = plain.get_submodule(parent_name) if parent_name else plain
        setattr(parent, child, module.get_base_layer())
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain.eval()


def lora_scales(net: nn.Module) -> tuple[float, ...]:
    """The current scaling of every adapter (a cache key for :func:`merged_copy`)."""
    from peft.tuners.lora import LoraLayer

    return tuple(
        float(m.scaling[ADAPTER])
        for m in net.modules()
        if isinstance(m, LoraLayer) and ADAPTER in m.scaling
    )
