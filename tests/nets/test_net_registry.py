"""Every registered backbone through the registry: build, forward, checkpoint → export → load."""

import json

import pytest
import torch

from flowmapsr.codecs import CODECS, build_codec
from flowmapsr.config import ConfigError, apply_overrides, from_dict, to_dict
from flowmapsr.flowmap import Condition
from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import (
    NETS,
    SmallNetConfig,
    build_net,
    describe_net,
    net_config,
    register_net,
    size_multiple,
)
from flowmapsr.training import checkpoint as ckpt
from flowmapsr.training.config import TrainConfig
from flowmapsr.training.ema import EMA
from flowmapsr.training.export import export_checkpoint


def codec_for(shape):
    """The codec a backbone's per-sample shape fits: pixels for 3 channels (or vector data),
    else the first registered codec with that many latent channels (tiny random weights)."""
    if len(shape) != 3 or shape[0] == 3:
        return build_codec(None)
    for name in sorted(CODECS):
        codec = build_codec({"type": name})
        if codec.channels == shape[0]:
            return codec
    raise AssertionError(f"no registered codec has {shape[0]} latent channels")


def _inputs(shape, n, gen):
    x = torch.randn(n, *shape, generator=gen)
    cond = Condition(
        prompt=torch.tensor([1, 2][:n]),
        omega=torch.full((n,), 2.0),
        source=torch.randn(n, *shape, generator=gen),
    )
    return x, torch.tensor([0.9, 0.6][:n]), torch.tensor([0.2, 0.6][:n]), cond


@torch.no_grad()
def _perturb(net, gen):
    """Move every parameter off its (often zero) initial value so outputs depend on all."""
    for p in net.parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("name", sorted(NETS))
def test_registered_net_builds_runs_and_survives_export(tmp_path, name):
    spec = NETS[name]
    default = spec.config_cls()
    assert default.type == name
    gen = torch.Generator().manual_seed(3)
    net = build_net(to_dict(default))
    assert isinstance(net.config, spec.config_cls)
    _perturb(net, gen)
    shape = spec.sample_shape(default)
    m = size_multiple(net)
    assert len(shape) < 2 or all(s % m == 0 for s in shape[1:])
    x, t, r, cond = _inputs(shape, 2, gen)
    u = net(x, t, r, cond)
    assert u.shape == x.shape and torch.isfinite(u).all()
    line = describe_net(default)
    assert line and "\n" not in line

    # A checkpoint as the trainer writes one (config.json, state.json, EMA weights; a latent
    # backbone runs on a codec with as many channels, whose random weights travel along) ...
    codec = codec_for(shape)
    cfg = TrainConfig(net=default, codec=codec.config)
    writer = ckpt.CheckpointWriter(tmp_path / "run" / "checkpoints", 7)
    writer.begin()
    writer.tensors("ema", EMA(net).state_dict())
    if next(codec.parameters(), None) is not None:
        writer.tensors("codec", codec.state_dict())
    writer.json("config.json", to_dict(cfg))
    writer.json("state.json", {"step": 7})
    writer.commit(keep=1)
    # ... exported and loaded back by tag alone.
    out = export_checkpoint(tmp_path / "run", tmp_path / "export")
    saved = json.loads((out / "config.json").read_text())["net"]
    assert saved["type"] == name
    pipe = SRPipeline.from_pretrained(out)
    assert type(pipe.net) is type(net) and pipe.net.config == default
    assert pipe.codec.channels == codec.channels
    for k, v in codec.state_dict().items():
        assert torch.equal(pipe.codec.state_dict()[k], v)
    with torch.no_grad():
        assert torch.equal(pipe.net(x, t, r, cond), net.eval()(x, t, r, cond))


def test_untagged_config_is_the_small_net():
    """Configs written before the tag (and the shipped weights' config) read as the small net."""
    cfg = net_config({"channels": 16, "blocks": 2})
    assert isinstance(cfg, SmallNetConfig) and cfg.type == "small" and cfg.channels == 16
    train = from_dict(TrainConfig, {"net": {"channels": 16}})
    assert isinstance(train.net, SmallNetConfig) and train.net.channels == 16


def test_an_untagged_pipeline_folder_loads_as_the_small_net(tmp_path):
    net = build_net({"channels": 8, "blocks": 1})
    _perturb(net, torch.Generator().manual_seed(0))
    folder = SRPipeline(net, PipelineConfig(net=to_dict(net.config))).save_pretrained(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["net"]["type"]
    (folder / "config.json").write_text(json.dumps(cfg))
    pipe = SRPipeline.from_pretrained(folder)
    assert pipe.net.config == net.config and pipe.size_multiple == 4
    x, t, r, cond = _inputs((3, 8, 8), 2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(pipe.net(x, t, r, cond), net.eval()(x, t, r, cond))
    cfg["net"]["type"] = "huge"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: net\.type: unknown network type 'huge'"):
        SRPipeline.from_pretrained(folder)


def test_unknown_type_and_foreign_keys_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"net\.type: unknown network type 'huge' \(registered: "):
        from_dict(TrainConfig, {"net": {"type": "huge"}})
    with pytest.raises(ConfigError) as err:
        apply_overrides(TrainConfig(), ["net.type=huge"])
    assert "\n" not in str(err.value) and all(k in str(err.value) for k in NETS)
    # Keys are checked against the chosen backbone's config.
    with pytest.raises(ConfigError, match="unknown config key 'net.channels'"):
        from_dict(TrainConfig, {"net": {"type": "mlp", "channels": 8}})


def test_overrides_reach_the_chosen_backbone():
    cfg = apply_overrides(TrainConfig(), ["net.channels=32"])
    assert isinstance(cfg.net, SmallNetConfig) and cfg.net.channels == 32
    # Switching type starts from the new backbone's defaults, then later keys apply to it.
    mlp = apply_overrides(cfg, ["net.type=mlp", "net.dim=3"])
    assert mlp.net == NETS["mlp"].config_cls(dim=3)
    # Round trip through the saved dict (what checkpoints hold).
    assert from_dict(TrainConfig, to_dict(mlp)).net == mlp.net


def test_register_net_checks_the_tag_default():
    with pytest.raises(ValueError, match="must default to it"):
        register_net("other", SmallNetConfig, build_net)
    assert "other" not in NETS
