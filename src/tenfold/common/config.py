"""Typed config dataclasses: overrides from `key=value` strings with type checks (never `exec`).

Every method has one dataclass whose fields all have defaults and a one-line `help`. `apply_overrides`
turns CLI `--set key=value` pairs into a new instance, checking each value against the field's type.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable

from tenfold.common.errors import UserError


def field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with a one-line `help` kept in its metadata."""
    kw = {"metadata": {"help": help}}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, **kw)
    return dataclasses.field(default=default, **kw)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_key(obj: Any, drop: Iterable[str] = (), length: int = 12) -> str:
    """A short stable hash of a config (dataclass or dict) without the fields in `drop`: names cache entries
    (tuning runs, pre-trained models, trained logits) so they are reused exactly when the settings match."""
    import hashlib
    import json

    d = to_dict(obj) if dataclasses.is_dataclass(obj) else dict(obj)
    for k in drop:
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:length]


def _parse(name: str, text: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if text.lower() in ("none", "null") and len(args) < len(typing.get_args(typ)):
            return None
        return _parse(name, text, args[0])
    if origin is typing.Literal:
        choices = typing.get_args(typ)
        for c in choices:
            if str(c) == text:
                return c
        raise UserError(f"Invalid {name}: {text!r}; expected one of {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(typ) or (str,)
        items = [t for t in text.split(",") if t != ""]
        return origin(_parse(name, t.strip(), inner) for t in items)
    if typ is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UserError(f"Invalid {name}: {text!r}; expected true or false")
    if typ in (int, float):
        try:
            return typ(text)
        except ValueError:
            raise UserError(f"Invalid {name}: {text!r}; expected {typ.__name__}") from None
    if typ is str:
        return text
    raise UserError(f"{name} cannot be set from the command line (type {typ})")


def apply_overrides(cfg: Any, overrides: Iterable[str] | dict[str, Any]) -> Any:
    """Return a copy of `cfg` with `key=value` overrides applied and type-checked.

    `overrides` is either `["lr=0.1", "steps=20"]` or a dict of already-typed values.
    Unknown keys raise `UserError` listing the valid ones.
    """
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes: dict[str, Any] = {}
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for key, value in items:
        if key not in names:
            raise UserError(f"Unknown config key {key!r}; valid keys: {', '.join(names)}")
        changes[key] = _parse(key, value, hints[key]) if isinstance(value, str) and hints[key] is not str else value
    return dataclasses.replace(cfg, **changes)


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise UserError(f"Invalid --set {item!r}; expected key=value")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each field of a config dataclass, for docs and `--help`."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, str(f.type), default, f.metadata.get("help", "")))
    return out
