"""Recipes: chained training stages, each starting from the previous stage's export.

``run_recipe('flowmapsr-smoke', 'out/')`` trains every stage into ``out/<stage>/`` (checkpoints,
logs, ``export/``) with ``init_from`` set to the previous stage's export, then copies the last
export to ``out/final`` (atomically). A ``pairs:`` stage (FluxSR) instead runs the last export
as a teacher (``flowmapsr pairs generate`` with the stage's settings) into ``out/<stage>/``; the
next training stage then trains on those pairs (``data.kind: pairs``) and starts from that
teacher. A stage with ``train: false`` trains nothing: it exports the preset's network as built
(a pretrained backbone from its local folder, with the adapters' zero-initialised inputs), for a
teacher used as published — FLUX.1-dev for FluxSR's pairs. A stage whose export already records
its final step is
skipped, so re-running an interrupted recipe resumes where it stopped (and the stage in progress
resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from flowmapsr.config import ConfigError, apply_overrides, from_dict
from flowmapsr.training.config import TrainConfig, check_config
from flowmapsr.training.presets import _merge, preset_dict, recipe_dict


@dataclass
class PairsStage:
    """A recipe step that makes teacher pairs: ``generate_pairs(teacher, output, **settings)``."""

    name: str
    teacher: str
    output: str
    settings: dict = field(default_factory=dict)


@dataclass
class UntrainedStage:
    """A recipe step (``train: false``) that exports its config's network without training."""

    name: str
    config: TrainConfig


PAIRS_KEYS = {"count", "size", "scale", "steps", "seed", "shard_size", "degradation",
              "batch_size"}  # fmt: skip


def stage_configs(
    recipe: str,
    output: str | Path,
    overrides: list[str] | None = None,
    stage_overrides: dict[str, list[str]] | None = None,
) -> list[TrainConfig]:
    """The resolved config of every stage: preset ← recipe overrides ← CLI overrides ← chaining.

    ``overrides`` apply to every stage; ``stage_overrides[name]`` to one stage.
    """
    data = recipe_dict(recipe)
    out = Path(output)
    names = [st["name"] for st in data["stages"]]
    for name in stage_overrides or {}:
        if name not in names:
            raise ConfigError(f"recipe '{recipe}' has no stage '{name}'; stages: {names}")
    configs, prev, pairs_dir = [], None, None
    for st in data["stages"]:
        if "pairs" in st:
            settings = dict(st["pairs"] or {})
            unknown = set(settings) - PAIRS_KEYS
            missing = {"count", "size"} - set(settings)
            if unknown or missing or prev is None:
                why = (
                    f"unknown key(s) {sorted(unknown)}" if unknown
                    else f"pairs needs {sorted(missing)}" if missing
                    else "needs a teacher stage first"
                )  # fmt: skip
                raise ConfigError(f"recipe '{recipe}', stage '{st['name']}': {why}")
            pairs_dir = out / st["name"]
            configs.append(PairsStage(st["name"], str(prev), str(pairs_dir), settings))
            continue
        merged = _merge(preset_dict(st["preset"]), st.get("overrides") or {})
        try:
            cfg = from_dict(TrainConfig, merged)
        except ConfigError as err:
            raise ConfigError(f"recipe '{recipe}', stage '{st['name']}': {err}") from None
        cfg = apply_overrides(
            cfg, list(overrides or []) + list((stage_overrides or {}).get(st["name"], []))
        )
        cfg = replace(
            cfg,
            name=st["name"],
            output_dir=str(out / st["name"]),
            init_from=str(prev) if prev is not None else cfg.init_from,
        )
        if pairs_dir is not None:  # the stage right after a pairs step trains on them
            cfg = replace(cfg, data=replace(cfg.data, kind="pairs", roots=[str(pairs_dir)]))
            pairs_dir = None
        try:
            check_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"recipe '{recipe}', stage '{st['name']}': {err}") from None
        train = st.get("train", True)
        if not isinstance(train, bool):
            raise ConfigError(f"recipe '{recipe}', stage '{st['name']}': train must be true "
                              f"or false, got {train!r}")  # fmt: skip
        configs.append(cfg if train else UntrainedStage(st["name"], cfg))
        prev = out / st["name"] / "export"
    return configs


