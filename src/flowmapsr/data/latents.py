"""Latent caches: a stage's training samples encoded once by its codec (``latents build``).

A latent-codec stage encodes every step's HR crop and source with the VAE (issue 14: "training
encodes targets and sources without gradients, optionally caching latents"). The encoder is most
of a small backbone's step; a cache of ``N`` fixed samples pays it once. Each entry is a sample
as the stage's :class:`~flowmapsr.training.data.BatchStream` makes it (same dataset, crop size,
scales, degradation, clean fraction, negatives, seed) and the codec's posterior of its HR,
source and negative, computed under ``no_grad`` with the codec the run would build.

What is stored is the posterior, not one latent: for a sampling codec (``vae`` with ``latent:
sample``) the mean and std of the latent distribution in the flow's (shifted, scaled) space,
so a training step still draws a fresh latent ``mean + std·ε`` with ``ε`` from the step
generator, in the order encoding on the fly draws them (hr, negative, source); for a
deterministic codec (``latent: mean``, ``tiny_vae``) the latent itself (``*_mean``). What is
fixed per entry: the crop, the scale and the degradation draw (and the clean-bicubic choice);
the source noise ``data.source_noise`` and the latent samples are still drawn per step.

Folder layout (``out``)::

    manifest.json                 settings, codec, fingerprint, shard list (first written, then
                                  completed)
    latents-00000.safetensors     entries 0 … K−1 (K = shard size; the last may be shorter)

Tensors of a shard of ``n`` entries (``C, h, w`` = the codec's latent shape of the crop):

- ``index`` ``(n,)`` int64: entry indices (global, consecutive); ``scale`` ``(n,)`` int64;
- ``hr`` ``(n, 3, H, W)`` uint8: the HR crop (for image-space terms; ``hr_image``);
- ``hr_mean`` (and ``hr_std`` for a sampling codec) ``(n, C, h, w)`` float32;
- ``src_mean`` / ``src_std``: the clean bicubic source's (absent with ``data.source: noise``:
  the step draws ``N(0, I)`` in latent space, as on the fly);
- ``neg_mean`` / ``neg_std``: the negative's (``data.negatives: true`` only).

Entry ``i``: epoch ``e = i // n_images`` of the dataset, image ``order(e)[i % n_images]`` (the
training sampler's seeded permutation), so ``N`` larger than the dataset gives more epochs' crops;
its scale from a generator seeded ``mix_seed(seed, 67, i)``; its degradation, clean choice and
negative from the stream's own per-sample generators. An entry does not depend on ``--batch`` or
the shard size beyond the float rounding of batched convolutions; the same command gives the
same entries (the same bytes on one thread; with more, the posteriors to float rounding).

Resumption and errors follow :mod:`flowmapsr.data.pairs`: shards are written atomically, a
rerun with the same settings keeps finished shards and removes a killed run's temp files; a
folder with other settings is a one-line :class:`LatentsError` naming it and the first keys that
differ. Training (``data.kind: latents``) reads complete folders with
:class:`LatentShardDataset`; a run whose codec is not the cache's (config or weights) is a
one-line error (:func:`check_run_codec`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from flowmapsr.atomic import atomic_write_bytes, remove_stale_temps
from flowmapsr.config import to_dict
from flowmapsr.convert import model_to_unit
from flowmapsr.training.data import LATENT_KEYS, make_generator, mix_seed

MANIFEST = "manifest.json"
FORMAT = "flowmapsr-latents/1"
TAG_SCALE = 67
#: DataConfig keys that decide an entry's contents (recorded, compared on resume and in training).
DATA_KEYS = ("kind", "roots", "crop_size", "scales", "degradation", "clean_fraction",
             "negatives", "source", "synthetic_count", "augment", "seed")  # fmt: skip
#: Of those, the ones a training run must share with the cache (what an entry fixed).
RUN_KEYS = ("crop_size", "scales", "degradation", "clean_fraction", "negatives", "source")


class LatentsError(ValueError):
    """A bad latents folder or setting; one line naming the folder (or file) and the reason."""


def shard_name(k: int) -> str:
    return f"latents-{k:05d}.safetensors"


def codec_fingerprint(codec: torch.nn.Module) -> str:
    """``sha256:…`` of the codec's state dict (names, dtypes, shapes, bytes in name order): two
    codecs with one fingerprint encode alike. A tiny random codec has no weights file to name,
    and a weights folder's files may change, so the cache records this instead of trusting
    either."""
    h = hashlib.sha256()
    for name, t in sorted(codec.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


@dataclass
class LatentSettings:
    """What determines a cache's contents (a resumed build must repeat them exactly)."""

    count: int  # entries
    shard_size: int  # entries per shard
    data: dict  # the stage's DATA_KEYS (roots resolved)
    codec: dict  # the stage's codec config (to_dict)
    codec_fingerprint: str  # codec_fingerprint of the codec actually used

    @property
    def shards(self) -> int:
        return -(-self.count // self.shard_size)

    def indices(self, k: int) -> range:
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.count))


