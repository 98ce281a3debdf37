"""The training batch stream: HR crops → (degraded LR, SR source, negatives) on the device.

Where the data come from: ``kind: folders`` reads HR folders through
``flowmapsr.data.datasets.HRFolderDataset``; ``kind: synthetic`` makes procedural images
(gradients, gratings, discs, noise textures) from the seed, so tests and smoke runs need no files.
Degradations run batched on the training device through ``flowmapsr.data.degradations``
(``Degradation.from_preset``); the trainer logs which preset is used.

Exact resumption: the order is a seeded permutation per epoch (:class:`ResumableBatchSampler`),
its position is counted in *consumed* batches (workers may prefetch ahead) and saved in the
checkpoint; every per-sample random draw of a degradation comes from a generator seeded by
``(seed, epoch, index)``, so a batch is a pure function of ``(seed, epoch, indices)``.

``kind: pairs`` reads the shards of ``flowmapsr pairs generate`` (:mod:`flowmapsr.data.pairs`):
no degradation is drawn, hr is the teacher's image x_0, src the stored LR upsampled, and the
batch carries the pair's noise ε, ODE end z_0 and encoded source z_L (:class:`TrainBatch`).

``kind: latents`` reads the shards of ``flowmapsr latents build`` (:mod:`flowmapsr.data.latents`):
each entry's HR crop (uint8) and the codec's posterior of its HR, source and negative, drawn and
encoded once; the trainer samples the latents from the step generator without the encoder.
The scale and degradation are fixed per entry.

``source: noise`` (a noise → image model, FluxSR's teacher) replaces the degraded LR at t = 1 by
``N(0, I)`` of the HR shape, drawn from a generator seeded by ``(seed, 43, epoch, index)``: like
the degradation draws, a pure function of the sample's position, so the consumed-batch count
already saved in the checkpoint resumes it exactly (no generator state to store).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from flowmapsr.convert import model_to_unit, unit_to_model
from flowmapsr.resize import upsample_source
from flowmapsr.training.config import DataConfig

#: The posterior tensors a latent cache entry may hold (:mod:`flowmapsr.data.latents`).
LATENT_KEYS = ("hr_mean", "hr_std", "src_mean", "src_std", "neg_mean", "neg_std")


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style mixing), stable across runs and platforms."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def make_generator(*parts: int, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(mix_seed(*parts))


# -- datasets ---------------------------------------------------------------------------------
class SyntheticHRDataset(Dataset):
    """Procedural HR images ``(3, c, c)`` in ``[0, 1]``, a pure function of ``(seed, index)``.

    Each image sums a colour gradient, a few oriented sinusoidal gratings (fine detail that
    bicubic downscaling removes), soft discs and a little smoothed noise, so SR has something
    to learn. ``set_epoch`` is accepted for interface parity; the images do not change with it.
    """

    def __init__(self, count: int, crop_size: int, seed: int = 0):
        self.count, self.size, self.seed = count, crop_size, seed

    def __len__(self) -> int:
        return self.count

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> dict:
        g = make_generator(self.seed, 7919, index)
        n = self.size
        yy, xx = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
        c0, c1 = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
        a = torch.rand(1, generator=g) * 2 * math.pi
        ramp = (torch.cos(a) * xx + torch.sin(a) * yy).clamp(0, 1)
        img = c0 * (1 - ramp) + c1 * ramp
        for _ in range(3):
            th = torch.rand(1, generator=g) * math.pi
            freq = 4 + 60 * torch.rand(1, generator=g)
            amp = 0.15 * torch.rand(3, 1, 1, generator=g)
            img = img + amp * torch.sin(
                2 * math.pi * freq * (torch.cos(th) * xx + torch.sin(th) * yy)
            )
        for _ in range(4):
            cy, cx = torch.rand(2, generator=g)
            rad = 0.05 + 0.2 * torch.rand(1, generator=g)
            mask = torch.sigmoid((rad - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()) * 200)
            img = img * (1 - mask) + torch.rand(3, 1, 1, generator=g) * mask
        noise = torch.rand(3, n // 4, n // 4, generator=g) - 0.5
        img = (
            img
            + 0.1
            * torch.nn.functional.interpolate(
                noise[None], size=(n, n), mode="bilinear", align_corners=False
            )[0]
        )
        return {"hr": img.clamp(0, 1), "path": f"synthetic:{index}"}


def build_dataset(config: DataConfig):
    """The HR dataset named by ``config.kind``; folder roots resolve against the current dir."""
    if config.kind == "synthetic":
        return SyntheticHRDataset(config.synthetic_count, config.crop_size, config.seed)
    if config.kind == "pairs":
        from flowmapsr.data.pairs import PairShardDataset

        return PairShardDataset([Path(r).expanduser().resolve() for r in config.roots])
    if config.kind == "latents":
        from flowmapsr.data.latents import LatentShardDataset

        return LatentShardDataset([Path(r).expanduser().resolve() for r in config.roots])
    if config.kind != "folders":
        raise ValueError(
            f"data.kind '{config.kind}' is not one of synthetic, folders, pairs, latents"
        )
    if not config.roots:
        raise ValueError("data.kind=folders needs data.roots (one or more HR image folders)")
    roots = [Path(r).expanduser().resolve() for r in config.roots]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise FileNotFoundError(f"data.roots: folder(s) not found: {', '.join(missing)}")
    from flowmapsr.data.datasets import HRFolderDataset

    return HRFolderDataset(
        [str(r) for r in roots], config.crop_size, augment=config.augment, seed=config.seed
    )


# -- order ------------------------------------------------------------------------------------
class ResumableBatchSampler(Sampler):
    """Batches of indices over a seeded permutation per epoch, resumable at any batch.

    World-aware: each global batch of ``batch_size · world`` indices is cut into per-process
    slices. ``start(epoch, batch)`` sets where the next ``__iter__`` begins; it runs forever,
    advancing epochs (dropping the last incomplete global batch).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.bs, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = n // (batch_size * world)
        if self.per_epoch < 1:
            raise ValueError(
                f"dataset of {n} images is smaller than one global batch ({batch_size}×{world})"
            )
        self.epoch, self.batch = 0, 0

    def start(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=make_generator(self.seed, 104729, epoch))

    def __iter__(self):
        epoch, batch = self.epoch, self.batch
        while True:
            perm = self.order(epoch)
            for b in range(batch, self.per_epoch):
                lo = (b * self.world + self.rank) * self.bs
                yield [(epoch, int(i)) for i in perm[lo : lo + self.bs]]
            epoch, batch = epoch + 1, 0

    def __len__(self) -> int:  # per epoch
        return self.per_epoch


