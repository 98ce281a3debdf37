"""Typed configuration of the degradation pipeline; presets are YAML files in ``presets/``.

The defaults of these dataclasses are Real-ESRGAN's published first-stage settings
(``options/train_realesrnet_x4plus.yml``); the presets spell every value out anyway so the YAML
file alone documents a pipeline. Ranges are ``[low, high]`` lists; noise sigmas are in 8-bit
units (/255), JPEG qualities in 1–100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flowmapsr.config import ConfigError, from_dict, load_yaml

PRESET_DIR = Path(__file__).parent / "presets"
KERNEL_SIZES = [7, 9, 11, 13, 15, 17, 19, 21]


@dataclass
class KernelConfig:
    """One random blur kernel: sinc with ``sinc_prob``, else a type drawn with ``probs``."""

    sizes: list[int] = field(default_factory=lambda: list(KERNEL_SIZES))
    types: list[str] = field(
        default_factory=lambda: [
            "iso",
            "aniso",
            "generalized_iso",
            "generalized_aniso",
            "plateau_iso",
            "plateau_aniso",
        ]
    )
    probs: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap: list[float] = field(default_factory=lambda: [1.0, 2.0])
    sinc_prob: float = 0.1


@dataclass
class ResizeConfig:
    """Random resize: ``probs`` of up / down / keep, factor ``range``, interpolation ``modes``.

    ``relative_to``: ``input`` scales the current image (Real-ESRGAN stage 1); ``output`` scales
    the final LR size (Real-ESRGAN stage 2, so "keep" means "resize to the LR size").
    """

    probs: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    modes: list[str] = field(default_factory=lambda: ["area", "bilinear", "bicubic"])
    relative_to: str = "input"


@dataclass
class NoiseConfig:
    """With ``prob``: Gaussian (``gaussian_prob``, σ ∈ ``sigma``), else Poisson noise."""

    prob: float = 1.0
    gaussian_prob: float = 0.5
    sigma: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_prob: float = 0.4


@dataclass
class JpegConfig:
    prob: float = 1.0
    quality: list[float] = field(default_factory=lambda: [30.0, 95.0])


@dataclass
class StageConfig:
    """One degradation order: blur → resize → noise → JPEG."""

    blur_prob: float = 1.0
    kernel: KernelConfig = field(default_factory=KernelConfig)
    resize: ResizeConfig = field(default_factory=ResizeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg: JpegConfig = field(default_factory=JpegConfig)


@dataclass
class FinalConfig:
    """The last step to the LR size: resize (+ sinc) and JPEG, in a random order.

    With ``resize_first_prob`` resize → sinc → JPEG, else JPEG → resize → sinc (Real-ESRGAN's
    two orders, 0.5 each). The sinc (prob ``sinc_prob``, ωc ∈ [π/3, π], size from ``sinc_sizes``).
    """

    resize_modes: list[str] = field(default_factory=lambda: ["area", "bilinear", "bicubic"])
    sinc_prob: float = 0.8
    sinc_sizes: list[int] = field(default_factory=lambda: list(KERNEL_SIZES))
    resize_first_prob: float = 0.5
    jpeg: JpegConfig = field(default_factory=JpegConfig)


@dataclass
class USMConfig:
    """Unsharp masking of the HR *target* (``Degradation.sharpen_target``), as Real-ESRGAN."""

    enabled: bool = False
    radius: int = 50
    weight: float = 0.5
    threshold: float = 10.0


@dataclass
class DegradationConfig:
    """A whole pipeline: optional stage 1, optional stage 2 (with ``second_order_prob``), final."""

    name: str = "custom"
    description: str = ""
    stage1: StageConfig | None = field(default_factory=StageConfig)
    second_order_prob: float = 1.0
    stage2: StageConfig | None = None
    final: FinalConfig = field(default_factory=FinalConfig)
    usm: USMConfig = field(default_factory=USMConfig)


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_degradation_config(name_or_path: str | Path) -> DegradationConfig:
    """A shipped preset by name (``realesrgan``, ``mild``, ``bicubic``) or a YAML file path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"{path}: degradation preset file not found")
    else:
        path = PRESET_DIR / f"{text}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown degradation preset '{text}'; shipped: {preset_names()} (or a .yaml path)"
            )
    cfg = from_dict(DegradationConfig, load_yaml(path))
    validate_degradation_config(cfg, str(path))
    return cfg


def _check_range(r, where: str, low: float = float("-inf"), high: float = float("inf")) -> None:
    if len(r) != 2 or r[0] > r[1] or r[0] < low or r[1] > high:
        raise ConfigError(f"{where}: expected [low, high] within [{low}, {high}], got {list(r)}")


def _check_prob(p: float, where: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{where}: probability must be in [0, 1], got {p}")


def validate_degradation_config(cfg: DegradationConfig, where: str = "config") -> None:
    """Raise :class:`ConfigError` naming the key for any value the pipeline cannot use."""
    for sname in ("stage1", "stage2"):
        st = getattr(cfg, sname)
        if st is None:
            continue
        w = f"{where}: {sname}"
        _check_prob(st.blur_prob, f"{w}.blur_prob")
        k = st.kernel
        if len(k.types) != len(k.probs):
            raise ConfigError(f"{w}.kernel: {len(k.types)} types but {len(k.probs)} probs")
        if not k.sizes or any(s < 1 or s % 2 == 0 for s in k.sizes):
            raise ConfigError(f"{w}.kernel.sizes: need odd sizes >= 1, got {k.sizes}")
        _check_range(k.sigma, f"{w}.kernel.sigma", low=1e-6)
        _check_range(k.betag, f"{w}.kernel.betag", low=1e-6)
        _check_range(k.betap, f"{w}.kernel.betap", low=1e-6)
        _check_prob(k.sinc_prob, f"{w}.kernel.sinc_prob")
        if len(st.resize.probs) != 3:
            raise ConfigError(f"{w}.resize.probs: need [up, down, keep], got {st.resize.probs}")
        _check_range(st.resize.range, f"{w}.resize.range", low=1e-3)
        if st.resize.relative_to not in ("input", "output"):
            raise ConfigError(
                f"{w}.resize.relative_to: 'input' or 'output', got {st.resize.relative_to!r}"
            )
        _check_prob(st.noise.prob, f"{w}.noise.prob")
        _check_prob(st.noise.gaussian_prob, f"{w}.noise.gaussian_prob")
        _check_prob(st.noise.gray_prob, f"{w}.noise.gray_prob")
        _check_range(st.noise.sigma, f"{w}.noise.sigma", low=0)
        _check_range(st.noise.poisson_scale, f"{w}.noise.poisson_scale", low=0)
        _check_prob(st.jpeg.prob, f"{w}.jpeg.prob")
        _check_range(st.jpeg.quality, f"{w}.jpeg.quality", low=1, high=100)
    _check_prob(cfg.second_order_prob, f"{where}: second_order_prob")
    f = cfg.final
    if not f.resize_modes:
        raise ConfigError(f"{where}: final.resize_modes is empty")
    _check_prob(f.sinc_prob, f"{where}: final.sinc_prob")
    _check_prob(f.resize_first_prob, f"{where}: final.resize_first_prob")
    _check_prob(f.jpeg.prob, f"{where}: final.jpeg.prob")
    _check_range(f.jpeg.quality, f"{where}: final.jpeg.quality", low=1, high=100)
