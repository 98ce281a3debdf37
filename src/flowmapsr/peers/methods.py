"""The methods ``flowmapsr bench`` compares, parsed from ``--methods`` text.

Grammar: a comma-separated list of ``NAME`` or ``NAME:KEY=VAL``; a token ``KEY=VAL`` without a
colon continues the options of the method before it, so
``bicubic,flowmapsr:steps=2,guidance=1.5,span`` is three methods. Names:

* ``bicubic`` — MATLAB-style bicubic (:func:`flowmapsr.resize.imresize`); NFE 0.
* ``realesrgan`` / ``span`` — the ncnn peers (:mod:`flowmapsr.peers.ncnn_models`); options
  ``tile`` (LR pixels, 0 = whole image), ``threads``; one network pass (NFE 1).
* ``flowmapsr`` — :class:`flowmapsr.inference.pipeline.SRPipeline`; options ``model=DIR``
  (default: the built-in model), ``mode`` (fidelity / balanced / realism), ``precision``
  (fp32 / bf16 weights and activations), ``steps``,
  ``guidance``, ``lora_scale``, ``seed``, ``tile``, ``overlap``, ``color_fix``; NFE = steps.

Every method maps ``(1, 3, h, w)`` in [0, 1] to ``(1, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from flowmapsr.resize import imresize

# Option name → type, per method kind.
OPTIONS: dict[str, dict[str, Callable]] = {
    "bicubic": {},
    "realesrgan": {"tile": int, "threads": int},
    "span": {"tile": int, "threads": int},
    "flowmapsr": {
        "model": str,
        "mode": str,
        "precision": str,
        "steps": int,
        "guidance": float,
        "lora_scale": float,
        "seed": int,
        "tile": int,
        "overlap": int,
        "color_fix": str,
    },
}


@dataclass
class MethodSpec:
    kind: str
    options: dict[str, object] = field(default_factory=dict)
    text: str = ""  # as the user wrote it, for labels
    name: str = ""  # the ``label=`` option: a short name for reports instead of ``text``

    @property
    def label(self) -> str:
        return self.name or self.text or self.kind


def parse_methods(text: str) -> list[MethodSpec]:
    """``"bicubic,flowmapsr:steps=1,guidance=2"`` → specs; ``ValueError`` names a bad token."""
    specs: list[MethodSpec] = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        if ":" in raw:
            kind, opt = raw.split(":", 1)
            spec = _new_spec(kind.strip(), raw)
            specs.append(spec)
            if opt.strip():
                _add_option(spec, opt.strip())
        elif "=" in raw:
            if not specs:
                raise ValueError(f"option {raw!r} comes before any method")
            _add_option(specs[-1], raw)
            specs[-1].text += "," + raw
        else:
            specs.append(_new_spec(raw, raw))
    if not specs:
        raise ValueError("no methods given")
    labels = [s.label for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"method(s) listed twice: {', '.join(dup)}")
    return specs


def _new_spec(kind: str, text: str) -> MethodSpec:
    kind = kind.lower()
    if kind not in OPTIONS:
        raise ValueError(f"unknown method {kind!r}; known: {', '.join(OPTIONS)}")
    return MethodSpec(kind, {}, text)


def _add_option(spec: MethodSpec, token: str) -> None:
    if "=" not in token:
        raise ValueError(f"{spec.kind}: option {token!r} is not KEY=VALUE")
    key, val = (s.strip() for s in token.split("=", 1))
    if key == "label":  # any method: how reports name it (e.g. model=DIR gives long labels)
        if not val:
            raise ValueError(f"{spec.kind}: option label= needs a name")
        spec.name = val
        return
    allowed = OPTIONS[spec.kind]
    if key not in allowed:
        known = ", ".join([*allowed, "label"])
        raise ValueError(f"{spec.kind}: unknown option {key!r} (known: {known})")
    try:
        spec.options[key] = allowed[key](val)
    except ValueError as err:
        raise ValueError(f"{spec.kind}: option {key}={val!r}: {err}") from err


class Method:
    """A ready-to-run method: ``method(lr, scale) → sr``; ``nfe`` network evaluations per image."""

    def __init__(
        self,
        spec: MethodSpec,
        fn: Callable[[torch.Tensor, int], torch.Tensor],
        nfe,
        settings: dict | None = None,
    ):
        self.spec, self._fn, self.nfe = spec, fn, nfe
        # Every knob with the value it runs at (defaults resolved), for reports and plots.
        self.settings = dict(settings if settings is not None else spec.options)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def kind(self) -> str:
        return self.spec.kind

    def __call__(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return self._fn(lr, scale)


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(lr, scale, 'bicubic')`` clamped to [0, 1]."""
    return imresize(lr, scale=scale).clamp_(0.0, 1.0)


