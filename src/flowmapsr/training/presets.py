"""Presets and recipes shipped in ``flowmapsr/configs``: lookup, inheritance, overrides.

A preset is a YAML mapping over :class:`~flowmapsr.training.config.TrainConfig`'s defaults; a
``base: NAME`` key inherits another preset (mappings merge key by key, the child wins). A preset
argument is either a shipped name (``flowmapsr-stage1-fm``) or a path to a YAML file.
Recipes live in ``configs/recipes/*.yaml``: a description and a list of stages, each naming a
preset and its overrides.
"""

from __future__ import annotations

from pathlib import Path

from flowmapsr.config import (
    ConfigError,
    _nearest,
    apply_overrides,
    from_dict,
    load_yaml,
    merge_dicts,
)
from flowmapsr.training.config import TrainConfig, check_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
RECIPE_DIR = CONFIG_DIR / "recipes"


def list_presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def _preset_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    shipped = CONFIG_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"unknown preset '{name}'{_nearest(name, list_presets())}; "
        f"presets: {', '.join(list_presets())}"
    )


def _merge(base: dict, child: dict) -> dict:
    """A preset (or a recipe stage's overrides) over its base; a child ``net`` of another
    ``type`` replaces the base's ``net`` section."""
    return merge_dicts(base, child, TrainConfig)


def preset_dict(name: str, _seen: tuple = ()) -> dict:
    """The preset's mapping with its ``base`` chain merged in."""
    path = _preset_path(name)
    if str(path) in _seen:
        raise ConfigError(f"preset '{name}': circular base chain")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base:
        data = _merge(preset_dict(base, (*_seen, str(path))), data)
    return data


def resolve_config(preset: str, overrides: list[str] | None = None) -> TrainConfig:
    """Preset + strict ``key=value`` overrides → :class:`TrainConfig`."""
    try:
        cfg = from_dict(TrainConfig, preset_dict(preset))
    except ConfigError as err:
        raise ConfigError(f"preset '{preset}': {err}") from None
    return check_config(apply_overrides(cfg, list(overrides or [])))


def recipe_dict(name: str) -> dict:
    p = Path(name)
    path = p if p.suffix in (".yaml", ".yml") and p.is_file() else RECIPE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown recipe '{name}'{_nearest(name, list_recipes())}; "
            f"recipes: {', '.join(list_recipes())}"
        )
    data = load_yaml(path)
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: a recipe needs a non-empty 'stages' list")
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or "name" not in st or ("preset" in st) == ("pairs" in st):
            raise ConfigError(
                f"{path}: stage {i} needs 'name' and either 'preset' (a training stage) or "
                "'pairs' (teacher-pair generation)"
            )
        unknown = set(st) - {"name", "preset", "overrides", "pairs", "train"}
        if unknown:
            raise ConfigError(f"{path}: stage '{st['name']}': unknown key(s) {sorted(unknown)}")
    return data
