"""``data.kind: latents``: training from a latent cache without the encoder."""

from pathlib import Path

import pytest
import torch

from flowmapsr.data.latents import EntryMaker, LatentsError, build_latents, read_manifest
from flowmapsr.training.data import BatchStream, TrainBatch, _collate
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, train

PRESET = "tiny-sd21-flowmapsr"
DATA = ["codec.latent=sample", "data.scales=[4,8]", "data.synthetic_count=8", "data.negatives=true"]
FAST = ["validation.every=0", "validation.steps=[1]", "optim.schedule=constant"]


def config(out, *more):
    return resolve_config(PRESET, [*DATA, *FAST, f"output_dir={out}", *more])


def on_cache(folder, out, *more):
    return config(out, "data.kind=latents", f"data.roots=[{folder}]", *more)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("latents") / "cache"
    cfg = config("runs/unused")
    return build_latents(cfg, folder, count=8, batch_size=4, shard_size=4, progress=False,
                         log=lambda m: None)  # fmt: skip


class CountingEncoder:
    """Wraps ``AutoencoderKL.encode`` and counts its calls."""

    def __init__(self, vae):
        self.calls, self.encode = 0, vae.encode
        vae.encode = self

    def __call__(self, *a, **kw):
        self.calls += 1
        return self.encode(*a, **kw)


def test_a_step_from_the_cache_is_finite_and_never_encodes(cache, tmp_path):
    t = Trainer(on_cache(cache, tmp_path / "run", "data.source_noise=0.01"))
    assert "stored in the latent cache (bicubic" in t.data.description
    enc = CountingEncoder(t.codec.vae)
    for _ in range(2):
        logs = t.train_step()
        assert torch.isfinite(torch.tensor(logs["loss"]))
    assert enc.calls == 0
    # The counter counts: the same stage on the fly encodes hr, negative and source each step.
    live = Trainer(config(tmp_path / "live"))
    enc = CountingEncoder(live.codec.vae)
    live.train_step()
    assert enc.calls == 3


def test_a_cached_batch_is_the_on_the_fly_batch_of_the_same_samples(cache, tmp_path):
    """Same generator state → the same latent draws: hr, source and condition match encoding
    the same crops on the fly (to float rounding); hr_image to the uint8 quantisation."""
    t = Trainer(on_cache(cache, tmp_path / "run", "data.source_noise=0.02"))
    rows = t.data.sampler.order(0)[:2].tolist()  # the first batch's entries (one folder)
    tb = t.data.next(t.scale_gen)
    maker = EntryMaker(config(tmp_path / "x"), t.codec)
    # Each entry on the fly at its own stored scale (a batch may mix them), then one batch.
    parts = [maker.stream.make_batch(_collate([maker.items[maker.position(i)]]), maker.scale(i))
             for i in rows]  # fmt: skip
    assert {maker.scale(i) for i in rows} == {4, 8}  # this seed's first batch mixes scales
    live = TrainBatch(*(torch.cat([getattr(p, k) for p in parts]) for k in ("hr", "src", "hr_neg")),
                      4)  # fmt: skip
    state = t.gen.get_state()
    cached = t.flow_batch(tb)
    t.gen.set_state(state)
    fly = t.flow_batch(live)
    pairs = ((cached.hr, fly.hr), (cached.hr_neg, fly.hr_neg), (cached.src, fly.src),
             (cached.cond.source, fly.cond.source))  # fmt: skip
    for a, b in pairs:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.equal(cached.src, cached.cond.source)  # the source noise is per step
    assert (cached.hr_image - fly.hr_image).abs().max() <= 1 / 255 + 1e-6
    assert cached.hr_neg.shape == cached.hr.shape and not torch.equal(cached.hr_neg, cached.hr)


def _losses(out: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["loss"]) for r in read_csv(out / "train.csv")}


def test_a_run_on_the_cache_resumes_exactly(cache, tmp_path):
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    common = ("data.source_noise=0.01", "log_every=1")
    train(on_cache(cache, ref_out, "max_steps=6", *common))  # 4 batches an epoch: crosses one
    train(on_cache(cache, cut_out, "max_steps=3", "checkpoint.every=3", *common))
    Trainer(on_cache(cache, cut_out, "max_steps=6", *common)).fit()
    ref, cut = _losses(ref_out), _losses(cut_out)
    assert sorted(cut) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert cut[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-9)


def test_another_codec_or_other_settings_are_one_line_errors(cache, tmp_path):
    cases = (
        (["codec.latent=mean"], r"another codec \(codec.latent='sample' \(now 'mean'\)\)"),
        (["seed=1"], r"codec weights \(sha256:.*\) are not the ones"),  # another random VAE
        (["data.crop_size=32"], r"data.crop_size=64 in the cache \(run: 32\)"),
        (["data.scales=[4]"], r"data.scales=\[4, 8\] in the cache"),
    )
    for more, pattern in cases:
        with pytest.raises(LatentsError, match=pattern) as err:
            Trainer(on_cache(cache, tmp_path / "bad", *more))
        assert "\n" not in str(err.value) and str(err.value).startswith(str(cache))
    with pytest.raises(LatentsError, match="needs data.roots"):
        Trainer(config(tmp_path / "bad", "data.kind=latents", "data.roots=[]"))


def test_processes_split_the_cache_into_disjoint_batches(cache):
    cfg = on_cache(cache, "runs/unused").data
    seen = []
    for rank in (0, 1):
        stream = BatchStream(cfg, "cpu", rank, 2)
        assert stream.sampler.per_epoch == 2  # 8 entries, 2 processes × batches of 2
        g = torch.Generator().manual_seed(0)
        seen.append(torch.cat([stream.next(g).latents["hr_mean"] for _ in range(2)]))
    both = torch.cat(seen)
    assert len({tuple(row.flatten().tolist()) for row in both}) == 8  # every entry once


def test_a_noise_source_stage_stores_no_source_and_draws_latent_noise(tmp_path):
    """``data.source: noise`` (FluxSR's teacher): no source is encoded; the step draws N(0, I)
    of the latent shape from its generator, as on the fly."""
    more = ["codec.type=vae", "net.in_channels=4", "data.kind=synthetic", "data.roots=[]",
            "data.synthetic_count=4", "data.crop_size=32",
            "data.batch_size=2", "validation.every=0", "validation.crop=32",
            "validation.steps=[1]", "net.channels=8", "net.blocks=1", "net.emb_dim=16"]  # fmt: skip
    cfg = resolve_config("fluxsr-teacher-fm", [*more, f"output_dir={tmp_path / 'x'}"])
    folder = build_latents(cfg, tmp_path / "cache", count=4, progress=False, log=lambda m: None)
    assert read_manifest(folder)["tensors"] == ["index", "scale", "hr", "hr_mean"]
    t = Trainer(resolve_config("fluxsr-teacher-fm", [*more, f"output_dir={tmp_path / 'run'}",
                                                     "data.kind=latents",
                                                     f"data.roots=[{folder}]"]))  # fmt: skip
    fb = t.flow_batch(t.data.next(t.scale_gen))
    assert fb.hr.shape == fb.src.shape == (2, 4, 4, 4)
    assert abs(float(fb.src.mean())) < 0.5 and abs(float(fb.src.std()) - 1) < 0.5