def build_method(spec: MethodSpec, pipelines: dict | None = None) -> Method:
    """Load what the method needs (ncnn net, pipeline). ``pipelines`` caches pipelines by model.

    Raises ``PeerUnavailable`` / ``FileNotFoundError`` with a clear message when a peer or a
    model is missing.
    """
    if spec.kind == "bicubic":
        return Method(spec, bicubic, 0)
    if spec.kind in ("realesrgan", "span"):
        from flowmapsr.peers.ncnn_models import NcnnUpscaler

        net = NcnnUpscaler.from_peer(spec.kind, **spec.options)

        def run_peer(lr: torch.Tensor, scale: int) -> torch.Tensor:
            if scale != net.scale:
                raise ValueError(f"{spec.kind} is a x{net.scale} model; asked for x{scale}")
            return net.upscale_tensor(lr)

        return Method(spec, run_peer, 1)
    if spec.kind == "flowmapsr":
        from flowmapsr.inference.pipeline import SRPipeline

        opts = dict(spec.options)
        model = opts.pop("model", None)
        from flowmapsr.inference.precision import PRECISION_CHOICES, PRECISIONS, resolve_precision

        asked = opts.pop("precision", "auto")  # as `flowmapsr upscale` runs it by default
        if asked not in PRECISION_CHOICES:
            raise ValueError(
                f"{spec.label}: precision must be one of {', '.join(PRECISION_CHOICES)}, "
                f"got {asked!r}"
            )
        cache = pipelines if pipelines is not None else {}
        if model not in cache:
            cache[model] = SRPipeline.from_pretrained(model)
        precision = resolve_precision(asked, cache[model])
        key = model if precision == "fp32" else (model, precision)
        if key not in cache:
            cache[key] = SRPipeline.from_pretrained(model).to(dtype=PRECISIONS[precision])
        pipe = cache[key]
        if opts.get("steps") is not None and int(opts["steps"]) < 1:
            raise ValueError(f"{spec.label}: steps must be ≥ 1")
        from flowmapsr.inference.pipeline import mode_knobs

        try:  # the knobs this run uses: explicit options, else the mode's, else the model's
            knobs = mode_knobs(
                pipe.config,
                opts.get("mode"),
                opts.get("steps"),
                opts.get("guidance"),
                opts.get("lora_scale"),
            )
        except ValueError as err:
            raise ValueError(f"{spec.label}: {err}") from None
        steps = knobs["steps"]
        opts["steps"] = steps

        def run_flow(lr: torch.Tensor, scale: int) -> torch.Tensor:
            return pipe.upscale_tensor(lr, scale=scale, **opts).clamp_(0.0, 1.0)

        has_lora = pipe.config.lora is not None
        settings = {
            "model": model or "built-in",
            "precision": precision,
            **opts,
            "steps": steps,
            "guidance": knobs["guidance"],
            "lora_scale": knobs["lora_scale"] if has_lora else None,
        }
        return Method(spec, run_flow, steps, settings)
    raise ValueError(f"unknown method {spec.kind!r}")  # parse_methods already refuses these
