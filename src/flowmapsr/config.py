"""Typed configuration: dataclasses, YAML presets, strict ``key=value`` overrides.

Every component keeps a small dataclass beside it; presets are YAML files shipped in
``flowmapsr/configs``. Overrides are strict: an unknown key is an error that names the nearest
valid key, because a silently ignored typo in a training run costs hours.
Written by hand (not OmegaConf/Hydra) to keep the dependency set small and the errors exact.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message names key and reason."""


class TaggedConfig:
    """Base of a config section whose dataclass is chosen by a tag key (e.g. ``net.type``).

    A field annotated with a subclass ``S`` of this class holds an instance of one of
    ``S.variants()`` (tag → dataclass); a mapping is read as the variant its ``S.tag`` key
    names (``S.default_kind`` when the key is absent, so configs written before the section
    was tagged still load). Overrides walk into the variant the section holds, and an override
    of the tag itself starts the section afresh from the new variant's defaults.
    """

    tag: typing.ClassVar[str] = "type"
    default_kind: typing.ClassVar[str] = ""
    what: typing.ClassVar[str] = "kind"  # noun for error messages ("network type")

    @classmethod
    def variants(cls) -> dict[str, type]:
        raise NotImplementedError

    @classmethod
    def variant(cls, kind: Any, where: str = "") -> type:
        """The dataclass registered for ``kind``; else a one-line :class:`ConfigError`."""
        found = cls.variants()
        if kind not in found:
            key = f"{where}.{cls.tag}: " if where else ""
            known = ", ".join(sorted(found))
            raise ConfigError(f"{key}unknown {cls.what} {kind!r} (registered: {known})")
        return found[kind]


def _tagged(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, TaggedConfig)


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key under dataclass ``cls``: its fields, then its sections' keys."""
    out = []
    for name, tp in _field_types(cls).items():
        out.append(prefix + name)
        sub, _ = _unwrap_optional(tp)
        if _tagged(sub):  # suggestions come from the default variant
            sub = sub.variant(sub.default_kind)
        if dataclasses.is_dataclass(sub):
            out += _keys(sub, f"{prefix}{name}.")
    return out


def _nearest(name: str, options) -> str:
    """`` (did you mean 'x'?)`` with the option closest to ``name`` (preset and recipe names)."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.0)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _nearest_key(key: str, cls, prefix: str = "") -> str:
    """`` (did you mean 'optim.lr'?)`` for an unknown ``key`` met in dataclass ``cls`` (reached
    through ``prefix``), or "" when nothing is close.

    Suggestions are whole keys that exist (``lr`` at the top names ``optim.lr``, not the nearest
    top-level word), found by their last part with a real similarity cutoff, so following one
    never leads to another unknown-key error: suggestions cannot loop.
    """
    by_leaf: dict[str, list[str]] = {}
    for k in _keys(cls):
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    close = [key] if key in by_leaf else difflib.get_close_matches(key, by_leaf, n=1, cutoff=0.6)
    if not close:
        return ""
    picks = sorted(by_leaf[close[0]], key=lambda k: k.count("."))  # this section's first
    return " (did you mean " + " or ".join(f"'{prefix}{k}'" for k in picks[:3]) + "?)"


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


#: Words YAML 1.1 reads as each bool (what an unquoted choice may have been written as).
YAML_BOOLS = {
    False: ("no", "n", "off", "false"),
    True: ("yes", "y", "on", "true"),
}


def _coerce(value: Any, tp, where: str):
    """Convert a YAML/JSON/CLI value to the annotated type ``tp``."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: None is not allowed")
    if _tagged(tp):
        variants = tuple(tp.variants().values())
        if isinstance(value, variants):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp.variant(value.get(tp.tag, tp.default_kind), where), value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, _where=where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and value not in allowed:
            # YAML 1.1 (PyYAML) reads an unquoted no/off/yes/on as a bool: mixed_precision=no
            # must mean the choice "no", not fail as False.
            spelled = [a for a in allowed if isinstance(a, str) and a.lower() in YAML_BOOLS[value]]
            if len(spelled) == 1:
                return spelled[0]
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, _where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise :class:`ConfigError`."""
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{_where}.{key}" if _where else key
        if key not in types_:
            prefix = f"{_where}." if _where else ""
            raise ConfigError(f"unknown config key '{path}'{_nearest_key(key, cls, prefix)}")
        kwargs[key] = _coerce(value, types_[key], path)
    return cls(**kwargs)


def merge_dicts(base: dict, child: dict, cls=None) -> dict:
    """``child`` over ``base`` key by key (mappings merge, the child wins), e.g. a preset over
    its ``base`` preset.

    With the dataclass ``cls`` the mappings configure, a tagged section (:class:`TaggedConfig`)
    whose child names another variant than the base replaces the base's section instead of
    merging into it: the base's fields belong to the other variant's config.
    """
    types_ = _field_types(cls) if dataclasses.is_dataclass(cls) else {}
    out = dict(base)
    for key, value in child.items():
        old = out.get(key)
        if not (isinstance(value, dict) and isinstance(old, dict)):
            out[key] = value
            continue
        sub, _ = _unwrap_optional(types_.get(key, Any))
        if _tagged(sub):
            kind = value.get(sub.tag, sub.default_kind)
            if kind != old.get(sub.tag, sub.default_kind):
                out[key] = dict(value)
                continue
            sub = sub.variants().get(kind)
        out[key] = merge_dicts(old, value, sub)
    return out


def to_dict(obj) -> dict:
    """Dataclass → plain dict (tuples become lists), ready for YAML/JSON."""

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(obj)


def _parse_scalar(text: str):
    """A CLI value parsed as YAML (so ``3``, ``1e-4``, ``true``, ``[1,2]`` work)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(obj: T, overrides: list[str]) -> T:
    """Return a copy of dataclass ``obj`` with ``a.b.c=value`` overrides applied strictly."""
    data = to_dict(obj)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node_cls, node, section = type(obj), data, None  # section: the tagged base, if any
        for depth, part in enumerate(parts):
            types_ = _field_types(node_cls)
            here = ".".join(parts[: depth + 1])
            if part not in types_:
                hint = _nearest_key(part, node_cls, "".join(f"{q}." for q in parts[:depth]))
                raise ConfigError(f"unknown config key '{here}'{hint}")
            if depth == len(parts) - 1:
                value = _parse_scalar(text)
                if section is not None and part == section.tag and value != node.get(part):
                    # Another variant: its own defaults, not the old variant's fields.
                    fresh = to_dict(section.variant(value, ".".join(parts[:depth]))())
                    node.clear()
                    node.update(fresh)
                node[part] = value
            else:
                sub, _ = _unwrap_optional(types_[part])
                if not dataclasses.is_dataclass(sub):
                    raise ConfigError(f"'{here}' is a value, not a section")
                section = sub if _tagged(sub) else None
                if section is not None:
                    if node.get(part) is None:
                        node[part] = to_dict(section.variant(section.default_kind)())
                    sub = section.variant(node[part].get(section.tag, section.default_kind), here)
                elif node.get(part) is None:
                    node[part] = to_dict(sub())
                node_cls, node = sub, node[part]
    return from_dict(type(obj), data)


def load_yaml(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping")
    return data


def save_json(obj, path: str | Path) -> None:
    data = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