class _EpochIndexed(Dataset):
    """Wraps a dataset so items are fetched by ``(epoch, index)`` (crops may depend on epoch)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._epoch = None

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if epoch != self._epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
            self._epoch = epoch
        item = self.dataset[index]
        # Every tensor of the item travels (hr; a pair's x0, lr, eps, z0, zl); paths do not.
        tensors = {k: v for k, v in item.items() if isinstance(v, torch.Tensor)}
        return {**tensors, "epoch": epoch, "index": index}


def _collate(items):
    out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k not in ("epoch", "index")}
    return {**out, "epoch": [it["epoch"] for it in items], "index": [it["index"] for it in items]}


# -- degradation ------------------------------------------------------------------------------
def build_degradation(config: DataConfig):
    """``(degrade, make_negative, description)`` for the config's degradation preset."""
    from flowmapsr.data.degradations import Degradation, make_negative

    return (
        Degradation.from_preset(config.degradation),
        make_negative,
        f"{config.degradation} (flowmapsr.data.degradations)",
    )


@dataclass
class TrainBatch:
    """hr, src, hr_neg: ``(B, 3, H, W)`` in ``[-1, 1]``; src is the clean bicubic source.

    From teacher pairs (``data.kind: pairs``; else None), in the flow space of the teacher's
    codec (pixels ``(B, 3, H, W)`` for the identity codec, ``(B, C, H/f, W/f)`` latents else):
    noise: ε, the teacher ODE's start at t = 1; z0: its end at t = 0 (``hr`` is its decode,
    clamped to [-1, 1]); zl: the encoded ``src`` as stored (FluxSR's ``z_L``).
    """

    hr: torch.Tensor
    src: torch.Tensor | None
    hr_neg: torch.Tensor | None
    scale: int
    noise: torch.Tensor | None = None
    z0: torch.Tensor | None = None
    zl: torch.Tensor | None = None
    #: From a latent cache (``data.kind: latents``; else None): ``{hr,src,neg}_mean`` and, for a
    #: sampling codec, ``{hr,src,neg}_std``, ``(B, C, h, w)`` float32 in the flow space; src
    #: is None then (and ``src_*`` absent with ``data.source: noise``), neg only with negatives.
    latents: dict[str, torch.Tensor] | None = None


