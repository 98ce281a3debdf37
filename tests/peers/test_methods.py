"""``--methods`` parsing and the method objects (bicubic, flowmapsr pipeline, peers)."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.inference.pipeline import PipelineConfig
from flowmapsr.peers.methods import build_method, parse_methods
from flowmapsr.resize import imresize


def test_parse_grammar():
    specs = parse_methods("bicubic, flowmapsr:steps=2,guidance=1.5 ,span:tile=64,flowmapsr:steps=1")
    assert [s.kind for s in specs] == ["bicubic", "flowmapsr", "span", "flowmapsr"]
    assert specs[1].options == {"steps": 2, "guidance": 1.5}
    assert specs[1].label == "flowmapsr:steps=2,guidance=1.5"
    assert specs[2].options == {"tile": 64}
    assert specs[3].label == "flowmapsr:steps=1"


def test_label_names_a_method_in_reports_and_is_not_a_method_option():
    a, b = parse_methods("flowmapsr:model=/some/long/path/export,label=FluxSR,bicubic:label=bic")
    assert a.label == "FluxSR" and a.options == {"model": "/some/long/path/export"}
    assert b.label == "bic" and b.options == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("steps=2", "before any method"),
        ("edsr", "unknown method"),
        ("flowmapsr:stepz=2", "unknown option 'stepz'"),
        ("flowmapsr:steps=two", "steps='two'"),
        ("bicubic:tile=3", r"known: label\)"),
        ("flowmapsr:label=", "label= needs a name"),
        ("bicubic:label=a,flowmapsr:label=a", "listed twice: a"),
        ("bicubic,bicubic", "listed twice"),
        ("", "no methods"),
    ],
)
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_methods(text)


def test_bicubic_is_matlab_imresize(gen):
    lr = torch.rand(1, 3, 10, 12, generator=gen)
    m = build_method(parse_methods("bicubic")[0])
    assert m.nfe == 0
    torch.testing.assert_close(m(lr, 4), imresize(lr, scale=4).clamp(0, 1))


class _FakePipeline:
    """Records calls; returns the bicubic upscale (the interface of SRPipeline.upscale_tensor)."""

    calls: list = []
    loaded: list = []

    config = PipelineConfig(steps=3, modes={"realism": {"steps": 1, "lora_scale": 1.5}})
    device = torch.device("cpu")  # fp32 config: precision auto resolves to fp32

    @classmethod
    def from_pretrained(cls, path=None):
        cls.loaded.append(path)
        return cls()

    def upscale_tensor(self, lr, scale=4, **kw):
        type(self).calls.append(kw)
        return imresize(lr, scale=scale) + 5.0  # out of range on purpose: the method clamps


def test_flowmapsr_options_reach_the_pipeline(monkeypatch, gen):
    import flowmapsr.inference.pipeline as pipeline

    monkeypatch.setattr(pipeline, "SRPipeline", _FakePipeline)
    _FakePipeline.calls, _FakePipeline.loaded = [], []
    cache: dict = {}
    specs = parse_methods(
        "flowmapsr:steps=2,guidance=1.5,seed=3,model=/m,flowmapsr:model=/m,"
        "flowmapsr:model=/m,mode=realism"
    )
    a, b, c = (build_method(s, cache) for s in specs)
    assert (a.nfe, b.nfe, c.nfe) == (2, 3, 1)  # b: the model's default steps; c: the mode's
    assert c.settings["lora_scale"] is None  # the fake has no LoRA
    with pytest.raises(ValueError, match="defines no 'fidelity' mode"):
        build_method(parse_methods("flowmapsr:model=/m,mode=fidelity")[0], cache)
    assert _FakePipeline.loaded == ["/m"]  # one load, shared through the cache
    out = a(torch.rand(1, 3, 8, 8, generator=gen), 4)
    assert out.shape == (1, 3, 32, 32) and out.max() <= 1.0
    assert _FakePipeline.calls[-1] == {"steps": 2, "guidance": 1.5, "seed": 3}


def test_flowmapsr_with_a_tiny_random_pipeline(tmp_path, gen):
    """The real SRPipeline, saved with random weights and loaded back through ``model=DIR``."""
    pipeline = pytest.importorskip("flowmapsr.inference.pipeline")
    from flowmapsr.nets import build_net

    torch.manual_seed(0)
    cfg = pipeline.PipelineConfig(net={"type": "small", "channels": 8, "blocks": 1})
    net = build_net(cfg.net)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.02)
    pipeline.SRPipeline(net, cfg).save_pretrained(tmp_path)
    (spec,) = parse_methods(f"flowmapsr:steps=2,model={tmp_path}")
    m = build_method(spec)
    lr = torch.rand(1, 3, 8, 12, generator=gen)
    out = m(lr, 4)
    assert m.nfe == 2 and out.shape == (1, 3, 32, 48)
    assert 0 <= out.min() and out.max() <= 1


def test_missing_model_is_a_clear_error(tmp_path):
    pytest.importorskip("flowmapsr.inference.pipeline")
    (spec,) = parse_methods(f"flowmapsr:model={tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_method(spec)
