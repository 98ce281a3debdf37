import pytest
import torch

from flowmapsr.training.config import DataConfig
from flowmapsr.training.data import (
    BatchStream,
    ResumableBatchSampler,
    SyntheticHRDataset,
    build_dataset,
)


def test_synthetic_images_are_deterministic_and_in_range():
    ds = SyntheticHRDataset(4, 32, seed=1)
    a, b = ds[2]["hr"], ds[2]["hr"]
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(ds[0]["hr"], ds[1]["hr"])


def test_sampler_resumes_mid_epoch_and_shards_ranks():
    s = ResumableBatchSampler(10, 2, seed=0)
    it = iter(s)
    full = [next(it) for _ in range(12)]  # crosses an epoch boundary (5 batches per epoch)
    s.start(1, 2)
    it = iter(s)
    assert [next(it) for _ in range(5)] == full[7:12]
    r0, r1 = ResumableBatchSampler(10, 2, 0, 0, 2), ResumableBatchSampler(10, 2, 0, 1, 2)
    b0, b1 = next(iter(r0)), next(iter(r1))
    assert not set(i for _, i in b0) & set(i for _, i in b1)


def test_batch_stream_state_gives_the_same_batches():
    cfg = DataConfig(
        kind="synthetic",
        crop_size=32,
        batch_size=2,
        scales=[4, 8],
        synthetic_count=8,
        negatives=True,
    )
    a = BatchStream(cfg, "cpu")
    g = torch.Generator().manual_seed(0)
    a.next(g)
    state, g_state = a.state(), g.get_state()
    ref = [a.next(g) for _ in range(5)]
    b = BatchStream(cfg, "cpu")
    b.load_state(state)
    g.set_state(g_state)
    for r in ref:
        got = b.next(g)
        assert got.scale == r.scale and torch.equal(got.hr, r.hr) and torch.equal(got.src, r.src)
        assert torch.equal(got.hr_neg, r.hr_neg)
    assert ref[0].hr.shape == (2, 3, 32, 32) and float(ref[0].hr.min()) >= -1


def test_folder_roots_missing_is_a_clear_error(tmp_path):
    cfg = DataConfig(kind="folders", roots=[str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="nope"):
        build_dataset(cfg)


def _batches(n, **kw):
    cfg = DataConfig(
        kind="synthetic",
        crop_size=32,
        batch_size=8,
        scales=[4],
        synthetic_count=16,
        degradation="mild",
        **kw,
    )
    stream, g = BatchStream(cfg, "cpu"), torch.Generator().manual_seed(0)
    return [stream.next(g) for _ in range(n)]


def test_clean_fraction_mixes_plain_bicubic_samples_in():
    from flowmapsr.convert import model_to_unit, unit_to_model
    from flowmapsr.data.degradations import Degradation
    from flowmapsr.resize import upsample_source

    mild = _batches(2)
    mixed = _batches(2, clean_fraction=0.5)
    allclean = _batches(1, clean_fraction=1.0)[0]
    bicubic = Degradation.from_preset("bicubic")
    hr = model_to_unit(allclean.hr)
    lr, _ = bicubic(hr, 4, [torch.Generator() for _ in range(hr.shape[0])])
    want = unit_to_model(upsample_source(lr.clamp(0, 1), (32, 32)))
    torch.testing.assert_close(allclean.src, want)
    n_clean = 0
    for m, x in zip(mild, mixed):
        assert torch.equal(m.hr, x.hr)  # same images, same order
        same = [torch.equal(m.src[k], x.src[k]) for k in range(m.src.shape[0])]
        n_clean += same.count(False)
    assert 0 < n_clean < 16  # some samples replaced, not all


def test_clean_fraction_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="clean_fraction"):
        _batches(1, clean_fraction=1.5)