def stage_codec(config) -> torch.nn.Module:
    """The codec a :class:`~flowmapsr.training.trainer.Trainer` of ``config`` encodes with.

    A pretrained codec is read from its folder. A tiny random one gets its weights from the
    global generator after the network is built (``Trainer``: ``manual_seed(mix_seed(seed,
    1))``, the network, then the codec), or is ``init_from``'s own; both are repeated here (the
    caller's global RNG state is left as it was). The fingerprint check at training time
    catches any drift between the two.
    """
    from flowmapsr.codecs import build_codec
    from flowmapsr.training.trainer import build_network, codec_is_state

    if getattr(config.codec, "pretrained", None) is not None and not config.init_from:
        return build_codec(config.codec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mix_seed(config.seed, 1))
        _, config, _, init_codec = build_network(config)
        if (
            init_codec is not None
            and codec_is_state(config, init_codec)
            and init_codec.config.type == config.codec.type
        ):
            return init_codec
        return build_codec(config.codec)


def _data_settings(data) -> dict:
    d = {k: getattr(data, k) for k in DATA_KEYS}
    d["roots"] = [str(Path(r).expanduser().resolve()) for r in data.roots]
    d["scales"] = [int(s) for s in data.scales]
    return d


def _flatten(prefix: str, value) -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}" if prefix else k, v))
        return out
    return {prefix: value}


def _differences(old: dict, new: dict) -> list[str]:
    a, b = _flatten("", old), _flatten("", new)
    return [f"{k}={a.get(k)!r} (now {b.get(k)!r})" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]  # fmt: skip


