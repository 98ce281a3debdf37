"""Image datasets: HR folders for on-the-fly degradation, paired LR/HR folders, plain folders.

All return float tensors ``(3, H, W)`` in [0, 1] (the degradation pipeline's range; convert with
:func:`flowmapsr.convert.unit_to_model` for the network). Images are read with Pillow (EXIF
orientation applied, greyscale / palette / alpha / 16-bit / float converted to 8-bit RGB) through
:mod:`flowmapsr.imageio`, the package's one image reader.

Bad files never crash an epoch: files Pillow cannot identify are dropped when the folder is
indexed, with a warning naming them; a file that fails later, when decoded, is replaced by
another item (the next good one) and named in a warning once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from flowmapsr import imageio
from flowmapsr.data.degradations.sampling import seeded_generator
from flowmapsr.imageio import LIBRARY_MAX_PIXELS, ImageReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(roots: str | Path | Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """Sorted image files (by extension) under one or more folders, or the files themselves."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            files.append(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such file or folder")
        it = root.rglob("*") if recursive else root.iterdir()
        files.extend(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(set(files))


def read_image_uint8(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; raises :class:`ImageReadError`.

    Decoded by :func:`flowmapsr.imageio.read_image` (EXIF orientation, every mode, float TIFFs,
    a multi-frame file refused rather than cut to its first frame), then made 8-bit RGB (grey
    repeated, 16-bit and float rounded, alpha dropped). With ``max_side``, larger images are
    shrunk (aspect kept, Pillow Lanczos) so their longer side is ``max_side``; JPEGs are then
    decoded at a reduced DCT scale first (``Image.draft``), several times cheaper on a 20 MP photo.
    """
    pic = imageio.read_image(path, max_pixels=LIBRARY_MAX_PIXELS, max_side=max_side)
    for note in pic.notes:
        warnings.warn(note, stacklevel=2)
    return pic.rgb8()


def _uint8_to_tensor(a: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float32 in [0, 1] (copied: arrays may be read-only)."""
    return torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def read_image(path: str | Path, max_side: int | None = None) -> torch.Tensor:
    """Read an image file as ``(3, H, W)`` float32 in [0, 1] (see :func:`read_image_uint8`)."""
    return _uint8_to_tensor(read_image_uint8(path, max_side))


def probe_image(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` from the file header, or None (with a warning) if it cannot be identified."""
    try:
        return imageio.probe_size(path)
    except ImageReadError as e:
        warnings.warn(f"skipping {e}", stacklevel=3)
        return None


def augment_dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random h-flip, v-flip and transpose of ``(C, H, W)``: all 8 dihedral symmetries."""
    hflip, vflip, rot = (torch.rand(3, generator=g, device=g.device) < 0.5).tolist()
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if rot:
        x = x.transpose(-1, -2)
    return x.contiguous()


def _randint(g: torch.Generator, high: int) -> int:
    """Uniform integer in ``[0, high]``."""
    return int(torch.randint(0, high + 1, (1,), generator=g, device=g.device).item())


class _SkippingDataset(Dataset):
    """Shared logic: an index of good files and substitution of files that fail to decode."""

    def __init__(self):
        self.epoch = 0
        self._bad: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops/flips for a new epoch (deterministic per (seed, epoch, i))."""
        self.epoch = int(epoch)

    def _load(self, i: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if n == 0:
            raise IndexError("empty dataset")
        i = int(i) % n
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                return self._load(j)
            except ImageReadError as e:
                # Worker processes each keep their own set, so a file may be named once per worker.
                self._bad.add(j)
                warnings.warn(f"skipping {e}; using another item instead", stacklevel=2)
        raise RuntimeError("no readable image left in the dataset")


class HRFolderDataset(_SkippingDataset):
    """HR images from folder(s) as random square crops, for on-the-fly degradation.

    Item ``i`` → ``{"hr": (3, crop, crop) float [0, 1], "path": str}``. The crop position and the
    flips / 90° rotation come from a generator seeded by ``(seed, epoch, i)``. Images smaller than
    the crop on either side are **upscaled** (Pillow bicubic, aspect kept) until the short side
    equals the crop — reflect padding would mirror content into a quarter of the crop.
    ``max_side`` shrinks big photos when read (see :func:`read_image`): cheaper decoding, and
    crops that hold more of the scene (Real-ESRGAN also trains on downscaled copies of its HR).
    """

    def __init__(
        self,
        roots: str | list[str],
        crop_size: int,
        augment: bool = True,
        seed: int = 0,
        multiple_of: int = 8,
        recursive: bool = True,
        max_side: int | None = None,
    ):
        super().__init__()
        self.max_side = max_side
        if crop_size < 1 or crop_size % multiple_of:
            raise ValueError(f"crop_size {crop_size} must be a positive multiple of {multiple_of}")
        self.crop_size = int(crop_size)
        self.augment = augment
        self.seed = int(seed)
        self.paths = [p for p in list_images(roots, recursive) if probe_image(p) is not None]
        if not self.paths:
            raise ValueError(f"no readable images found under {roots}")

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> dict:
        path = self.paths[i]
        img = read_image_uint8(path, max_side=self.max_side)
        g = seeded_generator(self.seed, self.epoch, i)
        c = self.crop_size
        h, w = img.shape[:2]
        if h < c or w < c:
            f = c / min(h, w)
            h, w = max(c, round(h * f)), max(c, round(w * f))
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        top, left = _randint(g, h - c), _randint(g, w - c)
        # Crop before converting to float: a 20 MP photo would otherwise cost 240 MB per item.
        crop = _uint8_to_tensor(img[top : top + c, left : left + c])
        if self.augment:
            crop = augment_dihedral(crop, g)
        return {"hr": crop.contiguous(), "path": str(path)}


class PairedFolderDataset(_SkippingDataset):
    """LR/HR pairs matched by stem: ``{"lr": (3, h, w), "hr": (3, h·s, w·s), "path": hr_path}``.

    An HR larger than ``scale ×`` LR by less than ``scale`` pixels is cropped to fit (the usual
    "mod-crop" mismatch); other size mismatches are skipped with a warning. With ``crop_size``
    (HR pixels, a multiple of ``scale``) aligned random crops are taken, seeded by
    ``(seed, epoch, i)``; with ``augment`` the same flips/rotation apply to both.
    """

    def __init__(
        self,
        lr_dir: str,
        hr_dir: str,
        scale: int,
        crop_size: int | None = None,
        augment: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if crop_size is not None and (crop_size < scale or crop_size % scale):
            raise ValueError(f"crop_size {crop_size} must be a positive multiple of scale {scale}")
        self.scale, self.crop_size, self.augment, self.seed = int(scale), crop_size, augment, seed
        lrs = {p.stem: p for p in list_images(lr_dir, recursive=False)}
        hrs = {p.stem: p for p in list_images(hr_dir, recursive=False)}
        for stem in sorted(set(lrs) ^ set(hrs)):
            side = "HR" if stem in lrs else "LR"
            where = lrs.get(stem) or hrs.get(stem)
            warnings.warn(f"skipping {where}: no {side} image with the same stem", stacklevel=2)
        self.pairs = [
            (lrs[s], hrs[s])
            for s in sorted(set(lrs) & set(hrs))
            if probe_image(lrs[s]) is not None and probe_image(hrs[s]) is not None
        ]
        if not self.pairs:
            raise ValueError(f"no readable LR/HR pairs in {lr_dir} and {hr_dir}")

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, i: int) -> dict:
        lr_path, hr_path = self.pairs[i]
        lr, hr = read_image(lr_path), read_image(hr_path)
        s = self.scale
        _, h, w = lr.shape
        hh, hw = hr.shape[-2:]
        if not (h * s <= hh < (h + 1) * s and w * s <= hw < (w + 1) * s):
            raise ImageReadError(f"{hr_path}: HR {hh}x{hw} does not match LR {h}x{w} at scale {s}")
        hr = hr[:, : h * s, : w * s]
        g = seeded_generator(self.seed, self.epoch, i)
        if self.crop_size is not None:
            c = self.crop_size // s
            if h < c or w < c:
                raise ImageReadError(f"{lr_path}: LR {h}x{w} is smaller than the crop {c}x{c}")
            top, left = _randint(g, h - c), _randint(g, w - c)
            lr = lr[:, top : top + c, left : left + c]
            hr = hr[:, top * s : (top + c) * s, left * s : (left + c) * s]
        if self.augment:
            state = g.get_state()
            lr = augment_dihedral(lr, g)
            g.set_state(state)  # the same draws for both images keep them aligned
            hr = augment_dihedral(hr, g)
        return {"lr": lr.contiguous(), "hr": hr.contiguous(), "path": str(hr_path)}


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (or the single file ``root``), whole: ``{"image", "path"}``.

    For inference: files Pillow cannot identify are skipped with a warning at index time; a file
    that fails to decode later raises :class:`ImageReadError` (naming it) so the caller can report
    it and go on — silently substituting another image would be wrong here.
    """

    def __init__(self, root: str, recursive: bool = True):
        self.paths = [p for p in list_images(root, recursive) if probe_image(p) is not None]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        return {"image": read_image(path), "path": str(path)}
