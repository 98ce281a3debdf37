from __future__ import annotations

import dataclasses
import re

import pytest

from flowmapsr.config import (
    ConfigError,
    TaggedConfig,
    apply_overrides,
    from_dict,
    merge_dicts,
    to_dict,
)
from flowmapsr.objectives import ObjectiveConfig


def test_roundtrip_and_overrides():
    cfg = ObjectiveConfig()
    again = from_dict(ObjectiveConfig, to_dict(cfg))
    assert again == cfg
    new = apply_overrides(
        cfg,
        [
            "name=lagrangian",
            "pairs.diagonal_fraction=0.5",
            "guidance.enabled=true",
            "pairs.time.kind=logit_normal",
        ],
    )
    assert new.name == "lagrangian" and new.pairs.diagonal_fraction == 0.5
    assert new.guidance.enabled is True and new.pairs.time.kind == "logit_normal"
    assert cfg.name == "shortcut"  # the original is untouched


def test_unknown_key_names_nearest():
    with pytest.raises(ConfigError, match="did you mean 'pairs.diagonal_fraction'"):
        apply_overrides(ObjectiveConfig(), ["pairs.diagonal_fractoin=0.5"])
    with pytest.raises(ConfigError, match="unknown config key 'nme'"):
        from_dict(ObjectiveConfig, {"nme": "fm"})


def test_bad_values_are_errors():
    with pytest.raises(ConfigError, match="expected a number"):
        apply_overrides(ObjectiveConfig(), ["pairs.diagonal_fraction=lots"])
    with pytest.raises(ConfigError, match="not one of"):
        apply_overrides(ObjectiveConfig(), ["pairs.time.kind=gamma"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ObjectiveConfig(), ["name"])
    with pytest.raises(ConfigError, match="is a value"):
        apply_overrides(ObjectiveConfig(), ["name.sub=1"])


def test_an_unquoted_yaml_no_is_the_choice_no():
    """PyYAML reads ``no`` / ``off`` as False: a choice spelled that way is still the choice."""
    from flowmapsr.training.config import TrainConfig

    cfg = apply_overrides(TrainConfig(), ["mixed_precision=no"])
    assert cfg.mixed_precision == "no"
    assert from_dict(TrainConfig, {"mixed_precision": False}).mixed_precision == "no"
    # A bool where no choice is spelled like it stays an error.
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(TrainConfig, {"mixed_precision": True})


def test_suggestions_are_whole_keys_and_never_loop():
    from flowmapsr.config import _keys
    from flowmapsr.training.config import TrainConfig

    keys = set(_keys(TrainConfig))
    cfg = TrainConfig()
    for typo in ("lrr", "lr", "optim.lrr", "optim.l", "batch_size", "data.batchsize", "max_step"):
        with pytest.raises(ConfigError, match=r"did you mean '([^']+)'") as err:
            apply_overrides(cfg, [f"{typo}=1"])
        suggested = re.search(r"did you mean '([^']+)'", str(err.value))[1]
        assert suggested in keys, (typo, suggested)  # following it gives no unknown-key error
    assert "optim.lr" in str(pytest.raises(ConfigError, apply_overrides, cfg, ["lr=1"]).value)
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, ["zzzzqq=1"])
    assert "did you mean" not in str(err.value)  # nothing close: no random suggestion


# -- tagged sections -------------------------------------------------------------------------
@dataclasses.dataclass
class _Shape(TaggedConfig):
    tag, default_kind, what = "kind", "box", "shape kind"
    kind: str = "box"

    @classmethod
    def variants(cls):
        return {"box": _Box, "ball": _Ball}


@dataclasses.dataclass
class _Box(_Shape):
    kind: str = "box"
    side: int = 1


@dataclasses.dataclass
class _Ball(_Shape):
    kind: str = "ball"
    radius: float = 1.0


@dataclasses.dataclass
class _Scene:
    shape: _Shape = dataclasses.field(default_factory=_Box)
    name: str = "s"


def test_tagged_section_reads_overrides_and_merges_by_variant():
    assert from_dict(_Scene, {"shape": {"side": 3}}).shape == _Box(side=3)  # untagged: default
    assert from_dict(_Scene, {"shape": {"kind": "ball"}}).shape == _Ball()
    with pytest.raises(
        ConfigError, match=r"shape\.kind: unknown shape kind 'cone' \(registered: ball, box\)"
    ):
        from_dict(_Scene, {"shape": {"kind": "cone"}})
    with pytest.raises(ConfigError, match="unknown config key 'shape.radius'"):
        from_dict(_Scene, {"shape": {"radius": 2}})  # a ball's key on a box
    scene = apply_overrides(_Scene(), ["shape.side=4"])
    assert scene.shape == _Box(side=4)
    assert apply_overrides(scene, ["shape.kind=ball", "shape.radius=0.5"]).shape == _Ball(
        radius=0.5
    )
    assert apply_overrides(scene, ["shape.kind=box"]).shape == _Box(side=4)  # same kind: kept
    with pytest.raises(ConfigError, match="did you mean 'shape.side'"):
        apply_overrides(_Scene(), ["shape.sid=2"])
    base = {"shape": {"side": 2}, "name": "a"}
    assert merge_dicts(base, {"shape": {"side": 5}}, _Scene) == {**base, "shape": {"side": 5}}
    assert merge_dicts(base, {"shape": {"kind": "ball"}}, _Scene)["shape"] == {"kind": "ball"}
