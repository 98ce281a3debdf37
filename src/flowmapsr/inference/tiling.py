"""Tiled upscaling for images of any size, with memory bounded by the tile size.

How a ``(B, 3, h, w)`` LR image becomes the HR image at an integer model scale ``s``:

1. The LR image is reflect-padded by ``ceil(border_pad / s)`` LR pixels on every side (plus a few
   on the bottom/right so every HR size is a multiple of the backbone's size multiple). Every
   image border then lies *inside* a tile, never on a tile edge, so the network's own zero
   padding never touches pixels we keep: no blurry or rectangular seams near image borders
   (FlowMapSR reports those for its tiling). The untiled path pads the same way, so one tile
   covering the image gives exactly the untiled result.
2. Tiles of ``tile`` LR pixels with at least ``overlap`` LR pixels of overlap are laid out evenly
   over the padded image. Each tile's source is the bicubic upsampling of its LR crop taken with
   a 3-pixel margin, so it equals the crop of the whole image's source; the source noise comes
   from a :class:`NoiseField` drawn once for the whole image (counter-based per block), so
   overlapping tiles see identical noise without holding a full-resolution noise tensor.
3. Tile outputs (after the optional colour fix against their source) are blended with separable
   Gaussian weights (σ = tile / 10, ~4e-6 at a tile's edge) into a float accumulator that spans
   only one row of tiles; finished rows are handed to a ``sink`` as strips and forgotten. Peak
   memory is therefore ~ one tile's activations + two tile-row strips + whatever the sink keeps
   (the CLI keeps the uint8/uint16 output only).

Written by hand because no maintained library does tiled inference of a conditional image-to-
image network with shared noise and strip-wise blending on torch tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from flowmapsr.convert import model_to_unit, unit_to_model
from flowmapsr.inference.colorfix import apply_color_fix
from flowmapsr.resize import imresize

# LR pixels of context taken around a tile's crop before bicubic upsampling: the a = −0.5 cubic
# kernel reads two pixels either side at upscale factors, one more is kept for safety.
SOURCE_MARGIN = 3
# Overlap between neighbouring tiles when the caller gives none (LR pixels).
DEFAULT_OVERLAP = 32


@dataclass(frozen=True)
class TilePlan:
    """Where tiles go, in padded LR pixels: start offsets ``ys``/``xs``, tile size ``th × tw``."""

    pad: tuple[int, int, int, int]  # top, bottom, left, right (LR pixels)
    height: int  # padded LR height
    width: int  # padded LR width
    th: int
    tw: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def tile_starts(length: int, tile: int, overlap: int, q: int) -> tuple[int, ...]:
    """Evenly spaced starts (multiples of ``q``) covering ``[0, length)``, overlapping ≥ overlap."""
    if tile >= length:
        return (0,)
    stride = max(tile - overlap, q)
    n = math.ceil((length - tile) / stride) + 1
    last = length - tile
    starts = sorted({int(round(i * last / (n - 1) / q)) * q for i in range(n)})
    starts[-1] = last
    return tuple(starts)


def plan_tiles(
    h: int,
    w: int,
    scale: int,
    multiple: int,
    tile: int | None,
    overlap: int | None,
    border_pad: int,
) -> TilePlan:
    """Lay out tiles for an ``h × w`` LR image at integer ``scale`` (see module docstring).

    ``multiple``: HR sizes fed to the network must be multiples of it (4 for the small net).
    ``tile``/``overlap`` in LR pixels; ``tile=None`` means one tile over the whole image.
    ``border_pad``: HR pixels of reflect padding around the image (capped by the image size).
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"the model scale must be an integer ≥ 1, got {scale}")
    q = multiple // math.gcd(multiple, int(scale))  # LR alignment so s·n is a multiple
    p_h = min(math.ceil(border_pad / scale), h - 1)
    p_w = min(math.ceil(border_pad / scale), w - 1)
    top, left = p_h, p_w
    bottom = p_h + (-(h + 2 * p_h)) % q
    right = p_w + (-(w + 2 * p_w)) % q
    hp, wp = h + top + bottom, w + left + right
    if tile is None:
        th, tw, ov = hp, wp, 0
    else:
        if tile < 1:
            raise ValueError(f"tile must be ≥ 1 LR pixel, got {tile}")
        ov = DEFAULT_OVERLAP if overlap is None else int(overlap)
        t = max(q, (int(tile) // q) * q)
        if ov < 0 or ov >= t:
            raise ValueError(f"overlap must be in [0, tile) = [0, {t}), got {ov}")
        th, tw = min(t, hp), min(t, wp)
    return TilePlan(
        pad=(top, bottom, left, right),
        height=hp,
        width=wp,
        th=th,
        tw=tw,
        ys=tile_starts(hp, th, ov, q),
        xs=tile_starts(wp, tw, ov, q),
    )


def pad_lr(lr: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflect-pad ``(B, C, h, w)`` by ``(top, bottom, left, right)``; replicate where too small."""
    top, bottom, left, right = pad
    h, w = lr.shape[-2:]
    out = lr
    for (a, b), axis_len, order in (((left, right), w, "x"), ((top, bottom), h, "y")):
        if a == 0 and b == 0:
            continue
        mode = "reflect" if max(a, b) < axis_len else "replicate"
        spec = (a, b, 0, 0) if order == "x" else (0, 0, a, b)
        out = F.pad(out, spec, mode=mode)
    return out


def _mix(*values: int) -> int:
    """SplitMix64-style hash of integers → a 63-bit seed (deterministic across runs)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


class NoiseField:
    """Standard Gaussian noise over a ``(B, C, H, W)`` canvas, any crop reproducible on demand.

    The canvas is cut into ``block × block`` squares; each square's noise comes from its own
    generator seeded by a hash of (base seed, image, block row, block column), the base seed
    being drawn once from ``generator``. A crop therefore never needs the whole canvas in memory
    and overlapping tiles read exactly the same values.
    """

    def __init__(self, channels: int, generator: torch.Generator, block: int = 64):
        self.channels = channels
        self.block = block
        self.base = int(torch.randint(0, 2**62, (1,), generator=generator).item())

    def crop(self, batch: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Noise for rows ``[y0, y1)`` and columns ``[x0, x1)`` of the canvas: ``(B, C, h, w)``."""
        blk, c = self.block, self.channels
        out = torch.empty(batch, c, y1 - y0, x1 - x0)
        g = torch.Generator()
        for b in range(batch):
            for by in range(y0 // blk, (y1 - 1) // blk + 1):
                for bx in range(x0 // blk, (x1 - 1) // blk + 1):
                    g.manual_seed(_mix(self.base, b, by, bx))
                    n = torch.randn(c, blk, blk, generator=g)
                    ya, yb = max(y0, by * blk), min(y1, (by + 1) * blk)
                    xa, xb = max(x0, bx * blk), min(x1, (bx + 1) * blk)
                    out[b, :, ya - y0 : yb - y0, xa - x0 : xb - x0] = n[
                        :, ya - by * blk : yb - by * blk, xa - bx * blk : xb - bx * blk
                    ]
        return out


def gaussian_weights(length: int, dtype=torch.float32) -> torch.Tensor:
    """``(length,)`` Gaussian centred on the tile, σ = length / 10 (≈ 4e-6 at the edges)."""
    x = torch.arange(length, dtype=torch.float64)
    c, sigma = (length - 1) / 2.0, max(length / 10.0, 1e-3)
    return torch.exp(-0.5 * ((x - c) / sigma) ** 2).to(dtype)


Sink = Callable[[int, torch.Tensor], None]


@torch.no_grad()
def upscale_tiled(
    pipe,
    lr: torch.Tensor,
    scale: int,
    sink: Sink,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    generator: torch.Generator,
    tile: int | None = None,
    overlap: int | None = None,
    color_fix: str = "none",
    on_tile: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Upscale ``lr`` ``(B, 3, h, w)`` in ``[0, 1]`` by the integer ``scale``, strip by strip.

    ``sink(y0, strip)`` receives consecutive output rows ``[y0, y0 + rows)`` as ``(B, 3, rows,
    w·s)`` float32 tensors in ``[0, 1]`` on the CPU, top to bottom, each row exactly once.
    ``on_tile(done, total)`` is called after every tile. Returns the output size ``(h·s, w·s)``.
    ``pipe`` is an :class:`~flowmapsr.inference.pipeline.SRPipeline` (``sample``, ``config``,
    ``size_multiple``, ``codec``: each tile is encoded, solved and decoded whole, and the source
    noise is drawn in the codec's latent space). ``generator`` draws the base seed of the source
    noise.
    """
    s = int(scale)
    lr = lr.detach().to("cpu", torch.float32)
    bsz, _, h, w = lr.shape
    plan = plan_tiles(h, w, s, pipe.size_multiple, tile, overlap, pipe.config.border_pad)
    lrp = pad_lr(lr, plan.pad)
    top, _, left, _ = plan.pad
    out_h, out_w = h * s, w * s
    # The source noise lives where the flow runs: pixels, or latents of a codec with factor f
    # (HR tile starts are multiples of f: ``pipe.size_multiple`` includes it).
    codec = getattr(pipe, "codec", None)
    f, ch = (codec.factor, codec.channels) if codec is not None else (1, 3)
    noise = NoiseField(ch, generator) if pipe.config.source_noise > 0 else None
    total, done = plan.count, 0

    def run_tile(ty: int, tx: int, th: int, tw: int) -> torch.Tensor:
        """One tile: ``(B, 3, th·s, tw·s)`` in ``[0, 1]`` (colour-fixed), float32 on the CPU."""
        ry0, ry1 = max(ty - SOURCE_MARGIN, 0), min(ty + th + SOURCE_MARGIN, plan.height)
        rx0, rx1 = max(tx - SOURCE_MARGIN, 0), min(tx + tw + SOURCE_MARGIN, plan.width)
        crop = lrp[:, :, ry0:ry1, rx0:rx1].to(pipe.device)
        up = imresize(crop, size=((ry1 - ry0) * s, (rx1 - rx0) * s))
        oy, ox = (ty - ry0) * s, (tx - rx0) * s
        src_unit = up[:, :, oy : oy + th * s, ox : ox + tw * s]
        eps = None
        if noise is not None:
            eps = noise.crop(bsz, ty * s // f, (ty + th) * s // f, tx * s // f, (tx + tw) * s // f)
        out = pipe.sample(unit_to_model(src_unit), steps, guidance, eps)
        out = model_to_unit(out.float())
        out = apply_color_fix(out, src_unit.float(), color_fix)
        return out.cpu()

    def emit(y_pad0: int, strip: torch.Tensor) -> None:
        """Crop padded-HR rows starting at ``y_pad0`` to the image and pass them to ``sink``."""
        a = max(y_pad0, top * s)
        b = min(y_pad0 + strip.shape[2], top * s + out_h)
        if b > a:
            rows = strip[:, :, a - y_pad0 : b - y_pad0, left * s : left * s + out_w]
            sink(a - top * s, rows.contiguous())

    if total == 1:
        # One tile: no blending at all, so the result equals the untiled one bit for bit.
        emit(0, run_tile(0, 0, plan.th, plan.tw))
        if on_tile is not None:
            on_tile(1, 1)
        return out_h, out_w

    th_hr, tw_hr, wp_hr = plan.th * s, plan.tw * s, plan.width * s
    wy, wx = gaussian_weights(th_hr), gaussian_weights(tw_hr)
    weight = wy[:, None] * wx[None, :]
    carry_num = carry_den = None
    carry_y = 0
    for i, ty in enumerate(plan.ys):
        y0 = ty * s
        num = torch.zeros(bsz, 3, th_hr, wp_hr)
        den = torch.zeros(1, 1, th_hr, wp_hr)
        if carry_num is not None:
            k = carry_y + carry_num.shape[2] - y0  # rows shared with the previous tile row
            num[:, :, :k] = carry_num[:, :, -k:]
            den[:, :, :k] = carry_den[:, :, -k:]
        for tx in plan.xs:
            out = run_tile(ty, tx, plan.th, plan.tw)
            x0 = tx * s
            num[:, :, :, x0 : x0 + tw_hr] += out * weight
            den[:, :, :, x0 : x0 + tw_hr] += weight
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        last = i == len(plan.ys) - 1
        keep_from = th_hr if last else plan.ys[i + 1] * s - y0  # rows no later tile touches
        emit(y0, num[:, :, :keep_from] / den[:, :, :keep_from])
        if not last:
            # Copies, not views: a view would keep the whole finished band alive.
            carry_num, carry_den = num[:, :, keep_from:].clone(), den[:, :, keep_from:].clone()
            carry_y = y0 + keep_from
            del num, den
    return out_h, out_w