class BatchStream:
    """Iterates :class:`TrainBatch` es; ``state()``/``load_state()`` give exact resumption."""

    def __init__(self, config: DataConfig, device, rank: int = 0, world: int = 1):
        self.config, self.device = config, torch.device(device)
        for s in config.scales:
            if config.crop_size % s:
                raise ValueError(
                    f"data.crop_size={config.crop_size} is not a multiple of scale {s}"
                )
        self.dataset = build_dataset(config)
        self.sampler = ResumableBatchSampler(
            len(self.dataset), config.batch_size, config.seed, rank, world
        )
        self.degrade, self.negative, self.description = build_degradation(config)
        if config.kind == "pairs":
            self._check_pairs(config)
        if config.kind == "latents":
            from flowmapsr.data.latents import check_stream_settings

            self.description = check_stream_settings(self.dataset, config)
        if config.source == "noise":
            self.description = "none: the source is N(0, I) noise (data.source=noise)"
        if not 0.0 <= config.clean_fraction <= 1.0:
            raise ValueError(f"data.clean_fraction must be in [0, 1], got {config.clean_fraction}")
        self.clean = None
        if config.clean_fraction > 0:
            from flowmapsr.data.degradations import Degradation

            self.clean = Degradation.from_preset("bicubic")
            self.description += f", {config.clean_fraction:.0%} plain bicubic"
        self.consumed_epoch, self.consumed_batch = 0, 0
        self._iter = None

    def _check_pairs(self, c: DataConfig) -> None:
        """The stream's settings against the pairs' (one line naming the first folder)."""
        ds, where = self.dataset, c.roots[0]
        if c.crop_size != ds.size:
            raise ValueError(
                f"{where}: pairs are {ds.size}×{ds.size}; set data.crop_size={ds.size} "
                f"(got {c.crop_size}: pairs are used whole, not cropped)"
            )
        if list(c.scales) != [ds.scale]:
            raise ValueError(f"{where}: pairs are x{ds.scale}; set data.scales=[{ds.scale}] "
                             f"(got {list(c.scales)})")  # fmt: skip
        if c.clean_fraction > 0:
            raise ValueError(f"{where}: data.clean_fraction needs on-the-fly degradation; "
                             "pairs store their LR (set it to 0)")  # fmt: skip
        presets = sorted({m["settings"]["degradation"] for m in ds.manifests})
        self.description = f"stored in the pairs ({', '.join(presets)} by `pairs generate`)"

    def state(self) -> dict:
        return {"epoch": self.consumed_epoch, "batch": self.consumed_batch}

    def load_state(self, state: dict) -> None:
        self.consumed_epoch, self.consumed_batch = int(state["epoch"]), int(state["batch"])
        self._iter = None

    def _loader(self):
        self.sampler.start(self.consumed_epoch, self.consumed_batch)
        loader = DataLoader(
            _EpochIndexed(self.dataset),
            batch_sampler=self.sampler,
            collate_fn=_collate,
            num_workers=self.config.num_workers,
            persistent_workers=False,
        )
        return iter(loader)

    def next(self, scale_gen: torch.Generator) -> TrainBatch:
        """The next batch; the scale is drawn from ``scale_gen`` (one per batch, CPU generator)."""
        if self._iter is None:
            self._iter = self._loader()
        raw = next(self._iter)
        self.consumed_batch += 1
        if self.consumed_batch >= self.sampler.per_epoch:
            self.consumed_epoch, self.consumed_batch = self.consumed_epoch + 1, 0
        c = self.config
        scale = int(c.scales[int(torch.randint(len(c.scales), (1,), generator=scale_gen))])
        if c.kind == "pairs":
            return self._pair_batch(raw, scale)
        if c.kind == "latents":  # the scale is still drawn: scale_gen's stream stays shared
            return self._latent_batch(raw)
        return self.make_batch(raw, scale)

    def make_batch(self, raw: dict, scale: int) -> TrainBatch:
        """The batch of HR crops ``raw["hr"]`` ``(B, 3, H, W)`` in ``[0, 1]`` (with their
        ``epoch`` / ``index`` lists) at ``scale``: degraded, upsampled, negatives. A pure
        function of ``(seed, epoch, index, scale)``; ``flowmapsr latents build`` calls it too."""
        c = self.config
        hr = raw["hr"].to(self.device, torch.float32)
        if c.source == "noise":  # no LR: the scale is still drawn, so scale_gen's stream is shared
            src = self._noise(raw, hr)
            return TrainBatch(unit_to_model(hr), src, self._negatives(raw, hr), scale)
        gens = [
            make_generator(c.seed, 31, e, i, device=self.device)
            for e, i in zip(raw["epoch"], raw["index"])
        ]
        lr, _ = self.degrade(hr, scale, gens)
        if c.clean_fraction > 0:
            # Drawn per sample from its own stream (tag 41), so the choice is resumable and
            # independent of the batch composition; the degraded draws above are unchanged.
            clean = [
                float(torch.rand((1,), generator=make_generator(c.seed, 41, e, i)))
                < c.clean_fraction
                for e, i in zip(raw["epoch"], raw["index"])
            ]
            idx = [k for k, flag in enumerate(clean) if flag]
            if idx:
                lr[idx] = self.clean(hr[idx], scale, [gens[k] for k in idx])[0]
        lr = lr.clamp(0, 1)
        src = upsample_source(lr, tuple(hr.shape[-2:]))
        return TrainBatch(unit_to_model(hr), unit_to_model(src), self._negatives(raw, hr), scale)

    def _pair_batch(self, raw: dict, scale: int) -> TrainBatch:
        """A batch of stored teacher pairs: hr = x_0, src = the upsampled stored LR."""
        dev = self.device
        hr = raw["x0"].to(dev, torch.float32)
        lr = raw["lr"].to(dev, torch.float32) / 255.0
        src = unit_to_model(upsample_source(lr, tuple(hr.shape[-2:])))
        hr_neg = self._negatives(raw, model_to_unit(hr).clamp(0, 1))
        flow = {k: raw[name].to(dev, torch.float32)
                for k, name in (("noise", "eps"), ("z0", "z0"), ("zl", "zl"))}  # fmt: skip
        return TrainBatch(hr, src, hr_neg, scale, **flow)

    def _latent_batch(self, raw: dict) -> TrainBatch:
        """A batch of cached entries: hr from the stored uint8 crop, the posteriors in
        ``latents`` (the flow step samples them); the scale logged is the first entry's."""
        dev = self.device
        hr = unit_to_model(raw["hr"].to(dev, torch.float32) / 255.0)
        lat = {k: raw[k].to(dev, torch.float32) for k in LATENT_KEYS if k in raw}
        return TrainBatch(hr, None, None, int(raw["scale"][0]), latents=lat)

    def _negatives(self, raw: dict, hr: torch.Tensor) -> torch.Tensor | None:
        """``hr_neg`` ``(B, 3, H, W)`` in [-1, 1] (seeded per sample, tag 37), or None."""
        c = self.config
        if not c.negatives:
            return None
        neg_gens = [
            make_generator(c.seed, 37, e, i, device=self.device)
            for e, i in zip(raw["epoch"], raw["index"])
        ]
        return unit_to_model(self.negative(hr, neg_gens).clamp(0, 1))

    def _noise(self, raw: dict, hr: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` standard normal, one generator per sample seeded (seed, 43, e, i)."""
        c = self.config
        return torch.stack(
            [
                torch.randn(
                    tuple(hr.shape[1:]),
                    generator=make_generator(c.seed, 43, e, i, device=self.device),
                    device=self.device,
                )
                for e, i in zip(raw["epoch"], raw["index"])
            ]
        )
