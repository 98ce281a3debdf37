"""``flowmapsr.data.latents``: building a latent cache (contents, determinism, resume, errors)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowmapsr.convert import model_to_unit
from flowmapsr.data import latents as L
from flowmapsr.training.data import _collate
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.trainer import Trainer

PRESET = "tiny-sd21-flowmapsr"
#: A sampling VAE (mean and std stored), negatives, two scales, 8 synthetic 64 px images.
OVERRIDES = ["codec.latent=sample", "data.negatives=true", "data.scales=[4,8]",
             "data.synthetic_count=8", "validation.every=0"]  # fmt: skip


def config(*more, out="runs/unused"):
    return resolve_config(PRESET, [*OVERRIDES, f"output_dir={out}", *more])


def build(folder: Path, *more, count=6, batch=4, shard=2, **kw) -> Path:
    return L.build_latents(config(*more), folder, count=count, batch_size=batch,
                           shard_size=shard, progress=False, log=kw.pop("log", lambda m: None),
                           **kw)  # fmt: skip


def stored(folder: Path) -> dict[str, torch.Tensor]:
    parts = [load_file(str(p)) for p in L.list_shards(folder)[1]]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def assert_same_entries(a: Path, b: Path, name: str) -> None:
    """File ``name`` of two builds: the manifest byte for byte; a shard's crops, scales and
    pixels exactly, its posteriors to float rounding — with more than one thread the first
    convolutions of a process may split their sums otherwise (seen at 2 threads: 1e-7 apart;
    bit-equal at 1 thread)."""
    if not name.endswith(".safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        return
    first, second = load_file(str(a / name)), load_file(str(b / name))
    assert first.keys() == second.keys()
    for key, value in first.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, second[key], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(value, second[key]), (name, key)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("latents") / "cache")


def test_entries_are_the_run_codecs_posterior_of_the_runs_samples(cache, tmp_path):
    man, ref = L.read_manifest(cache), stored(cache)
    assert man["complete"] and man["sampling"] and man["shards"] == [L.shard_name(k) for k in
                                                                      range(3)]  # fmt: skip
    assert set(ref) == {"index", "scale", "hr", "hr_mean", "hr_std", "src_mean", "src_std",
                        "neg_mean", "neg_std"}  # fmt: skip
    assert ref["index"].tolist() == list(range(6)) and set(ref["scale"].tolist()) == {4, 8}
    assert ref["hr"].dtype == torch.uint8 and ref["hr"].shape == (6, 3, 64, 64)
    assert ref["hr_mean"].shape == ref["hr_std"].shape == (6, 4, 8, 8)
    # Independently of the build: the Trainer's own codec and stream, sample by sample.
    t = Trainer(config(out=str(tmp_path / "run")))
    maker = L.EntryMaker(t.config, t.codec)
    for i in range(6):
        epoch, index = maker.position(i)
        raw = _collate([maker.items[(epoch, index)]])
        tb = t.data.make_batch(raw, int(ref["scale"][i]))
        with torch.no_grad():
            for name, x in (("hr", tb.hr), ("src", tb.src), ("neg", tb.hr_neg)):
                mean, std = t.codec.posterior(x)
                torch.testing.assert_close(ref[f"{name}_mean"][i : i + 1], mean, atol=1e-5,
                                           rtol=1e-5)  # fmt: skip
                torch.testing.assert_close(ref[f"{name}_std"][i : i + 1], std, atol=1e-5,
                                           rtol=1e-5)  # fmt: skip
        hr_u8 = (model_to_unit(tb.hr) * 255).round().to(torch.uint8)
        assert torch.equal(ref["hr"][i : i + 1], hr_u8)
    assert man["settings"]["codec_fingerprint"] == L.codec_fingerprint(t.codec)


def test_the_same_command_gives_the_same_entries(cache, tmp_path):
    again = build(tmp_path / "again")
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert_same_entries(cache, again, name)
    # Another data seed draws other entries.
    other = stored(build(tmp_path / "other", "data.seed=1", count=2, shard=2))
    assert not torch.equal(other["hr"], stored(cache)["hr"][:2])


def test_a_killed_build_resumes_and_keeps_finished_shards(cache, tmp_path, monkeypatch):
    out, real = tmp_path / "cut", L.EntryMaker.make
    calls = []

    def dies_on_the_second_shard(self, indices):
        calls.append(indices)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a killed build
        return real(self, indices)

    monkeypatch.setattr(L.EntryMaker, "make", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        build(out)
    assert [p.name for p in out.glob("*.safetensors")] == [L.shard_name(0)]
    assert not L.read_manifest(out)["complete"]
    with pytest.raises(L.LatentsError, match=r"2 of 3 shards missing .*rerun"):
        L.list_shards(out)
    first = (out / L.shard_name(0)).stat().st_mtime_ns
    (out / f".{L.shard_name(1)}.abcdefgh.tmp").write_bytes(b"half")  # a dead writer's temp file
    monkeypatch.setattr(L.EntryMaker, "make", real)
    lines = []
    build(out, log=lines.append)
    assert lines[0] == f"1 of 3 shards already in {out}"
    assert (out / L.shard_name(0)).stat().st_mtime_ns == first  # kept, not rewritten
    assert not list(out.glob(".*.tmp"))
    for name in [L.MANIFEST] + [L.shard_name(k) for k in range(3)]:
        assert_same_entries(out, cache, name)


def test_other_settings_in_an_existing_folder_are_one_line_errors(cache):
    cases = (
        (["data.crop_size=32"], "crop_size=64"),
        (["codec.latent=mean"], "codec.latent='sample'"),
        (["data.degradation=mild"], "degradation"),
    )
    for more, key in cases:
        with pytest.raises(L.LatentsError) as err:
            build(cache, *more)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{cache}: ") and key in msg, msg
    with pytest.raises(L.LatentsError, match=r"count=6 \(now 7\)"):
        build(cache, count=7)


def test_stages_that_cannot_be_cached_are_one_line_errors(tmp_path):
    with pytest.raises(L.LatentsError, match="codec is identity"):
        L.build_latents(resolve_config("flowmapsr-stage1-fm"), tmp_path / "x", count=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(L.LatentsError, match="exists and is not a folder"):
        build(tmp_path / "file")
    with pytest.raises(L.LatentsError, match="no latents manifest"):
        L.read_manifest(tmp_path)


def test_a_stage_from_init_from_caches_with_the_starts_codec(tmp_path):
    """A tiny random codec is ``init_from``'s own in the next stage (the Trainer's rule): the
    cache encodes with it, not with a fresh one from the seed, and that stage accepts it."""
    from flowmapsr.inference.pipeline import SRPipeline
    from flowmapsr.training.trainer import train

    export = train(config("max_steps=1", "seed=5", out=str(tmp_path / "s1")))
    start = L.codec_fingerprint(SRPipeline.from_pretrained(export).codec)
    cfg = config(f"init_from={export}")
    folder = L.build_latents(cfg, tmp_path / "cache", count=2, progress=False, log=lambda m: None)
    assert L.read_manifest(folder)["settings"]["codec_fingerprint"] == start
    assert start != L.codec_fingerprint(L.stage_codec(config()))  # seed 0's fresh codec
    run = config(f"init_from={export}", "data.kind=latents", f"data.roots=[{folder}]",
                 out=str(tmp_path / "s2"))  # fmt: skip
    assert Trainer(run).data.description.startswith("stored in the latent cache")
