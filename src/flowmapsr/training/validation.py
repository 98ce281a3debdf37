"""Periodic validation: PSNR-Y on a few bench images and a sample grid PNG.

With ``niqe: true`` the NIQE of bicubic and of every setting is logged too (lower = more natural;
the guidance and adversarial stages should lower it), through ``flowmapsr.metrics.niqe``.
PSNR-Y is computed here (BT.601 Y via ``flowmapsr.convert.rgb_to_y``, border 0, as for the
real-world crops) so training does not depend on the metrics package. The bicubic source's
PSNR-Y is reported beside the model's, so every row says whether the model beats bicubic.
Grid rows: one per image; columns: bicubic, each (NFE, ω, LoRA scale) evaluated, HR.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from flowmapsr.convert import model_to_unit, rgb_to_y, uint8_to_unit, unit_to_model, unit_to_pil
from flowmapsr.imageio import LIBRARY_MAX_PIXELS, read_image
from flowmapsr.resize import imresize, upsample_source
from flowmapsr.training.config import ValidationConfig
from flowmapsr.training.data import SyntheticHRDataset

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def psnr_y(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in ``[0, 1]`` → ``(B,)`` PSNR in dB on the BT.601 Y channel."""
    mse = (rgb_to_y(x.clamp(0, 1)) - rgb_to_y(y.clamp(0, 1))).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _center(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return img[..., top : top + size, left : left + size]


def _read_rgb(path: Path) -> torch.Tensor:
    """A bench image → ``(1, 3, H, W)`` in ``[0, 1]`` on the 8-bit grid (the package's reader:
    a bad file is a one-line ``ImageReadError`` naming it)."""
    return uint8_to_unit(read_image(path, max_pixels=LIBRARY_MAX_PIXELS).rgb8())


@dataclass
class ValidationSet:
    """hr ``(N, 3, S, S)`` and lr ``(N, 3, S/s, S/s)`` in ``[0, 1]``; names of the images."""

    hr: torch.Tensor
    lr: torch.Tensor
    names: list[str]


def load_validation_set(config: ValidationConfig, seed: int = 0) -> ValidationSet:
    """Centre crops of the first ``count`` bench images (sorted by name), or synthetic ones."""
    s, crop = config.scale, config.crop
    if crop % s:
        raise ValueError(f"validation.crop={crop} is not a multiple of validation.scale={s}")
    if not config.hr_dir:
        ds = SyntheticHRDataset(config.count, crop, seed=seed + 1_000_003)
        hr = torch.stack([ds[i]["hr"] for i in range(config.count)])
        return ValidationSet(
            hr,
            imresize(hr, scale=1.0 / s).clamp(0, 1),
            [f"synthetic-{i}" for i in range(config.count)],
        )
    hr_dir = Path(config.hr_dir).expanduser().resolve()
    if not hr_dir.is_dir():
        raise FileNotFoundError(f"validation.hr_dir: folder not found: {hr_dir}")
    files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)[: config.count]
    if not files:
        raise FileNotFoundError(f"validation.hr_dir: no images in {hr_dir}")
    lr_dir = Path(config.lr_dir).expanduser().resolve() if config.lr_dir else None
    if lr_dir is not None and not lr_dir.is_dir():
        raise FileNotFoundError(f"validation.lr_dir: folder not found: {lr_dir}")
    hrs, lrs = [], []
    for f in files:
        hr = _read_rgb(f)
        if min(hr.shape[-2:]) < crop:
            raise ValueError(f"{f}: smaller than validation.crop={crop}")
        if lr_dir is not None:
            lr_path = lr_dir / f.name
            if not lr_path.is_file():
                raise FileNotFoundError(f"{lr_path}: no LR image matching {f.name}")
            lr = _read_rgb(lr_path)
            if tuple(lr.shape[-2:]) != (hr.shape[-2] // s, hr.shape[-1] // s):
                raise ValueError(f"{lr_path}: size {tuple(lr.shape[-2:])} is not HR/{s}")
            # Crop HR and LR at the same place (LR offsets = HR offsets / s).
            h, w = lr.shape[-2:]
            c = crop // s
            top, left = (h - c) // 2, (w - c) // 2
            lrs.append(lr[..., top : top + c, left : left + c])
            hrs.append(hr[..., top * s : top * s + crop, left * s : left * s + crop])
        else:
            hr = _center(hr, crop)
            hrs.append(hr)
            lrs.append(imresize(hr, scale=1.0 / s).clamp(0, 1))
    return ValidationSet(torch.cat(hrs), torch.cat(lrs), [f.name for f in files])


def _niqe_metric():
    """NIQE from flowmapsr.metrics, or None (with a one-line warning) when it is not installed."""
    try:
        from flowmapsr.metrics.niqe import NIQE
    except ImportError as err:
        print(f"flowmapsr train: validation.niqe skipped ({err})", flush=True)
        return None
    return NIQE()


def _atomic_png(img, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@torch.no_grad()
def run_validation(
    pipe,
    vset: ValidationSet,
    config: ValidationConfig,
    grid_path: Path | None,
    seed: int = 0,
    lora_scales: list[float] | None = None,
) -> dict[str, float]:
    """Mean PSNR-Y of bicubic and of the pipeline at each (NFE, ω[, LoRA scale]); writes a grid.

    ``pipe`` is an :class:`~flowmapsr.inference.pipeline.SRPipeline` (evaluated image by image).
    """
    dev = pipe.device
    hr = vset.hr
    size = tuple(hr.shape[-2:])
    src_unit = upsample_source(vset.lr, size).clamp(0, 1)
    out = {"psnr_y_bicubic": float(psnr_y(src_unit, hr).mean())}
    niqe = _niqe_metric() if config.niqe else None
    if niqe is not None:
        out["niqe_bicubic"] = float(niqe(src_unit).mean())
    columns = [src_unit]
    g = torch.Generator().manual_seed(seed)
    # Source noise lives in the flow's space: latents under a latent codec.
    codec = pipe.codec
    noise = torch.randn((hr.shape[0], codec.channels, *codec.latent_size(*size)), generator=g)
    settings = [
        (s, w, ls) for ls in (lora_scales or [None]) for s in config.steps for w in config.guidance
    ]
    for steps, omega, ls in settings:
        if ls is not None:
            pipe.set_lora_scale(ls)
        preds = []
        for i in range(hr.shape[0]):
            src = unit_to_model(src_unit[i : i + 1]).to(dev)
            pred = pipe.sample(src, steps=steps, guidance=omega, noise=noise[i : i + 1].to(dev))
            preds.append(model_to_unit(pred.float()).cpu())
        pred = torch.cat(preds)
        key = f"psnr_y_nfe{steps}_w{omega:g}" + ("" if ls is None else f"_lora{ls:g}")
        out[key] = float(psnr_y(pred, hr).mean())
        if niqe is not None:
            out[key.replace("psnr_y", "niqe")] = float(niqe(pred).mean())
        columns.append(pred)
    if lora_scales:
        pipe.set_lora_scale(None)
    if grid_path is not None:
        columns.append(hr)
        rows = [torch.cat([col[i] for col in columns], dim=-1) for i in range(hr.shape[0])]
        grid = torch.cat(rows, dim=-2).unsqueeze(0)
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_png(unit_to_pil(grid), grid_path)
    return out
