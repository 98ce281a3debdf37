"""Offline teacher pairs for FluxSR's flow trajectory distillation (arXiv 2502.01993, §4.1).

A noise → image teacher (t = 1 noise, t = 0 image; DESIGN.md §1) is run from ``ε`` with
``steps`` explicit-Euler steps of its velocity to ``z_0``; the decoded image ``x_0`` is
degraded (Real-ESRGAN pipeline, :mod:`flowmapsr.data.degradations`) to an LR image, which is
upsampled back to the HR size and encoded to ``z_L``. FTD (Eq. 15–17) needs ``ε``, ``z_0`` and
``z_L``; the one-step generator's reconstruction loss needs ``x_0``.

Folder layout (``output``)::

    manifest.json              settings, seeds, teacher, counts (written first, completed last)
    pairs-00000.safetensors    pairs 0 … K−1 (K = shard_size; the last shard may be shorter)
    pairs-00001.safetensors    …

Tensors of a shard of ``n`` pairs (flow space = the teacher codec's: pixels for the identity
codec, ``(C, H/f, W/f)`` latents for a VAE):

- ``index`` ``(n,)`` int64: the pair indices (global, consecutive);
- ``eps`` ``(n, C, h, w)`` float32: the noise at t = 1;
- ``z0`` ``(n, C, h, w)`` float32: the ODE's end at t = 0 (not clamped: the trajectory's end);
- ``x0`` ``(n, 3, H, W)`` float32 in ``[-1, 1]``: ``decode(z0)`` clamped, the HR image;
- ``lr`` ``(n, 3, H/s, W/s)`` uint8: its degradation (exact: the pipeline quantises to 8 bits);
- ``zl`` ``(n, C, h, w)`` float32: ``encode(unit_to_model(upsample_source(lr, (H, W))))``.

Seeds: pair ``i``'s noise comes from a generator seeded by ``mix_seed(seed, 51, i)``, its
degradation from ``mix_seed(seed, 53, i)`` and a sampling codec's latent draw from
``mix_seed(seed, 59, i)``: a pair is the same whatever the shard size, batch size or run it was
made in (up to the float rounding of batched convolutions). ε is drawn on the CPU, so it is the
same on every device; the degradation draws on the teacher's device (like ``BatchStream``'s).

Resumption: each shard is written atomically (:mod:`flowmapsr.atomic`), so a shard file that
exists is complete; a rerun with the same settings skips those and makes the missing ones, and
temp files of a killed run are removed. Other settings in an existing folder are an error.

Inverted pairs (``images``, ``flowmapsr pairs generate --from-images DIR``) — not in the paper:
``x_0`` is a real HR crop (pair ``i``: image ``i mod N`` of the folder, crop and flips seeded by
``(seed, i // N, i mod N)``), ``z_0 = encode(x_0)``, and ``ε`` comes from running the same Euler
solver the other way, ``t = 0 → 1``, from ``z_0``. The pair is then (up to the inversion error of
explicit Euler, which shrinks with ``steps``) on the teacher's trajectory as FTD needs, while the
HR images are photos, not the teacher's samples. Why: a teacher too weak to generate images (a
small net trained for minutes on a CPU) still has an ODE that couples noise and photos; with
sampled pairs the student learns to super-resolve the teacher's failures. ``x0`` then holds the
crop itself (not ``decode(z0)``), so the reconstruction loss compares with the photo.

Training reads complete folders through :class:`PairShardDataset` (``data.kind: pairs``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch
from torch.utils.data import Dataset

from flowmapsr.atomic import atomic_write_bytes, remove_stale_temps
from flowmapsr.convert import model_to_unit, unit_to_model
from flowmapsr.flowmap import Condition
from flowmapsr.resize import upsample_source
from flowmapsr.training.data import make_generator

MANIFEST = "manifest.json"
FORMAT = "flowmapsr-pairs/1"
TAG_EPS, TAG_DEGRADE, TAG_ENCODE, TAG_ENCODE_HR = 51, 53, 59, 61
TENSORS = ("index", "eps", "z0", "x0", "lr", "zl")


class PairsError(ValueError):
    """A bad pairs folder or setting; the message is one line naming the file and the reason."""


def shard_name(k: int) -> str:
    return f"pairs-{k:05d}.safetensors"


@dataclass
class PairSettings:
    """What determines the pairs' contents (a rerun must repeat them exactly)."""

    teacher: str  # the teacher pipeline folder (resolved path)
    count: int  # pairs
    size: int  # HR side H = W (pixels)
    scale: int  # LR = HR / scale
    steps: int  # Euler steps of the teacher's ODE, t = 1 → 0
    seed: int
    shard_size: int  # pairs per shard
    degradation: str = "realesrgan"  # preset of flowmapsr.data.degradations
    grid: str = "uniform"  # time grid kind (flowmapsr.inference.solvers.time_grid)
    images: str = ""  # "" = sample z_0 from ε; a folder = invert its HR crops (module docstring)
    max_side: int = 0  # inverted pairs: photos shrunk to this longer side first (0 = as they are)

    @property
    def shards(self) -> int:
        return -(-self.count // self.shard_size)

    def indices(self, k: int) -> range:
        """The pair indices of shard ``k``."""
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.count))

    def check(self) -> None:
        for key, lo in (("count", 1), ("size", 1), ("scale", 1), ("steps", 1), ("shard_size", 1)):
            if getattr(self, key) < lo:
                raise PairsError(f"{key} must be ≥ {lo}, got {getattr(self, key)}")
        if self.max_side < 0:
            raise PairsError(f"max_side must be ≥ 0, got {self.max_side}")
        if self.images and not Path(self.images).is_dir():
            raise PairsError(f"{self.images}: no such image folder (--from-images)")
        if self.size % self.scale:
            raise PairsError(f"size {self.size} is not a multiple of scale {self.scale}")


