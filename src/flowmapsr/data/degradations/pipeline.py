"""The second-order degradation pipeline (Real-ESRGAN, Wang et al. 2021), seeded per sample.

``Degradation(config)(hr, scale, generators)`` turns a batch of HR images ``(B, 3, H, W)`` in
[0, 1] into LR images ``(B, 3, H/scale, W/scale)`` quantised to 8 bits, plus one JSON-able dict
per sample listing every parameter drawn. The order of operations is Real-ESRGAN's
(``realesrnet_model.py``):

1. stage 1: blur → random resize (relative to the HR size) → noise → JPEG;
2. stage 2 (with ``second_order_prob``): blur (prob) → random resize (relative to the LR size)
   → noise → JPEG;
3. final: either resize to the LR size → sinc → JPEG, or JPEG → resize → sinc; clamp, round.

Unlike Real-ESRGAN, which draws the resize and noise-type choices once per *batch*, every draw
here is per sample, from that sample's generator: a sample's parameters and noise do not depend
on the rest of its batch, and the same seeds give the same bytes on the same machine.
The first blur (the costly one, at HR size) runs as one grouped conv over the batch on ``hr``'s
device; after the first random resize the samples have different sizes, so the rest runs per
sample (still on ``hr``'s device; JPEG goes through OpenCV on the CPU).
"""

from __future__ import annotations

import math

import torch

