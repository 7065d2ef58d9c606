"""Loading a dataclass config tree from YAML plus dotted command-line overrides.

    cfg = load_config(RLConfig, "recipes/tiny_cpu_grpo.yaml", ["train.actor_lr=1e-5", "rollout.n=4"])

Every key is checked against the dataclass fields: an unknown key or a value of the wrong type raises
``ConfigError`` naming the dotted key (``train.actor_lr: expected float, got 'fast'``). Values given on the
command line are parsed as YAML scalars/lists (``rollout.stop=['</answer>']``, ``model.lora=null``).
Literal[...] fields check membership; Optional fields accept null.

A field declared with ``metadata=SECRET`` (a bearer token, ...) is never written to disk: every dump of a
config (config.yaml, tracker/wandb config, summaries) goes through ``public_dict``, which shows ``<redacted>``
for it; loading a saved config that still holds the placeholder is an error naming the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from mathrl_core.data_files import read_utf8


class ConfigError(ValueError):
    """A config key is unknown or its value has the wrong type or range."""


SECRET = {"secret": True}  # dataclass field metadata: the value is never written to disk
REDACTED = "<redacted>"


def _is_optional(tp) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def _coerce(value: Any, tp, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where the conversion is lossless."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: may not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {args}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, key)
    if value is None:
        raise ConfigError(f"{key}: may not be null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported annotation {tp!r}")


def _build(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"unknown config key '{where}' (known in {prefix or 'the top level'}: {sorted(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            where = f"{prefix}.{f.name}" if prefix else f.name
            if f.metadata.get("secret") and data[f.name] == REDACTED:
                raise ConfigError(f"{where}: {REDACTED!r} is the placeholder a saved config holds instead of the "
                                  f"secret; give the real value (an override or its environment variable)")
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], where)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from e
    return obj


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into ``[("a.b", 1), ("c", ["x", "y"])]`` (values parsed as YAML)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def public_dict(cfg) -> dict:
    """The config as plain data for every dump to disk or a tracker: secret fields that are set read
    ``<redacted>``."""
    out = dataclasses.asdict(cfg)
    _redact(cfg, out)
    return out


def _redact(cfg, tree: dict) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("secret") and value is not None:
            tree[f.name] = REDACTED
        elif dataclasses.is_dataclass(value):
            _redact(value, tree[f.name])


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None):
    """Build ``cls`` from an optional YAML file, then dotted overrides; validate every key and value."""
    tree: dict = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(read_utf8(p)) or {}
        except yaml.YAMLError as e:
            raise ConfigError(_yaml_error(p, e)) from None
        except ValueError as e:  # not UTF-8
            raise ConfigError(str(e)) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        tree = _deep_merge(tree, loaded)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(tree, key, value)
    return _build(cls, tree)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: YAML syntax error: <problem> (<context>)``."""
    mark = getattr(e, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    return f"{where}: YAML syntax error: {problem}" + (f" ({context})" if context else "")


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