def export_untrained(cfg: TrainConfig) -> Path:
    """Export ``cfg``'s network as built (no optimizer step) to ``output_dir/export``.

    The export records ``step: 0`` and ``untrained: true``; a pretrained backbone's full weights
    are written (the next stage's ``init_from`` reads them like any export).
    """
    from flowmapsr.codecs import build_codec
    from flowmapsr.inference.pipeline import SRPipeline
    from flowmapsr.training.export import pipeline_config
    from flowmapsr.training.trainer import build_network

    net, cfg, note, codec = build_network(cfg)
    if codec is None:
        codec = build_codec(cfg.codec)
    info = {"stage": cfg.name, "step": 0, "untrained": True, "complete": True, "init": note,
            "objective": "none: the network as built, not trained"}  # fmt: skip
    export = Path(cfg.output_dir) / "export"
    SRPipeline(net.eval(), pipeline_config(cfg, info), codec=codec.eval()).save_pretrained(export)
    return export


def untrained_done(stage: UntrainedStage) -> bool:
    meta = Path(stage.config.output_dir) / "export" / "config.json"
    try:
        info = json.loads(meta.read_text(encoding="utf-8")).get("info", {})
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("stage") == stage.name and info.get("untrained") is True


def stage_done(cfg: TrainConfig) -> bool:
    meta = Path(cfg.output_dir) / "export" / "config.json"
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8")).get("info", {})
    except json.JSONDecodeError:
        return False
    if info.get("stage") != cfg.name:
        return False
    # A stage stopped by its wall-time budget is done too (its export says how far it got).
    return info.get("step") == cfg.max_steps or (
        cfg.max_minutes > 0 and info.get("max_minutes") == cfg.max_minutes
    )


def copy_export(src: Path, dst: Path) -> Path:
    """Copy a pipeline folder to ``dst`` so that ``dst`` appears complete or not at all."""
    tmp = dst.parent / f".{dst.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return dst


def run_recipe(
    recipe: str,
    output: str | Path,
    overrides: list[str] | None = None,
    stage_overrides: dict[str, list[str]] | None = None,
    is_main: bool = True,
) -> Path:
    """Train every stage in order; returns ``output/final``."""
    from flowmapsr.training.trainer import train

    configs = stage_configs(recipe, output, overrides, stage_overrides)
    export = None
    for i, cfg in enumerate(configs):
        if isinstance(cfg, PairsStage):
            from flowmapsr.data.pairs import generate_pairs

            if is_main:
                print(f"flowmapsr recipe: stage {i + 1}/{len(configs)} '{cfg.name}' "
                      f"(teacher pairs from {cfg.teacher})", flush=True)  # fmt: skip
                generate_pairs(cfg.teacher, cfg.output, **cfg.settings)
            continue
        if isinstance(cfg, UntrainedStage):
            export = Path(cfg.config.output_dir) / "export"
            if untrained_done(cfg):
                if is_main:
                    print(f"flowmapsr recipe: stage {i + 1}/{len(configs)} '{cfg.name}' "
                          f"already done ({export})", flush=True)  # fmt: skip
            elif is_main:
                print(f"flowmapsr recipe: stage {i + 1}/{len(configs)} '{cfg.name}' "
                      "(exported as built, not trained)", flush=True)  # fmt: skip
                export = export_untrained(cfg.config)
            continue
        export = Path(cfg.output_dir) / "export"
        if stage_done(cfg):
            if is_main:
                print(
                    f"flowmapsr recipe: stage {i + 1}/{len(configs)} '{cfg.name}' already "
                    f"done ({export})",
                    flush=True,
                )
            continue
        if is_main:
            print(f"flowmapsr recipe: stage {i + 1}/{len(configs)} '{cfg.name}'", flush=True)
        export = train(cfg)
    final = Path(output) / "final"
    if is_main:
        copy_export(export, final)
        print(f"flowmapsr recipe: final export {final}", flush=True)
    return final