def read_manifest(folder: str | os.PathLike) -> dict:
    """The folder's ``manifest.json``; :class:`LatentsError` naming the file if absent or bad."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise LatentsError(f"{path}: no latents manifest (make one with `flowmapsr latents build`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LatentsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LatentsError(f"{path}: not a {FORMAT} manifest")
    return data


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def _manifest(s: LatentSettings, codec, stage: str, done: list[int], tensors: list[str]) -> dict:
    return {
        "format": FORMAT,
        "settings": asdict(s),
        "stage": stage,
        "sampling": bool(codec.samples),
        "latent_shape": [codec.channels, *codec.latent_size(s.data["crop_size"],
                                                            s.data["crop_size"])],
        "tensors": tensors,
        "shards": [shard_name(k) for k in range(s.shards)],
        "shards_done": len(done),
        "complete": len(done) == s.shards,
        "seeds": {
            "entry": "epoch i // n_images, image order(epoch)[i % n_images] (the training "
            "sampler's permutation)",
            "scale": f"mix_seed(seed, {TAG_SCALE}, i)",
            "degradation": "BatchStream.make_batch's per-sample generators (seed, tag, epoch, "
            "image)",
        },
    }  # fmt: skip


class EntryMaker:
    """Draws and encodes cache entries of one stage config with its codec (on ``device``)."""

    def __init__(self, config, codec, device="cpu", batch_size: int = 8):
        from flowmapsr.training.data import BatchStream, _EpochIndexed

        self.config, self.codec, self.batch_size = config, codec, max(1, int(batch_size))
        self.device = torch.device(device)
        # batch_size=1: the sampler only has to exist (its permutation is the entry order).
        self.stream = BatchStream(replace(config.data, batch_size=1), self.device)
        self.items = _EpochIndexed(self.stream.dataset)
        self.n = len(self.stream.dataset)
        self._orders: dict[int, list[int]] = {}

    def position(self, i: int) -> tuple[int, int]:
        """Entry ``i`` → ``(epoch, image index)``."""
        epoch = i // self.n
        if epoch not in self._orders:
            self._orders = {epoch: self.stream.sampler.order(epoch).tolist()}
        return epoch, self._orders[epoch][i % self.n]

    def scale(self, i: int) -> int:
        scales = self.config.data.scales
        g = make_generator(self.config.data.seed, TAG_SCALE, i)
        return int(scales[int(torch.randint(len(scales), (1,), generator=g))])

    @torch.no_grad()
    def make(self, indices: range) -> dict[str, torch.Tensor]:
        """The tensors of entries ``indices`` (module docstring), on the CPU."""
        from flowmapsr.training.data import _collate

        rows: dict[int, dict[str, torch.Tensor]] = {}
        chunks = [indices[j : j + self.batch_size] for j in range(0, len(indices), self.batch_size)]
        for chunk in chunks:
            by_scale: dict[int, list[int]] = {}
            for i in chunk:
                by_scale.setdefault(self.scale(i), []).append(i)
            for scale, ids in by_scale.items():
                raw = _collate([self.items[self.position(i)] for i in ids])
                for k, row in zip(ids, self._encode(self.stream.make_batch(raw, scale))):
                    rows[k] = {**row, "scale": torch.tensor(scale, dtype=torch.int64)}
        out = {"index": torch.tensor(list(indices), dtype=torch.int64)}
        for key in rows[indices[0]]:
            out[key] = torch.stack([rows[i][key] for i in indices])
        return out

    def _encode(self, tb) -> list[dict[str, torch.Tensor]]:
        """Per entry of a :class:`TrainBatch`: the uint8 HR crop and the posteriors."""
        hr_u8 = (model_to_unit(tb.hr).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        parts = {"hr": hr_u8}
        images = {"hr": tb.hr, "neg": tb.hr_neg}
        if self.config.data.source != "noise":
            images["src"] = tb.src
        for name, x in images.items():
            if x is None:
                continue
            mean, std = self.codec.posterior(x)
            parts[f"{name}_mean"] = mean.float().cpu()
            if std is not None:
                parts[f"{name}_std"] = std.float().cpu()
        n = tb.hr.shape[0]
        return [{k: v[j].clone() for k, v in parts.items()} for j in range(n)]


def build_latents(
    config,
    out: str | os.PathLike,
    count: int,
    batch_size: int = 8,
    shard_size: int = 256,
    device: str = "cpu",
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Make (or finish) the latent cache ``out`` of a stage ``config`` (a resolved
    :class:`~flowmapsr.training.config.TrainConfig`); returns the folder.

    ``progress``: a tqdm bar over entries (None: when stderr is a terminal); otherwise ``log``
    (default: stderr) gets one line per shard.
    """
    from safetensors.torch import save
    from tqdm import tqdm

    out = Path(out)
    if count < 1 or shard_size < 1:
        raise LatentsError(f"{out}: count and shard size must be ≥ 1, got {count}, {shard_size}")
    if config.data.kind == "latents":
        raise LatentsError(f"{out}: the stage already reads a latent cache (data.kind=latents); "
                           "build from the stage's image data")  # fmt: skip
    if config.codec.type == "identity":
        raise LatentsError(
            f"{out}: the stage's codec is identity (pixels): nothing to encode; latent caches "
            "are for latent-codec stages (codec.type=vae|tiny_vae)"
        )
    if out.exists() and not out.is_dir():
        raise LatentsError(f"{out}: exists and is not a folder")
    if log is None:

        def log(msg: str) -> None:
            print(f"flowmapsr latents: {msg}", file=sys.stderr, flush=True)

    codec = stage_codec(config).to(device).eval().requires_grad_(False)
    settings = LatentSettings(int(count), int(shard_size), _data_settings(config.data),
                              to_dict(config.codec), codec_fingerprint(codec))  # fmt: skip
    if (out / MANIFEST).exists():
        diffs = _differences(read_manifest(out)["settings"], asdict(settings))
        if diffs:
            raise LatentsError(
                f"{out}: this folder holds latents built with other settings: "
                f"{'; '.join(diffs[:4])}; rerun with those settings to resume, or use another --out"
            )
    try:
        maker = EntryMaker(config, codec, device, batch_size)
    except (ValueError, FileNotFoundError) as err:
        raise LatentsError(f"{out}: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, [".safetensors", ".json"])  # a killed build's half-written files

    tensors = ["index", "scale", "hr"] + [
        k for k in LATENT_KEYS
        if (codec.samples or k.endswith("_mean"))
        and (config.data.negatives or not k.startswith("neg"))
        and (config.data.source != "noise" or not k.startswith("src"))
    ]  # fmt: skip

    def done() -> list[int]:
        return [k for k in range(settings.shards) if (out / shard_name(k)).is_file()]

    _write_json(out / MANIFEST, _manifest(settings, codec, config.name, done(), tensors))
    todo = [k for k in range(settings.shards) if k not in set(done())]
    if len(todo) < settings.shards:
        log(f"{settings.shards - len(todo)} of {settings.shards} shards already in {out}")
    interactive = sys.stderr.isatty() if progress is None else bool(progress)
    kept = sum(len(settings.indices(k)) for k in range(settings.shards) if k not in todo)
    bar = tqdm(total=settings.count, initial=kept, desc="latents", unit="entry",
               file=sys.stderr, disable=not interactive)  # fmt: skip

    # One metadata key: safetensors keeps metadata in a hash map, so with several keys the
    # header's order (and the file's bytes) changed from run to run (measured).
    def meta(k: int) -> dict:
        info = {"format": FORMAT, "shard": k, "settings": asdict(settings)}
        return {"flowmapsr": json.dumps(info, sort_keys=True)}

    try:
        for k in todo:
            idx = settings.indices(k)
            data = maker.make(idx)
            blob = save({n: data[n].contiguous() for n in tensors}, metadata=meta(k))
            atomic_write_bytes(out / shard_name(k), blob)
            bar.update(len(idx))
            if not interactive:
                log(f"shard {k + 1}/{settings.shards}: entries {idx.start}–{idx.stop - 1} → "
                    f"{out / shard_name(k)}")  # fmt: skip
    finally:
        bar.close()
    _write_json(out / MANIFEST, _manifest(settings, codec, config.name, done(), tensors))
    return out


def list_shards(folder: str | os.PathLike) -> tuple[dict, list[Path]]:
    """``(manifest, shard paths)`` of a complete cache; :class:`LatentsError` naming the folder
    when a shard is missing (an unfinished build: rerun it to finish)."""
    folder = Path(folder)
    man = read_manifest(folder)
    paths = [folder / name for name in man["shards"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise LatentsError(
            f"{folder}: {len(missing)} of {len(paths)} shards missing (first: {missing[0]}); the "
            "build did not finish: rerun `flowmapsr latents build` with the same settings"
        )
    return man, paths


class LatentShardDataset(Dataset):
    """The entries of one or more complete latent caches (``data.kind: latents``).

    Item ``i`` (entries folder by folder) → ``{"hr": (3, H, W) uint8, "scale": () int64,
    "<name>_mean" / "<name>_std": (C, h, w) float32}`` (the keys the manifest lists). Rows are
    read with safetensors slices; each process opens a shard once, lazily (the dataset pickles
    into DataLoader workers). All folders must share the codec (config and fingerprint), the
    data settings an entry fixes (:data:`RUN_KEYS`) and the tensors.
    """

    def __init__(self, roots: list[str | os.PathLike]):
        if not roots:
            raise LatentsError("data.kind=latents needs data.roots (one or more latents folders)")
        self.rows: list[tuple[Path, int]] = []
        self.manifests: list[dict] = []
        first = None
        for root in roots:
            man, paths = list_shards(root)
            s = man["settings"]
            key = {"codec": s["codec"], "codec_fingerprint": s["codec_fingerprint"],
                   "tensors": man["tensors"], **{k: s["data"][k] for k in RUN_KEYS}}  # fmt: skip
            if first is None:
                first = (root, key)
            elif key != first[1]:
                diffs = _differences(first[1], key)
                raise LatentsError(
                    f"{root}: its latents do not match {first[0]}'s ({'; '.join(diffs[:3])}); "
                    "one data.roots list needs one codec and one entry shape"
                )
            per = [s["shard_size"]] * (len(paths) - 1)
            per.append(s["count"] - s["shard_size"] * (len(paths) - 1))
            self.rows += [(p, r) for p, n in zip(paths, per) for r in range(n)]
            self.manifests.append(man)
        self.root = Path(first[0])
        self.settings = self.manifests[0]["settings"]
        self.keys = [k for k in self.manifests[0]["tensors"] if k != "index"]
        self._open: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # safetensors handles do not pickle; workers reopen
        return {**self.__dict__, "_open": {}}

    def set_epoch(self, epoch: int) -> None:  # entries are fixed
        pass

    def __getitem__(self, i: int) -> dict:
        from safetensors import safe_open

        path, row = self.rows[int(i)]
        f = self._open.get(path)
        if f is None:
            try:
                f = self._open[path] = safe_open(str(path), framework="pt")
            except Exception as err:  # safetensors raises its own error types
                raise LatentsError(f"{path}: cannot read latents shard ({err})") from None
        return {k: f.get_slice(k)[row : row + 1][0] for k in self.keys}


def check_stream_settings(dataset: LatentShardDataset, data) -> str:
    """The stream's :data:`RUN_KEYS` against the cache's: a one-line :class:`LatentsError`
    naming the folder and the keys when they differ (an entry fixed them); else the stream's
    one-line degradation description."""
    stored = dataset.settings["data"]
    diffs = [f"data.{k}={stored[k]!r} in the cache (run: {_norm(getattr(data, k))!r})"
             for k in RUN_KEYS if stored[k] != _norm(getattr(data, k))]  # fmt: skip
    if diffs:
        raise LatentsError(
            f"{dataset.root}: {'; '.join(diffs)}: each entry's crop, scale and degradation were "
            "fixed by `latents build`; set these keys to the cache's"
        )
    clean = stored["clean_fraction"]
    extra = f", {clean:.0%} plain bicubic" if clean else ""
    return f"stored in the latent cache ({stored['degradation']}{extra} by `latents build`)"


def _norm(v):
    return [int(x) for x in v] if isinstance(v, list | tuple) else v


def check_run_codec(dataset: LatentShardDataset, config_codec, codec) -> None:
    """A one-line :class:`LatentsError` when the run's codec is not the cache's: another config
    (type, weights folder, latent mode, ...) or other weights (fingerprint)."""
    stored = dataset.settings
    diffs = _differences(stored["codec"], to_dict(config_codec))
    if diffs:
        raise LatentsError(
            f"{dataset.root}: the latents were encoded with another codec (codec.{diffs[0]}"
            f"{'; …' if len(diffs) > 1 else ''}); set the run's codec to the cache's or rebuild it"
        )
    fp = codec_fingerprint(codec)
    if fp != stored["codec_fingerprint"]:
        raise LatentsError(
            f"{dataset.root}: the run's codec weights ({fp[:19]}…) are not the ones the latents "
            f"were encoded with ({stored['codec_fingerprint'][:19]}…); rebuild the cache with "
            "this stage's settings"
        )


def sample_cached(codec, latents: dict[str, torch.Tensor], generator: torch.Generator):
    """``(hr, hr_neg, src)`` latents ``(B, C, h, w)`` from a batch's stored posteriors, drawn
    from ``generator`` in the order on-the-fly encoding draws them (hr, negative, source);
    no stored source (``data.source: noise``) → ``N(0, I)`` from ``generator``, as on the fly.
    ``hr_neg`` is None without negatives."""

    def draw(name: str):
        mean = latents.get(f"{name}_mean")
        return None if mean is None else codec.sample(mean, latents.get(f"{name}_std"), generator)

    hr, neg = draw("hr"), draw("neg")
    src = draw("src")
    if src is None:
        src = torch.randn(hr.shape, generator=generator, device=hr.device)
    return hr, neg, src