from flowmapsr.config import apply_overrides
from flowmapsr.data.degradations import sampling
from flowmapsr.data.degradations.config import (
    DegradationConfig,
    StageConfig,
    load_degradation_config,
    validate_degradation_config,
)
from flowmapsr.data.degradations.jpeg import apply_jpeg, draw_jpeg
from flowmapsr.data.degradations.kernels import draw_kernel, filter2d, make_kernel, usm_sharpen
from flowmapsr.data.degradations.noise import apply_noise, draw_noise
from flowmapsr.data.degradations.resize_ops import draw_resize, resize


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to multiples of 1/255, as saving a PNG would."""
    return (x.clamp(0, 1) * 255.0).round() / 255.0


def _draw_stage(
    g: torch.Generator, st: StageConfig, cur_hw: tuple[int, int], out_hw: tuple[int, int]
) -> dict:
    blur = draw_kernel(g, st.kernel) if sampling.coin(g, st.blur_prob) else None
    ref = cur_hw if st.resize.relative_to == "input" else out_hw
    return {
        "blur": blur,
        "resize": draw_resize(g, st.resize, ref),
        "noise": draw_noise(g, st.noise),
        "jpeg": draw_jpeg(g, st.jpeg),
    }


def _apply_rest_of_stage(x: torch.Tensor, p: dict, g: torch.Generator) -> torch.Tensor:
    """Resize → noise → JPEG of one stage on one sample ``(1, 3, h, w)`` (blur done before)."""
    x = resize(x, tuple(p["resize"]["size"]), p["resize"]["mode"])
    x = apply_noise(x, p["noise"], g)
    return apply_jpeg(x.clamp(0, 1), p["jpeg"])


def _blur(x: torch.Tensor, kp: dict | None) -> torch.Tensor:
    return x if kp is None else filter2d(x, make_kernel(kp))


class Degradation:
    """A random degradation pipeline built from a :class:`DegradationConfig` (see module doc)."""

    def __init__(self, config: DegradationConfig):
        self.config = config

    @classmethod
    def from_preset(cls, name_or_path: str, overrides: list[str] | None = None) -> Degradation:
        """A preset (``realesrgan``, ``mild``, ``bicubic``) or ``.yaml`` path; strict overrides."""
        cfg = load_degradation_config(name_or_path)
        if overrides:
            cfg = apply_overrides(cfg, list(overrides))
            validate_degradation_config(cfg, f"{name_or_path} with overrides {list(overrides)}")
        return cls(cfg)

    @property
    def name(self) -> str:
        return self.config.name

    def sample_params(self, g: torch.Generator, hr_hw: tuple[int, int], scale: int) -> dict:
        """Draw every scalar parameter of one sample (noise fields are drawn later, in order)."""
        c = self.config
        h, w = int(hr_hw[0]), int(hr_hw[1])
        out_hw = (h // scale, w // scale)
        p: dict = {
            "preset": c.name,
            "scale": int(scale),
            "hr_size": [h, w],
            "lr_size": list(out_hw),
        }
        cur = (h, w)
        p["stage1"] = None
        if c.stage1 is not None:
            p["stage1"] = _draw_stage(g, c.stage1, cur, out_hw)
            cur = tuple(p["stage1"]["resize"]["size"])
        p["stage2"] = None
        if c.stage2 is not None and sampling.coin(g, c.second_order_prob):
            p["stage2"] = _draw_stage(g, c.stage2, cur, out_hw)
        f = c.final
        order = "resize_first" if sampling.coin(g, f.resize_first_prob) else "jpeg_first"
        mode = sampling.choice(g, list(f.resize_modes))
        sinc = None
        if sampling.coin(g, f.sinc_prob):
            size = int(sampling.choice(g, list(f.sinc_sizes)))
            sinc = {
                "type": "sinc",
                "size": size,
                "omega_c": sampling.uniform(g, math.pi / 3, math.pi),
            }
        p["final"] = {"order": order, "mode": mode, "sinc": sinc, "jpeg": draw_jpeg(g, f.jpeg)}
        return p

    def __call__(
        self, hr: torch.Tensor, scale: int, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, list[dict]]:
        """Degrade ``hr`` (B, 3, H, W) in [0, 1] to ``(B, 3, H/scale, W/scale)`` in [0, 1].

        ``generators``: one per sample. Returns the 8-bit-quantised LR batch (float, on ``hr``'s
        device and dtype) and the per-sample parameter dicts.
        """
        if hr.ndim != 4 or hr.shape[1] != 3:
            raise ValueError(f"hr must be (B, 3, H, W), got {tuple(hr.shape)}")
        b, _, h, w = hr.shape
        scale = int(scale)
        if scale < 1 or h % scale or w % scale:
            raise ValueError(f"HR size {h}x{w} is not a multiple of scale {scale}")
        if len(generators) != b:
            raise ValueError(
                f"need one generator per sample: {b} samples, {len(generators)} generators"
            )
        out_dtype = hr.dtype
        x = hr.float() if hr.dtype != torch.float64 else hr
        params = [self.sample_params(g, (h, w), scale) for g in generators]

        # Stage-1 blur at HR size, the costliest step: one grouped conv per distinct kernel size
        # over the samples that drew it (cost grows with k², so padding all to 21 would waste).
        blurs = [p["stage1"]["blur"] if p["stage1"] else None for p in params]
        by_size: dict[int, list[int]] = {}
        for i, bp in enumerate(blurs):
            if bp is not None:
                by_size.setdefault(int(bp["size"]), []).append(i)
        if by_size:
            x = x.clone()
            for idx in by_size.values():
                ks = torch.stack([make_kernel(blurs[i]) for i in idx])
                x[idx] = filter2d(x[idx], ks)

        out_hw = (h // scale, w // scale)
        outs = []
        for i, (p, g) in enumerate(zip(params, generators)):
            xi = x[i : i + 1]
            if p["stage1"] is not None:
                xi = _apply_rest_of_stage(xi, p["stage1"], g)
            if p["stage2"] is not None:
                xi = _blur(xi, p["stage2"]["blur"])
                xi = _apply_rest_of_stage(xi, p["stage2"], g)
            xi = self._final(xi, p["final"], out_hw)
            outs.append(quantize_8bit(xi))
        return torch.cat(outs, 0).to(out_dtype), params

    @staticmethod
    def _final(x: torch.Tensor, f: dict, out_hw: tuple[int, int]) -> torch.Tensor:
        def resize_sinc(y):
            y = resize(y, out_hw, f["mode"])
            return _blur(y, f["sinc"])

        if f["order"] == "resize_first":
            return apply_jpeg(resize_sinc(x).clamp(0, 1), f["jpeg"])
        return resize_sinc(apply_jpeg(x.clamp(0, 1), f["jpeg"]))

    def sharpen_target(self, hr: torch.Tensor) -> torch.Tensor:
        """The HR training target: USM-sharpened when the preset enables ``usm``, else ``hr``."""
        u = self.config.usm
        if not u.enabled:
            return hr
        return usm_sharpen(hr, radius=u.radius, weight=u.weight, threshold=u.threshold)

    def __repr__(self) -> str:
        return f"Degradation(preset={self.config.name!r})"
