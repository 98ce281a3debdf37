"""``data.kind: pairs``: the batch stream over the shards of ``flowmapsr pairs generate``."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowmapsr.config import to_dict
from flowmapsr.convert import unit_to_model
from flowmapsr.data.pairs import PairsError, generate_pairs, list_shards, shard_name
from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import build_net
from flowmapsr.resize import upsample_source
from flowmapsr.training.config import DataConfig
from flowmapsr.training.data import BatchStream
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.trainer import train


@pytest.fixture
def pairs(tmp_path) -> Path:
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 8, "blocks": 1, "emb_dim": 16,
                     "concat_source": False})  # fmt: skip
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    teacher = tmp_path / "teacher"
    SRPipeline(net, PipelineConfig(net=to_dict(net.config))).save_pretrained(teacher)
    return generate_pairs(teacher, tmp_path / "pairs", count=10, size=32, scale=4, steps=2,
                          seed=1, shard_size=4, progress=False, log=lambda m: None)  # fmt: skip


def _stored(folder: Path) -> dict[str, torch.Tensor]:
    parts = [load_file(str(p)) for p in list_shards(folder)[1]]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _cfg(folder: Path, **kw) -> DataConfig:
    base = dict(kind="pairs", roots=[str(folder)], crop_size=32, batch_size=2, scales=[4], seed=3)
    return DataConfig(**{**base, **kw})


def test_the_stream_gives_the_stored_pairs_in_a_seeded_order(pairs):
    ref = _stored(pairs)
    stream, g = BatchStream(_cfg(pairs), "cpu"), torch.Generator().manual_seed(0)
    order = stream.sampler.order(0).tolist()
    assert sorted(order) == list(range(10)) and order != list(range(10))
    seen = []
    for b in range(5):  # one epoch: 10 pairs, batches of 2
        tb = stream.next(g)
        idx = order[2 * b : 2 * b + 2]
        seen += idx
        assert tb.scale == 4 and tb.hr_neg is None
        assert torch.equal(tb.hr, ref["x0"][idx])
        assert torch.equal(tb.noise, ref["eps"][idx])
        assert torch.equal(tb.z0, ref["z0"][idx]) and torch.equal(tb.zl, ref["zl"][idx])
        want = unit_to_model(upsample_source(ref["lr"][idx].float() / 255, (32, 32)))
        torch.testing.assert_close(tb.src, want)
        torch.testing.assert_close(tb.src, tb.zl)  # identity codec: z_L is the source itself
    assert sorted(seen) == list(range(10))
    # The same seed gives the same order; another seed another one.
    again = BatchStream(_cfg(pairs), "cpu").next(torch.Generator().manual_seed(0))
    assert torch.equal(again.hr, ref["x0"][order[:2]])
    other = BatchStream(_cfg(pairs, seed=4), "cpu").sampler.order(0).tolist()
    assert other != order


def test_pairs_stream_resumes_exactly(pairs):
    a, g = BatchStream(_cfg(pairs, negatives=True), "cpu"), torch.Generator().manual_seed(0)
    a.next(g)
    a.next(g)
    state, g_state = a.state(), g.get_state()
    ref = [a.next(g) for _ in range(5)]  # crosses into epoch 1
    b = BatchStream(_cfg(pairs, negatives=True), "cpu")
    b.load_state(state)
    g.set_state(g_state)
    for r in ref:
        got = b.next(g)
        for k in ("hr", "src", "hr_neg", "noise", "z0", "zl"):
            assert torch.equal(getattr(got, k), getattr(r, k)), k


def test_pairs_settings_that_do_not_fit_are_one_line_errors(pairs):
    with pytest.raises(ValueError, match=r"pairs are 32×32; set data.crop_size=32"):
        BatchStream(_cfg(pairs, crop_size=64), "cpu")
    with pytest.raises(ValueError, match=r"pairs are x4; set data.scales=\[4\]"):
        BatchStream(_cfg(pairs, scales=[4, 8]), "cpu")
    with pytest.raises(PairsError, match="needs data.roots"):
        BatchStream(_cfg(pairs, roots=[]), "cpu")
    (pairs / shard_name(1)).unlink()
    with pytest.raises(PairsError, match=r"1 of 3 shards missing \(first: pairs-00001"):
        BatchStream(_cfg(pairs), "cpu")


def test_a_stage_trains_on_pairs(tmp_path, tiny, pairs):
    cfg = resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "run", "data.kind=pairs",
                         f"data.roots=[{pairs}]", "max_steps=2"))  # fmt: skip
    export = train(cfg)
    assert (
        "stored in the pairs (realesrgan"
        in SRPipeline.from_pretrained(export).config.info["degradation"]
    )
