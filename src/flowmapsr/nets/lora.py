"""LoRA adapters on any backbone through peft, with a scale knob for inference.

The adversarial stage trains only these adapters; at inference the LoRA scale moves the output
between the distilled map (scale 0) and the adversarially sharpened one (scale 1, or more).
Reference: Hu et al. 2022 (LoRA, arXiv 2106.09685); FlowMapSR §4.3 (LoRA adversarial fine-tuning).

peft is a training dependency (``pip install 'flowmapsr[train]'``). Inference does not need it:
:func:`attach_lora_for_inference` (what a pipeline folder loads with) uses :class:`PlainLoRA`,
a frozen base layer plus one adapter pair under peft's parameter names (so one
``lora.safetensors`` serves both), and :func:`merged_copy` folds it in with exactly the torch
operations of peft's merge (the same bits).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

ADAPTER = "default"
TRAIN_HINT = "pip install 'flowmapsr[train]'"


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
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ImportError(f"LoRA adapters need peft here: {TRAIN_HINT}") from None

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


class PlainLoRA(nn.Module):
    """A frozen ``nn.Conv2d`` / ``nn.Linear`` plus one LoRA pair, for inference without peft.

    The attributes and parameter names are peft's (``base_layer``, ``lora_A.default``,
    ``lora_B.default``, ``r``, ``lora_alpha``, ``scaling``), so state dicts, the scale knob and
    :func:`merged_copy` treat both alike. Conv: ``A`` is ``(r, C_in, k, k)`` with the base's
    stride and padding, ``B`` is ``(C_out, r, 1, 1)``; linear: ``A`` is ``(r, in)``, ``B`` is
    ``(out, r)``.
    ``forward`` is ``base(x) + scaling · B(A(x))`` (no dropout: it is for eval only).
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        if isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise ValueError("LoRA on a grouped convolution cannot be merged")
            a = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                          bias=False)  # fmt: skip
            b = nn.Conv2d(rank, base.out_channels, 1, 1, bias=False)
        elif isinstance(base, nn.Linear):
            a = nn.Linear(base.in_features, rank, bias=False)
            b = nn.Linear(rank, base.out_features, bias=False)
        else:
            raise ValueError(f"LoRA without peft supports Conv2d and Linear, not {type(base)}")
        nn.init.zeros_(b.weight)  # as peft: a fresh adapter changes nothing
        self.base_layer = base
        self.lora_A = nn.ModuleDict({ADAPTER: a.to(base.weight)})
        self.lora_B = nn.ModuleDict({ADAPTER: b.to(base.weight)})
        self.r = {ADAPTER: rank}
        self.lora_alpha = {ADAPTER: alpha}
        self.scaling = {ADAPTER: alpha / rank}  # peft's (no rsLoRA)
        self.requires_grad_(False)

    def get_base_layer(self) -> nn.Module:
        return self.base_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lora = self.lora_B[ADAPTER](self.lora_A[ADAPTER](x.to(self.lora_A[ADAPTER].weight.dtype)))
        return self.base_layer(x) + (lora * self.scaling[ADAPTER]).to(x.dtype)


def attach_lora_for_inference(net: nn.Module, config: LoRAConfig) -> nn.Module:
    """Like :func:`attach_lora` (in place), for loading a trained adapter to run it.

    Every ``Conv2d`` / ``Linear`` the target regex matches (whole name, peft's rule) becomes a
    :class:`PlainLoRA` (all weights frozen): no peft import, so a slim install runs LoRA models,
    and :func:`merged_copy` gives the same bits as with peft. Configs only peft can express
    (``extra`` options, other layer types) go through peft (an ``ImportError`` without it).
    """
    hits = [(n, m) for n, m in net.named_modules() if n and re.fullmatch(config.targets, n)]
    if config.extra or any(not isinstance(m, (nn.Conv2d, nn.Linear)) for _, m in hits):
        return attach_lora(net, config)
    if not hits:
        raise ValueError(f"LoRA targets '{config.targets}' match no Conv2d/Linear of the network")
    for name, module in hits:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, PlainLoRA(module, config.rank, config.alpha))
    return net


def _lora_layers(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every adapted layer with our adapter: peft's ``LoraLayer``s and
    :class:`PlainLoRA`s (told apart from other modules by peft's attributes, so this needs no
    peft import)."""
    for name, m in net.named_modules():
        scaling = getattr(m, "scaling", None)
        if isinstance(getattr(m, "lora_A", None), nn.ModuleDict) and isinstance(scaling, dict):
            if ADAPTER in scaling and ADAPTER in m.lora_A:
                yield name, m


def delta_weight(module: nn.Module) -> torch.Tensor:
    """``scaling · ΔW`` of an adapted layer, the base weight's shape, by peft's own operations.

    peft 0.21 ``get_delta_weight``: linear ``(B @ A) · s``; 1×1 conv the same on squeezed
    weights; k×k conv ``conv2d(Aᵀ, B)ᵀ · s`` (``A`` transposed to ``(C_in, r, k, k)`` as a
    batch, ``B`` as the kernel); fp16/bf16 weights on a CPU computed in fp32 and cast back.
    Same operations in the same order, so the merged weights match peft's bit for bit.
    """
    base = module.get_base_layer()
    weight_a, weight_b = module.lora_A[ADAPTER].weight, module.lora_B[ADAPTER].weight
    scaling = module.scaling[ADAPTER]
    conv = isinstance(base, nn.Conv2d)
    # peft reads the dtype from A for convs, from B for linears; the device from B.
    dtype = (weight_a if conv else weight_b).dtype
    cast = weight_b.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16)
    if cast:
        weight_a, weight_b = weight_a.float(), weight_b.float()
    if not conv:
        out = (weight_b @ weight_a) * scaling
    elif base.weight.size()[2:4] == (1, 1):
        out = (weight_b.squeeze(3).squeeze(2) @ weight_a.squeeze(3).squeeze(2)).unsqueeze(
            2
        ).unsqueeze(3) * scaling
    else:
        out = F.conv2d(weight_a.transpose(0, 1), weight_b).transpose(0, 1) * scaling
    return out.to(dtype=dtype) if cast else out


def set_lora_scale(net: nn.Module, scale: float) -> None:
    """Multiply every adapter's contribution by ``scale`` (0 = off, 1 = as trained)."""
    for _, module in _lora_layers(net):
        base = module.lora_alpha[ADAPTER] / module.r[ADAPTER]
        module.scaling[ADAPTER] = base * scale


def merged_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every adapter folded into its base layer at its current scale.

    The copy is the plain backbone (no adapter wrappers, gradients off): for inference it costs
    exactly what the un-adapted network costs, while ``net`` itself keeps its adapters and
    unmerged base weights, so a new scale re-merges from those. peft layers merge with peft's
    ``merge``, :class:`PlainLoRA` with ``W += delta_weight`` (peft's unsafe merge, same bits).
    """
    plain = copy.deepcopy(net)
    for name, module in list(_lora_layers(plain)):
        if isinstance(module, PlainLoRA):
            module.base_layer.weight.data += delta_weight(module)
        else:
            module.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        parent = plain.get_submodule(parent_name) if parent_name else plain
        setattr(parent, child, module.get_base_layer())
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain.eval()


def lora_scales(net: nn.Module) -> tuple[float, ...]:
    """The current scaling of every adapter (a cache key for :func:`merged_copy`)."""
    return tuple(float(m.scaling[ADAPTER]) for _, m in _lora_layers(net))
