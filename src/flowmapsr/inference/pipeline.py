"""The SR pipeline: a backbone + how to run it, saved as a folder and loaded back.

A pipeline folder holds ``config.json`` (the :class:`PipelineConfig`: backbone config, codec
config, LoRA config, inference defaults, provenance) and ``model.safetensors`` (backbone
weights), plus ``lora.safetensors`` when LoRA adapters were trained and ``codec.safetensors``
when the codec has weights (a VAE; its config then holds the full architecture, so the folder
needs nothing else). Weights are loaded with safetensors only.
``SRPipeline.from_pretrained(None)`` loads the model built into the package.

The flow runs in the codec's space (:mod:`flowmapsr.codecs`): source → ``encode`` → flow-map
jumps → ``decode``. The identity codec (the default, and what a ``config.json`` without a
``codec`` key means) runs on pixels exactly as before codecs existed. Tiling stays in LR pixels
(:mod:`flowmapsr.inference.tiling`): an LR tile of ``t`` is an HR tile of ``t·s`` pixels and a
latent tile of ``t·s / f``; HR tile positions are multiples of ``f`` (``size_multiple``).

Scales: the network never sees the scale factor. An integer scale the model was trained for
(``config.scales``) runs directly; any other factor ≥ 1 runs at the smallest trained scale above
it (or the largest one) and the result is resized with bicubic to ``round(h·scale)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from flowmapsr.atomic import atomic_write_bytes
from flowmapsr.codecs import Codec, build_codec
from flowmapsr.config import from_dict, to_dict
from flowmapsr.convert import unit_to_model
from flowmapsr.flowmap import PROMPT_NEG, PROMPT_POS, Condition
from flowmapsr.inference.solvers import SOLVERS, prompt_cfg, time_grid
from flowmapsr.inference.tiling import upscale_tiled
from flowmapsr.nets import NETS, build_net, size_multiple
from flowmapsr.nets.lora import (
    LoRAConfig,
    attach_lora_for_inference,
    base_state_dict,
    has_lora,
    lora_scales,
    lora_state_dict,
    merged_copy,
    set_lora_scale,
)
from flowmapsr.resize import imresize, upsample_source

CONFIG_NAME, WEIGHTS_NAME, LORA_NAME = "config.json", "model.safetensors", "lora.safetensors"
CODEC_NAME = "codec.safetensors"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "weights" / "default"


@dataclass
class PipelineConfig:
    net: dict = field(default_factory=lambda: {"type": "small"})
    # Where the flow runs (flowmapsr.codecs): identity = pixels; a VAE's architecture is stored
    # here with its weights in codec.safetensors.
    codec: dict = field(default_factory=lambda: {"type": "identity"})
    lora: LoRAConfig | None = None
    lora_scale: float = 1.0  # default adapter scale at inference
    scales: list[int] = field(default_factory=lambda: [2, 4, 8])  # scales it was trained for
    steps: int = 1  # default NFE
    guidance: float = 1.0  # default ω
    grid: str = "uniform"  # time grid kind (see solvers.time_grid)
    solver: str = "flowmap"  # a name of solvers.SOLVERS (consistency: FlowSR stage-2 models)
    # Positive/negative prompt CFG with two evaluations per step (FlowSR's; 1 = off, 1 NFE).
    cfg_scale: float = 1.0
    source_noise: float = 0.0  # σ of Gaussian noise added to the upsampled LR at t = 1
    # The source's time on the model's path: 1 (the LR end, FlowMapSR / FlowSR) or FluxSR's T_L,
    # where the LR latent sits between the image (0) and noise (1); the grid runs from it to 0.
    source_time: float = 1.0
    # HR pixels of reflect padding around the image at inference (tiling.py). 8 rather than more:
    # on RealSR (30 images) and Set14 the 1-NFE PSNR-Y is the same within 0.005 dB for 0, 8, 16
    # and 32, while 32 costs 27 % more time on a 512² output.
    border_pad: int = 8
    # Named points on the perception–distortion plane, measured for this model: mode name
    # (``MODES``) → knob values (any of ``MODE_KNOBS``); unset knobs keep the defaults above.
    # A model without them has only ``balanced`` = its defaults.
    modes: dict[str, dict] = field(default_factory=dict)
    # What precision ``auto`` runs on a CPU with fast bf16 kernels (AVX-512 BF16 / AMX): a model
    # says ``bf16`` once its bf16 cost was measured (≤ 0.05 dB PSNR-Y on the bench sets for the
    # built-in model); ``fp32`` (the default) keeps such a CPU on fp32. GPUs run fp32 under auto.
    cpu_precision: str = "fp32"
    info: dict = field(default_factory=dict)  # provenance: recipe, steps, data, wall time …


#: The fidelity ↔ realism choice, most faithful first; ``balanced`` is the default.
MODES = ("fidelity", "balanced", "realism")
DEFAULT_MODE = "balanced"
MODE_KNOBS = ("steps", "guidance", "lora_scale")


def check_modes(modes: dict, where: str = "config") -> None:
    """``ValueError`` naming ``where`` unless every mode name and knob is known and sane."""
    for name, knobs in modes.items():
        if name not in MODES:
            raise ValueError(f"{where}: unknown mode '{name}' (modes: {', '.join(MODES)})")
        if not isinstance(knobs, dict) or set(knobs) - set(MODE_KNOBS):
            raise ValueError(
                f"{where}: mode '{name}' must map {', '.join(MODE_KNOBS)} to values, got {knobs!r}"
            )
        if "steps" in knobs and int(knobs["steps"]) < 1:
            raise ValueError(f"{where}: mode '{name}' has steps {knobs['steps']} < 1")


def mode_knobs(
    config: PipelineConfig,
    mode: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    lora_scale: float | None = None,
) -> dict:
    """The knobs a run uses: explicit values, else ``mode``'s, else the model's defaults.

    ``mode`` None means ``balanced``. Asking for a mode the model does not define is a
    ``ValueError`` naming the modes it has (``balanced`` always exists: the defaults).
    """
    name = DEFAULT_MODE if mode is None else mode
    if name not in MODES:
        raise ValueError(f"unknown mode '{name}'; choose from {', '.join(MODES)}")
    if name not in config.modes and name != DEFAULT_MODE:
        have = ", ".join(sorted({DEFAULT_MODE, *config.modes}))
        raise ValueError(f"this model defines no '{name}' mode (it has: {have})")
    base = {k: getattr(config, k) for k in MODE_KNOBS}
    base.update(config.modes.get(name, {}))
    given = {"steps": steps, "guidance": guidance, "lora_scale": lora_scale}
    base.update({k: v for k, v in given.items() if v is not None})
    return {"steps": int(base["steps"]), "guidance": float(base["guidance"]),
            "lora_scale": float(base["lora_scale"])}  # fmt: skip


def model_scale_for(scale: float, scales: list[int] | tuple[int, ...]) -> int:
    """The integer scale the network runs at for a requested factor (see module docstring)."""
    if not scale >= 1:
        raise ValueError(f"scale must be ≥ 1, got {scale}")
    trained = sorted(int(s) for s in scales) or [4]
    if float(scale).is_integer() and int(scale) in trained:
        return int(scale)
    above = [s for s in trained if s >= scale]
    return above[0] if above else trained[-1]


def output_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """``(round(h·scale), round(w·scale))``, at least 1 pixel each."""
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def _check_channels(net: torch.nn.Module, codec: Codec) -> None:
    """A one-line error when the backbone's input channels are not the codec's latent channels
    (read from the registry's per-sample input shape, not from backbone fields)."""
    cfg = getattr(net, "config", None)
    spec = NETS.get(getattr(cfg, "type", None))
    if spec is None or not isinstance(cfg, spec.config_cls):
        return
    shape = spec.sample_shape(cfg)
    if len(shape) == 3 and shape[0] != codec.channels:
        raise ValueError(
            f"the network takes {shape[0]}-channel inputs but codec '{codec.config.type}' "
            f"has {codec.channels} latent channels"
        )


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write_bytes(path, data)


class SRPipeline:
    """Runs a flow-map backbone for SR: bicubic source → ``steps`` jumps → HR."""

    def __init__(
        self,
        net: torch.nn.Module,
        config: PipelineConfig | None = None,
        codec: Codec | None = None,
    ):
        """``codec`` None: built from ``config.codec`` (identity by default; a VAE config
        without ``pretrained`` gets random weights — pass the loaded codec instead)."""
        self.net = net.eval()
        self.config = config or PipelineConfig()
        self.codec = (build_codec(self.config.codec) if codec is None else codec).eval()
        _check_channels(self.net, self.codec)
        self._merged: tuple[tuple, torch.nn.Module] | None = None

    # -- persistence -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
    ) -> SRPipeline:
        """Load a pipeline folder (None: the model built into the package)."""
        from safetensors.torch import load_file

        folder = BUILTIN_DIR if path is None else Path(path)
        cfg_path = folder / CONFIG_NAME
        if not cfg_path.is_file():
            what = "the built-in model" if path is None else f"pipeline folder '{folder}'"
            raise FileNotFoundError(f"{what}: no {CONFIG_NAME} in {folder}")
        try:
            raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{cfg_path}: not valid JSON ({err})") from None
        config = from_dict(PipelineConfig, raw)
        check_modes(config.modes, str(cfg_path))
        if config.cpu_precision not in ("fp32", "bf16"):
            raise ValueError(f"{cfg_path}: cpu_precision must be fp32 or bf16")
        if config.solver not in SOLVERS:
            raise ValueError(f"{cfg_path}: solver must be one of {', '.join(SOLVERS)}")
        if not 0.0 < config.source_time <= 1.0:
            raise ValueError(f"{cfg_path}: source_time must lie in (0, 1]")
        if config.solver == "consistency" and config.source_time != 1.0:
            # consistency sampling re-interpolates with the source on the 1 → 0 line
            raise ValueError(f"{cfg_path}: the consistency solver needs source_time 1")
        try:  # (untagged: the small net); an unknown type or key is named with the file
            net = build_net(config.net)
        except ValueError as err:
            raise ValueError(f"{cfg_path}: {err}") from None
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{folder}: missing {WEIGHTS_NAME}")
        net.load_state_dict(load_file(str(weights)), strict=True)
        if config.lora is not None:
            try:  # plain adapters merged by nets.lora (no peft needed to run a model)
                attach_lora_for_inference(net, config.lora)
            except ValueError as err:
                raise ValueError(f"{cfg_path}: {err}") from None
            lora_path = folder / LORA_NAME
            if not lora_path.is_file():
                raise FileNotFoundError(f"{folder}: config names LoRA but {LORA_NAME} is missing")
            missing = net.load_state_dict(load_file(str(lora_path)), strict=False)
            if missing.unexpected_keys:
                raise ValueError(f"{lora_path}: unexpected keys {missing.unexpected_keys[:3]}")
            absent = [k for k in missing.missing_keys if "lora_" in k]
            if absent:
                raise ValueError(f"{lora_path}: missing adapter weights {absent[:3]}")
            set_lora_scale(net, config.lora_scale)
        try:
            codec = build_codec(config.codec)
        except ValueError as err:
            raise ValueError(f"{cfg_path}: {err}") from None
        if next(codec.parameters(), None) is not None:
            codec_path = folder / CODEC_NAME
            if codec_path.is_file():
                codec.load_state_dict(load_file(str(codec_path)), strict=True)
            elif getattr(codec.config, "pretrained", None) is None:
                raise FileNotFoundError(
                    f"{folder}: config names codec '{codec.config.type}' but {CODEC_NAME} "
                    "is missing"
                )
        try:
            pipe = cls(net, config, codec)
        except ValueError as err:
            raise ValueError(f"{cfg_path}: {err}") from None
        return pipe.to(device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ ``lora.safetensors``) atomically."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        if has_lora(self.net):
            if self.config.lora is None:
                raise ValueError("the network has LoRA adapters but config.lora is not set")
            _save_tensors(base_state_dict(self.net), folder / WEIGHTS_NAME)
            _save_tensors(lora_state_dict(self.net), folder / LORA_NAME)
        else:
            _save_tensors(self.net.state_dict(), folder / WEIGHTS_NAME)
        config = self.config
        if next(self.codec.parameters(), None) is not None:
            # The weights go with the folder; the config keeps the architecture, not a path.
            _save_tensors(self.codec.state_dict(), folder / CODEC_NAME)
            config = replace(config, codec=to_dict(self.codec.architecture_config()))
        text = json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(folder / CONFIG_NAME, text.encode("utf-8"))
        return folder

    def to(self, device=None, dtype=None) -> SRPipeline:
        """Move the network (and its dtype); the codec follows to the device and keeps its own
        dtype (SD/SDXL VAEs overflow in fp16; encode/decode cast at their boundary)."""
        self.net.to(device=device, dtype=dtype)
        self.codec.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    @property
    def precision(self) -> str:
        """The network's precision by its short name (``fp32``, ``bf16``)."""
        return {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(self.dtype, str(self.dtype))

    @property
    def size_multiple(self) -> int:
        """HR sizes must be multiples of this: the codec factor times the backbone's multiple
        (the backbone declares its own, in the units it sees: pixels or latents)."""
        return size_multiple(self.net) * self.codec.factor

    # -- running ---------------------------------------------------------------------------
    def set_lora_scale(self, scale: float | None) -> None:
        if has_lora(self.net):
            set_lora_scale(self.net, self.config.lora_scale if scale is None else scale)

    def inference_net(self) -> torch.nn.Module:
        """The network :meth:`sample` runs: ``net`` itself, or with LoRA a merged plain copy.

        Unmerged peft adapters add a rank-r conv pair to every targeted conv (about a sixth of
        the small net's time on a CPU); the merged copy costs what the bare backbone costs. It
        is cached and rebuilt when the adapter scale, any weight (in-place updates bump
        ``Tensor._version``), the device or the dtype changes.
        """
        if not has_lora(self.net):
            return self.net
        params = list(self.net.parameters())
        key = (
            lora_scales(self.net),
            tuple(p._version for p in params),
            tuple(p.data_ptr() for p in params),
            self.device,
            self.dtype,
        )
        if self._merged is None or self._merged[0] != key:
            merged = merged_copy(self.net)
            if self.device.type == "cpu":
                # oneDNN's convolutions run ~10 % faster on NHWC weights/activations.
                merged = merged.to(memory_format=torch.channels_last)
            self._merged = (key, merged)
        return self._merged[1]

    def make_source(self, lr: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """``(B, 3, h, w)`` LR in ``[0, 1]`` → ``(B, 3, H, W)`` bicubic source in ``[-1, 1]``."""
        return unit_to_model(upsample_source(lr, out_size))

    @torch.no_grad()
    def sample(
        self,
        src: torch.Tensor,
        steps: int | None = None,
        guidance: float | None = None,
        noise: torch.Tensor | None = None,
        cfg_scale: float | None = None,
    ) -> torch.Tensor:
        """Run the flow map on a source ``(B, 3, H, W)`` in ``[-1, 1]``; returns ``[-1, 1]``.

        The source is encoded (``H``, ``W`` multiples of the codec factor ``f``), the jumps run
        on latents ``(B, C, H/f, W/f)`` and the result is decoded. ``noise`` (the latents'
        shape; pixels for the identity codec) is the source noise ε (scaled by
        ``config.source_noise``); pass it for tiled runs so every tile sees the same draw.
        ``cfg_scale`` ≠ 1 (default: the config's) adds positive/negative prompt CFG at two
        network calls per step.
        """
        c = self.config
        steps = c.steps if steps is None else steps
        omega = c.guidance if guidance is None else guidance
        n = src.shape[0]
        dev, dt = self.device, self.dtype
        # The posterior's mean: a sampling VAE (codec.latent=sample) would need a generator,
        # and inference should not add the encoder's noise to the source.
        codec, src = self.codec, src.to(device=dev)
        src = (codec.posterior(src)[0] if codec.samples else codec.encode(src)).to(dtype=dt)
        cond = Condition(
            prompt=torch.full((n,), PROMPT_POS, dtype=torch.long, device=dev),
            omega=torch.full((n,), float(omega), device=dev, dtype=dt),
            source=src,
        )
        x = src
        if c.source_noise > 0 and noise is not None:
            x = src + c.source_noise * noise.to(device=dev, dtype=dt)
        grid = time_grid(steps, c.grid, device=dev, dtype=torch.float32, start=c.source_time)
        net = self.inference_net()
        g = c.cfg_scale if cfg_scale is None else float(cfg_scale)
        if g != 1.0:
            neg = cond.replace(prompt=torch.full_like(cond.prompt, PROMPT_NEG))
            net = prompt_cfg(net, g, neg)
        out = SOLVERS[c.solver](net, x, grid, cond)
        return self.codec.decode(out).to(dt)

    @torch.no_grad()
    def upscale_to_sink(
        self,
        lr: torch.Tensor,
        model_scale: int,
        sink,
        steps: int | None = None,
        guidance: float | None = None,
        lora_scale: float | None = None,
        seed: int = 0,
        tile: int | None = None,
        overlap: int | None = None,
        color_fix: str = "none",
        on_tile=None,
        mode: str | None = None,
    ) -> None:
        """Upscale ``lr`` ``(B, 3, h, w)`` in ``[0, 1]`` by the integer ``model_scale``, handing
        the output to ``sink(y0, strip)`` strip by strip (see
        :func:`flowmapsr.inference.tiling.upscale_tiled`). Every caller that keeps the output in
        its own form (a float tensor, a uint8/uint16 array) goes through here. ``mode``
        (``fidelity``, ``balanced``, ``realism``; None = balanced) picks the model's measured
        knob settings; explicit ``steps`` / ``guidance`` / ``lora_scale`` override them.
        """
        knobs = mode_knobs(self.config, mode, steps, guidance, lora_scale)
        steps, guidance = knobs["steps"], knobs["guidance"]
        self.set_lora_scale(knobs["lora_scale"])
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        upscale_tiled(
            self,
            lr,
            model_scale,
            sink,
            steps=steps,
            guidance=guidance,
            generator=g,
            tile=tile,
            overlap=overlap,
            color_fix=color_fix,
            on_tile=on_tile,
        )

    @torch.no_grad()
    def upscale_tensor(
        self,
        lr: torch.Tensor,
        scale: float = 4,
        steps: int | None = None,
        guidance: float | None = None,
        lora_scale: float | None = None,
        seed: int = 0,
        tile: int | None = None,
        overlap: int | None = None,
        color_fix: str = "none",
        on_tile=None,
        mode: str | None = None,
    ) -> torch.Tensor:
        """``(B, 3, h, w)`` LR in ``[0, 1]`` → ``(B, 3, round(h·s), round(w·s))`` in ``[0, 1]``.

        ``mode``: the model's named fidelity/balanced/realism settings (see
        :func:`mode_knobs`); explicit knobs override it.

        ``tile``/``overlap``: tile size and overlap in LR pixels (None: one tile, i.e. untiled;
        a tile covering the image gives exactly the untiled result). ``color_fix``: ``none``,
        ``wavelet`` or ``adain`` against the upsampled LR. ``seed`` seeds the source noise
        (drawn once for the whole image). ``on_tile(done, total)`` reports progress. The whole
        output is returned as one float tensor; for bounded memory on huge images use
        :meth:`upscale_to_sink` (the CLI does).
        """
        h, w = lr.shape[-2:]
        ms = model_scale_for(scale, self.config.scales)
        out = torch.empty(lr.shape[0], 3, h * ms, w * ms)

        def sink(y0: int, strip: torch.Tensor) -> None:
            out[:, :, y0 : y0 + strip.shape[2]] = strip

        self.upscale_to_sink(
            lr, ms, sink, steps, guidance, lora_scale, seed, tile, overlap, color_fix, on_tile,
            mode=mode,
        )  # fmt: skip
        size = output_size(h, w, scale)
        if size != (h * ms, w * ms):
            out = imresize(out, size=size).clamp_(0.0, 1.0)
        return out
