"""What the diffusers adapters (``unet_adapter``, ``flux_adapter``) share.

- :class:`PromptEmbeds`: the text condition of a diffusers backbone (token embeddings, pooled
  embedding, mask, SDXL's ``add_time_ids``). It rides in ``Condition.prompt`` and indexes like a
  tensor, so ``Condition.index`` picks sub-batches of it.
- :class:`ExtraTimeEmbedding`: the zero-initialised embeddings of ``t − r`` and ω that the
  adapters add to the backbone's own time embedding (a forward hook on the backbone's
  time-embedding module, so the backbone's parameter names — and pretrained checkpoints and
  LoRA target names — stay as diffusers has them).
- :func:`widen_input`: a first layer (``Conv2d`` or ``Linear``) with extra, zero-initialised
  input channels for the source latent: at init the widened layer computes what the original
  did, whatever the extra channels hold.
- :func:`attention_context`: JVP safety. Forward-mode AD has no rule for the fused CPU SDPA
  kernel (``_scaled_dot_product_flash_attention_for_cpu``, torch 2.13), nor for the flash /
  memory-efficient CUDA kernels; the math SDPA backend has one. The adapters switch to it when a
  forward tangent is present (``torch.func.jvp`` or ``torch.autograd.forward_ad``).
- :func:`load_backbone`: ``from_pretrained`` of a local diffusers folder, or ``from_single_file``
  of an original checkpoint, never touching the network.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.autograd.forward_ad as fwAD
import torch.utils.checkpoint
from torch import nn

from flowmapsr.nets.embeddings import sinusoidal

ATTENTION_MODES = ("auto", "math", "default")


@dataclass
class PromptEmbeds:
    """Text condition of a diffusers backbone; every tensor has the batch first.

    tokens: ``(B, L, D)`` per-token embeddings (``encoder_hidden_states``).
    pooled: ``(B, P)`` pooled embedding (SDXL ``text_embeds``, FLUX ``pooled_projections``).
    mask: ``(B, L)`` 1 = attend, 0 = padding (None = attend to all).
    time_ids: ``(B, 6)`` SDXL micro-conditioning (orig h, w, crop top, left, target h, w).
    A batch of 1 broadcasts over any batch (one cached prompt for the whole batch).
    """

    tokens: torch.Tensor
    pooled: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def _map(self, fn) -> PromptEmbeds:
        return PromptEmbeds(**{f.name: _maybe(fn, getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, idx) -> PromptEmbeds:
        """A sub-batch (``idx``: bool mask, index tensor or slice), as ``Condition.index`` asks."""
        if self.batch == 1:  # a broadcast prompt stays broadcast
            return self
        return self._map(lambda v: v[idx])

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    def expand_to(self, n: int) -> PromptEmbeds:
        """The same condition with batch ``n`` (a batch-1 condition is broadcast)."""
        if self.batch == n:
            return self
        if self.batch != 1:
            raise ValueError(f"prompt embeddings have batch {self.batch}, the latents {n}")
        return self._map(lambda v: v.expand(n, *v.shape[1:]))

    def to(self, *args, **kw) -> PromptEmbeds:
        """``Tensor.to`` on the float tensors (the mask keeps its dtype, moves device only)."""
        out = self._map(lambda v: v.to(*args, **kw) if v.is_floating_point() else v)
        if out.mask is not None:
            out.mask = out.mask.to(out.tokens.device)
        return out

    @classmethod
    def cat(cls, parts: list[PromptEmbeds]) -> PromptEmbeds:
        """Concatenate along the batch (all parts must carry the same optional fields)."""
        kw = {}
        for f in fields(cls):
            vals = [getattr(p, f.name) for p in parts]
            if all(v is None for v in vals):
                kw[f.name] = None
            elif any(v is None for v in vals):
                raise ValueError(f"cannot concatenate prompt embeddings with and without {f.name}")
            else:
                kw[f.name] = torch.cat(vals, 0)
        return cls(**kw)


def _maybe(fn, v):
    return None if v is None else fn(v)


def prompt_embeds(prompt, n: int, dtype: torch.dtype, who: str) -> PromptEmbeds:
    """``Condition.prompt`` as :class:`PromptEmbeds` of batch ``n`` in ``dtype``.

    A bare ``(B, L, D)`` tensor is taken as the token embeddings. Integer prompt ids (the small
    net's null / pos / neg) and None are refused: a diffusers backbone needs text embeddings,
    which the prompt bank computes.
    """
    if isinstance(prompt, torch.Tensor) and prompt.is_floating_point() and prompt.ndim == 3:
        prompt = PromptEmbeds(tokens=prompt)
    if not isinstance(prompt, PromptEmbeds):
        got = (
            "None" if prompt is None else f"{type(prompt).__name__} {getattr(prompt, 'dtype', '')}"
        )
        raise ValueError(
            f"{who} needs text embeddings in cond.prompt (PromptEmbeds or a (B, L, D) float "
            f"tensor from the prompt bank), got {got}"
        )
    return prompt.expand_to(n).to(dtype)


class ExtraTimeEmbedding(nn.Module):
    """Zero-initialised embeddings of ``t − r`` and ω, ``(B,) → (B, out_dim)``.

    Each is sinusoidal features (``freq_dim``) then Linear–SiLU–Linear with the last layer zero:
    at init the sum is exactly 0, so the adapter equals its backbone; gradients still reach the
    last layer (its input is not zero), so both inputs start learning on the first step.
    ``t − r`` uses the backbone's timestep scale (a gap of 1 spans as many periods as t does);
    ω enters as ``ω − 1`` scaled by ``omega_scale`` (ω = 1, no guidance, embeds to the zero vector
    of a zero-initialised layer either way).
    """

    def __init__(
        self,
        out_dim: int,
        freq_dim: int = 256,
        gap_scale: float = 1000.0,
        omega_scale: float = 100.0,
    ):
        super().__init__()
        self.freq_dim, self.gap_scale, self.omega_scale = freq_dim, gap_scale, omega_scale
        self.gap = self._mlp(freq_dim, out_dim)
        self.omega = self._mlp(freq_dim, out_dim)

    @staticmethod
    def _mlp(d_in: int, d_out: int) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.SiLU(), nn.Linear(d_out, d_out))
        nn.init.zeros_(mlp[-1].weight)
        nn.init.zeros_(mlp[-1].bias)
        return mlp

    def forward(self, gap: torch.Tensor, omega: torch.Tensor | None) -> torch.Tensor:
        dtype = self.gap[0].weight.dtype
        e = self.gap(sinusoidal(gap, self.freq_dim, self.gap_scale).to(dtype))
        if omega is not None:
            e = e + self.omega(sinusoidal(omega - 1.0, self.freq_dim, self.omega_scale).to(dtype))
        return e


class AddToOutput:
    """A forward hook that adds a per-call tensor to a module's output.

    The adapter sets :attr:`value` just before calling the backbone and clears it after; the hook
    adds it to the output of the backbone's time-embedding module, which is where the backbone
    sums its own conditioning (SDXL adds its text_time embedding after this point).
    """

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, output):
        if self.value is None:
            return output
        return output + self.value.to(output.dtype)

    @contextlib.contextmanager
    def adding(self, value: torch.Tensor):
        self.value = value
        try:
            yield
        finally:
            self.value = None


def widen_input(layer: nn.Module, extra: int) -> nn.Module:
    """A copy of ``layer`` (``Conv2d`` or ``Linear``) taking ``extra`` more input channels, the
    new weights zero: ``new(cat(x, s)) == layer(x)`` for any ``s`` at init."""
    w = layer.weight.detach()
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(
            layer.in_channels + extra,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            layer.bias is not None,
            layer.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
    elif isinstance(layer, nn.Linear):
        new = nn.Linear(
            layer.in_features + extra,
            layer.out_features,
            layer.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
    else:
        raise TypeError(f"cannot widen a {type(layer).__name__} (Conv2d or Linear only)")
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : w.shape[1]].copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def has_forward_tangent(*tensors) -> bool:
    """Whether any of ``tensors`` carries a forward-mode tangent (inside ``torch.func.jvp`` or a
    ``forward_ad.dual_level``); None entries are skipped."""
    for v in tensors:
        if isinstance(v, torch.Tensor) and fwAD.unpack_dual(v).tangent is not None:
            return True
    return False


# The SDPA choice of the backbone call in progress (per thread), for checkpoint_block.
_SDPA = threading.local()


@contextlib.contextmanager
def attention_context(mode: str, *tensors):
    """The SDPA backend context for one backbone call.

    ``math``: always the math backend; ``default``: whatever torch picks (fastest, not
    forward-differentiable on CPU/flash); ``auto``: math exactly when a forward tangent is
    present in ``tensors`` (pass the inputs and one backbone parameter, so tangents on weights
    count too). The choice is recorded for :func:`checkpoint_block`.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode '{mode}' is not one of {ATTENTION_MODES}")
    math = mode == "math" or (mode == "auto" and has_forward_tangent(*tensors))
    before = getattr(_SDPA, "math", False)
    _SDPA.math = math
    try:
        with sdpa_kernel(SDPBackend.MATH) if math else contextlib.nullcontext():
            yield
    finally:
        _SDPA.math = before


def checkpoint_block(module: nn.Module, *args):
    """diffusers' ``gradient_checkpointing_func`` for our adapters: torch's non-reentrant
    checkpoint whose recomputation (in backward, after :func:`attention_context` has exited)
    runs under the SDPA backend the forward used. Without this a math-backend forward (the
    ``math`` mode, or ``auto`` under forward AD) is recomputed with the default kernel, which
    saves other tensors: torch raises ``CheckpointError`` in backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    math = getattr(_SDPA, "math", False)

    def contexts():
        again = sdpa_kernel(SDPBackend.MATH) if math else contextlib.nullcontext()
        return contextlib.nullcontext(), again

    return torch.utils.checkpoint.checkpoint(
        module.__call__, *args, use_reentrant=False, context_fn=contexts
    )


#: Adapter config fields that change how the backbone computes, not its weights: a stage that
#: starts from an export (``init_from``) takes these from its own config.
RUNTIME_FIELDS = ("gradient_checkpointing", "attention")


class RuntimeSettable:
    """Mixin of the diffusers adapters: :meth:`set_runtime` changes :data:`RUNTIME_FIELDS` of a
    built adapter (``self.config`` and ``self.backbone``)."""

    def set_runtime(self, **fields) -> None:
        unknown = set(fields) - set(RUNTIME_FIELDS)
        if unknown:
            raise ValueError(f"set_runtime: {sorted(unknown)} are not runtime fields")
        if fields.get("attention", "auto") not in ATTENTION_MODES:
            raise ValueError(
                f"attention mode '{fields['attention']}' is not one of {ATTENTION_MODES}"
            )
        if "gradient_checkpointing" in fields:
            if fields["gradient_checkpointing"]:
                self.backbone.enable_gradient_checkpointing(checkpoint_block)
            else:
                self.backbone.disable_gradient_checkpointing()
        self.config = replace(self.config, **fields)


#: dtype names a config may give (``load_dtype``, ``TrainConfig.frozen_dtype``).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str | None) -> torch.dtype | None:
    """``"bfloat16"`` → ``torch.bfloat16`` (None stays None); an unknown name is a one-line
    error listing :data:`DTYPES`."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"dtype '{name}' is not one of {', '.join(DTYPES)}")
    return DTYPES[name]


def load_backbone(
    cls,
    pretrained: str,
    subfolder: str,
    weights_variant: str | None,
    single_file_config: str | None,
    dtype: torch.dtype | None = None,
):
    """A diffusers model of class ``cls`` from local files only.

    ``pretrained``: a diffusers folder (``model_index.json`` + ``<subfolder>/config.json`` and
    weights, as ``save_pretrained`` / ``snapshot_download`` leave it; a folder that is itself the
    model's folder works too), or a single original checkpoint file (``.safetensors`` /
    ``.ckpt``), read with ``from_single_file`` and the architecture from ``single_file_config``
    (a local diffusers folder) — without it diffusers would look the config up online.
    """
    path = Path(pretrained).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: pretrained backbone not found (a local diffusers folder "
            "or a single checkpoint file)"
        )
    kw = {"torch_dtype": dtype} if dtype is not None else {}
    if path.is_dir():
        sub = subfolder if (path / subfolder / "config.json").is_file() else None
        if sub is None and not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path}: no {subfolder}/config.json nor config.json — not a diffusers model folder"
            )
        return cls.from_pretrained(
            path, subfolder=sub, variant=weights_variant, local_files_only=True, **kw
        )
    if single_file_config is None:
        raise ValueError(
            f"{path}: a single-file checkpoint needs single_file_config (a local "
            "diffusers folder with the model's config); nothing is downloaded"
        )
    return cls.from_single_file(
        str(path), config=single_file_config, subfolder=subfolder, local_files_only=True, **kw
    )


def architecture(backbone: nn.Module) -> dict:
    """The backbone's diffusers config as a plain dict (no private ``_`` keys), enough to rebuild
    it with random weights (``from_config``) before loading a saved state dict."""
    out = {}
    for k, v in dict(backbone.config).items():
        if k.startswith("_"):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
