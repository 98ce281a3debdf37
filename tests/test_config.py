from __future__ import annotations

import re

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
