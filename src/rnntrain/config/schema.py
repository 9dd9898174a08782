"""Config as validated data: frozen dataclasses built from plain dicts (parsed TOML).

``build(cls, data, where)`` turns a dict into a dataclass, checking every key and type
once, at the edge, with one-line messages a user can act on (an unknown key names the
closest known one). Range checks live in each dataclass's ``__post_init__`` and raise
:class:`rnntrain.errors.UserError` via :func:`check`.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Dict, Iterable, List, Mapping, Optional, Type, TypeVar

from ..errors import UserError

T = TypeVar("T")


def check(ok: bool, message: str) -> None:
    """Raise a UserError with ``message`` unless ``ok``."""
    if not ok:
        raise UserError(message)


def absolute_paths(config: Any, *fields: str) -> None:
    """Make the file paths in ``fields`` of a frozen dataclass absolute (empty ones stay
    empty), in __post_init__: a run's config.toml then names its data wherever ``forecast``
    or ``--resume`` are later run from."""
    import os
    for name in fields:
        value = getattr(config, name)
        if value:
            object.__setattr__(config, name, os.path.abspath(os.path.expanduser(value)))


def closest(name: str, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_key(key: str, options: Iterable[str], where: str) -> UserError:
    options = sorted(options)
    return UserError(f"unknown config key '{where}{key}'{closest(key, options)}; "
                     f"known keys here: {', '.join(options)}")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UserError(f"config '{path}' must be a table, got {value!r}")
        return build(tp, value, path + ".")
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin is list:
                value = [value]  # a single value where a list is expected: a list of one
            else:
                raise UserError(f"config '{path}' must be a list, got {value!r}")
        elem = args[0] if args else Any
        items = [_coerce(v, elem, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"config '{path}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"config '{path}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise UserError(f"config '{path}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"config '{path}' must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"config '{path}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"config '{path}' must be a string, got {value!r}")
    return value


def field_names(cls: type) -> set:
    return {f.name for f in dataclasses.fields(cls)}


def owners(variants: Mapping[str, type], *keys: str) -> List[str]:
    """The tags of the variants of a tagged table ({tag: dataclass}: task kinds, algorithms)
    that have any of ``keys`` (what a refusal of a key or flag names as taking it)."""
    return [tag for tag, cls in variants.items() if field_names(cls) & set(keys)]


def build(cls: Type[T], data: Mapping[str, Any], where: str = "",
          variants: Optional[Mapping[str, type]] = None, chosen: str = "") -> T:
    """Dataclass ``cls`` from ``data``; unknown keys and wrong types raise UserError.

    ``variants`` are the other dataclasses a tagged table could have been ({tag: cls}, e.g.
    every task kind's config) and ``chosen`` this one's tag line ("task.kind = 'text'"): a key
    that belongs to another variant is refused naming the variants that take it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: Dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            takers = owners(variants or {}, key)
            if takers:
                raise UserError(f"'{where}{key}' does not apply with {chosen}; it is a setting of "
                                f"{', '.join(takers)}: drop it or choose one of those")
            raise unknown_key(key, fields, where)
        kwargs[key] = _coerce(value, hints[key], where + key)
    return cls(**kwargs)


def to_dict(obj: Any) -> Dict[str, Any]:
    """Plain dict of a (nested) dataclass, with None values dropped (TOML has no null)."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out
