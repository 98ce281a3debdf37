from __future__ import annotations

import pytest

from flowmapsr.config import ConfigError, apply_overrides, from_dict, to_dict
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
    with pytest.raises(ConfigError, match="did you mean 'diagonal_fraction'"):
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