def noise_for(seed: int, index: int, shape: tuple[int, ...], device="cpu") -> torch.Tensor:
    """Pair ``index``'s ε ``shape`` (e.g. ``(C, h, w)``), standard normal, float32.

    Drawn on the CPU and moved: a CUDA generator gives other numbers for the same seed, and the
    same index should give the same ε on every device.
    """
    g = make_generator(seed, TAG_EPS, index)
    return torch.randn(shape, generator=g).to(device)


class PairMaker:
    """Makes the pairs of one settings block with a loaded teacher (an ``SRPipeline``).

    ``batch_size``: pairs through the teacher at once (memory; the contents do not depend on
    it beyond float rounding). The teacher runs on its network's diagonal ``u(x, t, t)`` with a
    null condition (prompt None, ω None, no source), as the ``fm`` objective trained it.
    """

    def __init__(self, pipe, settings: PairSettings, batch_size: int = 8):
        from flowmapsr.data.degradations import Degradation

        self.pipe, self.s, self.batch_size = pipe, settings, max(1, int(batch_size))
        if pipe.config.net.get("concat_source", False):
            raise PairsError(
                f"{settings.teacher}: the network concatenates an LR source (concat_source), so "
                "it is an SR model, not a noise → image teacher (train one with fluxsr-teacher-fm)"
            )
        m = pipe.size_multiple
        if settings.size % m:
            raise PairsError(f"size {settings.size} is not a multiple of the teacher's {m}")
        self.degrade = Degradation.from_preset(settings.degradation)
        codec = pipe.codec
        self.latent_shape = (codec.channels, *codec.latent_size(settings.size, settings.size))
        self.photos = None
        if settings.images:
            from flowmapsr.data.datasets import HRFolderDataset

            try:
                self.photos = HRFolderDataset(
                    settings.images, settings.size, augment=True, seed=settings.seed,
                    multiple_of=1, max_side=settings.max_side or None,
                )  # fmt: skip
            except ValueError as err:
                raise PairsError(f"{settings.images}: {err}") from None

    def photo(self, index: int) -> torch.Tensor:
        """Pair ``index``'s HR crop ``(3, size, size)`` in ``[0, 1]`` (inverted pairs)."""
        n = len(self.photos)
        self.photos.set_epoch(index // n)  # a new crop of the same image on each pass
        return self.photos[index % n]["hr"]

    def _encode(self, x: torch.Tensor, indices: range, tag: int) -> torch.Tensor:
        """``encode(x)`` of ``(n, 3, H, W)`` model-space images; a sampling codec draws each
        pair's latent from that pair's own generator."""
        codec, dev, dt = self.pipe.codec, self.pipe.device, self.pipe.dtype
        if not codec.samples:
            return codec.encode(x.to(dt))
        return torch.cat(
            [
                codec.encode(
                    x[k : k + 1].to(dt),
                    generator=make_generator(self.s.seed, tag, i, device=dev),
                )
                for k, i in enumerate(indices)
            ]
        )

    @torch.no_grad()
    def make(self, indices: range) -> dict[str, torch.Tensor]:
        """The tensors of pairs ``indices`` (see the module docstring), on the CPU."""
        parts = [
            self._batch(indices[i : i + self.batch_size])
            for i in range(0, len(indices), self.batch_size)
        ]
        return {k: torch.cat([p[k] for p in parts]) for k in TENSORS}

    def _batch(self, indices: range) -> dict[str, torch.Tensor]:
        from flowmapsr.inference.solvers import euler_solve, time_grid

        s, pipe = self.s, self.pipe
        dev, dt = pipe.device, pipe.dtype
        hw = (s.size, s.size)
        grid = time_grid(s.steps, s.grid, device=dev)
        net = pipe.inference_net()
        if self.photos is None:
            eps = torch.stack([noise_for(s.seed, i, self.latent_shape, dev) for i in indices])
            z0 = euler_solve(net, eps.to(dt), grid, Condition()).float()
            x0 = pipe.codec.decode(z0.to(dt), size=hw).float().clamp(-1, 1)
        else:  # inverted: the same solver on the reversed grid, photo → noise
            x0 = unit_to_model(torch.stack([self.photo(i) for i in indices]).to(dev))
            z0 = self._encode(x0, indices, TAG_ENCODE_HR).float()
            eps = euler_solve(net, z0.to(dt), grid.flip(0), Condition()).float()
        gens = [make_generator(s.seed, TAG_DEGRADE, i, device=dev) for i in indices]
        lr, _ = self.degrade(model_to_unit(x0).clamp(0, 1), s.scale, gens)
        src = unit_to_model(upsample_source(lr.clamp(0, 1), hw))
        zl = self._encode(src, indices, TAG_ENCODE)
        return {
            "index": torch.tensor(list(indices), dtype=torch.int64),
            "eps": eps.float().cpu(),
            "z0": z0.cpu(),
            "x0": x0.cpu(),
            "lr": (lr.clamp(0, 1) * 255).round().to(torch.uint8).cpu(),
            "zl": zl.float().cpu(),
        }


def _manifest(settings: PairSettings, pipe, complete: bool, done: int) -> dict:
    return {
        "format": FORMAT,
        "settings": asdict(settings),
        "shards": settings.shards,
        "shards_done": done,
        "complete": complete,
        "seeds": {
            "eps": f"mix_seed(seed, {TAG_EPS}, index)",
            "degradation": f"mix_seed(seed, {TAG_DEGRADE}, index)",
            "encode": f"mix_seed(seed, {TAG_ENCODE}, index) (sampling codecs only)",
            "encode_hr": f"mix_seed(seed, {TAG_ENCODE_HR}, index) (inverted pairs, sampling "
            "codecs only)",
            "crop": "HRFolderDataset(images, size, seed).set_epoch(index // N)[index % N] "
            "(inverted pairs)",
        },
        "teacher_net": pipe.config.net,
        "codec": pipe.config.codec,
        "latent_shape": [
            pipe.codec.channels,
            *pipe.codec.latent_size(settings.size, settings.size),
        ],
        "teacher_info": pipe.config.info,
        "solver": "euler on u(x, t, t), null condition"
        + (", t = 0 → 1 from encode(photo crop) (inverted pairs)" if settings.images else ""),
        "tensors": list(TENSORS),
    }


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def read_manifest(folder: str | os.PathLike) -> dict:
    """The folder's ``manifest.json``; :class:`PairsError` naming the file if absent or bad."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise PairsError(f"{path}: no pairs manifest (make one with `flowmapsr pairs generate`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PairsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PairsError(f"{path}: not a {FORMAT} manifest")
    return data


def _check_same(path: Path, old: dict, new: PairSettings) -> None:
    want = asdict(new)
    # A key an older manifest lacks had its default then (e.g. images = "" before inversion).
    defaults = {f.name: f.default for f in fields(PairSettings) if f.default is not MISSING}
    old = {**defaults, **old}
    diffs = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in want.items() if old.get(k) != v]
    if diffs:
        raise PairsError(
            f"{path}: this folder holds pairs made with other settings: {'; '.join(diffs)}; "
            "rerun with those settings to resume, or use another --output"
        )


def generate_pairs(
    teacher: str | os.PathLike,
    output: str | os.PathLike,
    count: int,
    size: int,
    scale: int = 4,
    steps: int = 8,
    seed: int = 0,
    shard_size: int = 64,
    degradation: str = "realesrgan",
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    images: str | os.PathLike | None = None,
    max_side: int = 0,
) -> Path:
    """Make (or finish) the pairs folder ``output``; returns it. See the module docstring.

    ``images``: a folder of HR photos to invert through the teacher instead of sampling from
    noise (inverted pairs); ``max_side`` shrinks those photos first.

    ``progress``: a tqdm bar over shards (None: when stderr is a terminal); otherwise ``log``
    (default: stderr) gets one line per shard.
    """
    from tqdm import tqdm

    from flowmapsr.inference.pipeline import SRPipeline

    out = Path(output)
    teacher = Path(teacher).expanduser().resolve()
    images = str(Path(images).expanduser().resolve()) if images else ""
    settings = PairSettings(str(teacher), int(count), int(size), int(scale), int(steps),
                            int(seed), int(shard_size), degradation, images=images,
                            max_side=int(max_side))  # fmt: skip
    settings.check()
    if log is None:

        def log(msg: str) -> None:
            print(f"flowmapsr pairs: {msg}", file=sys.stderr, flush=True)

    if out.exists() and not out.is_dir():
        raise PairsError(f"{out}: exists and is not a folder")
    if out.resolve() == teacher or teacher in out.resolve().parents:
        raise PairsError(f"{out}: the output must not be inside the teacher folder {teacher}")
    if (out / MANIFEST).exists():
        _check_same(out / MANIFEST, read_manifest(out).get("settings", {}), settings)
    try:
        pipe = SRPipeline.from_pretrained(teacher, device=device)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        msg = str(err).strip().splitlines()[0]  # a state-dict mismatch lists every key
        raise PairsError(msg if str(teacher) in msg else f"{teacher}: {msg}") from None
    maker = PairMaker(pipe, settings, batch_size)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, [".safetensors", ".json"])  # a killed run's half-written files

    def done_shards() -> list[int]:
        return [k for k in range(settings.shards) if (out / shard_name(k)).is_file()]

    _write_json(out / MANIFEST, _manifest(settings, pipe, False, len(done_shards())))
    todo = [k for k in range(settings.shards) if not (out / shard_name(k)).is_file()]
    if len(todo) < settings.shards:
        log(f"{settings.shards - len(todo)} of {settings.shards} shards already in {out}")
    interactive = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=settings.shards, initial=settings.shards - len(todo), desc="shards",
               unit="shard", file=sys.stderr, disable=not interactive)  # fmt: skip
    try:
        for k in todo:
            t0 = time.perf_counter()
            idx = settings.indices(k)
            tensors = maker.make(idx)
            _write_shard(out / shard_name(k), tensors, settings, k)
            bar.update(1)
            if not interactive:
                log(f"shard {k + 1}/{settings.shards}: pairs {idx.start}–{idx.stop - 1} "
                    f"in {time.perf_counter() - t0:.1f} s → {out / shard_name(k)}")  # fmt: skip
    finally:
        bar.close()
    _write_json(out / MANIFEST, _manifest(settings, pipe, True, len(done_shards())))
    return out


def _write_shard(path: Path, tensors: dict, settings: PairSettings, k: int) -> None:
    from safetensors.torch import save

    meta = {"format": FORMAT, "shard": str(k), "settings": json.dumps(asdict(settings))}
    data = save({n: t.contiguous() for n, t in tensors.items()}, metadata=meta)
    atomic_write_bytes(path, data)


def list_shards(folder: str | os.PathLike) -> tuple[dict, list[Path]]:
    """``(manifest, shard paths in order)`` of a complete pairs folder; :class:`PairsError`
    naming the folder when a shard is missing (an unfinished run: rerun it to finish)."""
    folder = Path(folder)
    man = read_manifest(folder)
    n = int(man["shards"])
    paths = [folder / shard_name(k) for k in range(n)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PairsError(
            f"{folder}: {len(missing)} of {n} shards missing (first: {missing[0]}); the run "
            "did not finish: rerun `flowmapsr pairs generate` with the same settings"
        )
    return man, paths


class PairShardDataset(Dataset):
    """The pairs of one or more complete pairs folders, for training (``data.kind: pairs``).

    Item ``i`` (pairs numbered folder by folder, then by their stored index) →
    ``{"x0": (3, H, W) float32 in [-1, 1], "lr": (3, H/s, W/s) uint8, "eps", "z0", "zl":
    (C, h, w) float32 in the teacher codec's space}``. Rows are read with safetensors slices
    (only that pair's bytes); each process opens every shard once, lazily, so the dataset
    pickles into DataLoader workers. No cropping or flips: a flipped ε is not the noise the
    teacher's ODE started from, so a pair is used whole. All folders must share the size, the
    scale, the codec and the latent shape (one batch, one shape).
    """

    def __init__(self, roots: list[str | os.PathLike]):
        if not roots:
            raise PairsError("data.kind=pairs needs data.roots (one or more pairs folders)")
        self.rows: list[tuple[Path, int]] = []
        self.manifests: list[dict] = []
        first = None
        for root in roots:
            man, paths = list_shards(root)
            s = man["settings"]
            key = (s["size"], s["scale"], json.dumps(man["codec"], sort_keys=True),
                   tuple(man["latent_shape"]))  # fmt: skip
            if first is None:
                first = (root, key)
            elif key != first[1]:
                raise PairsError(
                    f"{root}: pairs of size {s['size']}, x{s['scale']}, codec {man['codec']} do "
                    f"not match {first[0]}'s; one data.roots list needs one shape"
                )
            per = [s["shard_size"]] * (len(paths) - 1)
            per.append(s["count"] - s["shard_size"] * (len(paths) - 1))
            self.rows += [(p, r) for p, n in zip(paths, per) for r in range(n)]
            self.manifests.append(man)
        self.size, self.scale = int(first[1][0]), int(first[1][1])
        self.codec = self.manifests[0]["codec"]
        self._open: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # safetensors handles do not pickle; workers reopen
        return {**self.__dict__, "_open": {}}

    def set_epoch(self, epoch: int) -> None:  # the pairs do not change with the epoch
        pass

    def __getitem__(self, i: int) -> dict:
        from safetensors import safe_open

        path, row = self.rows[int(i)]
        f = self._open.get(path)
        if f is None:
            try:
                f = self._open[path] = safe_open(str(path), framework="pt")
            except Exception as err:  # safetensors raises its own error types
                raise PairsError(f"{path}: cannot read pair shard ({err})") from None
        return {k: f.get_slice(k)[row : row + 1][0] for k in ("x0", "lr", "eps", "z0", "zl")}
