"""Names -> builders for the pieces a config can name: networks, losses, samplers, toys.

One registry per kind keeps ``models/`` free of configuration code: a recipe looks a piece up by
the name its config holds, and a new piece is one decorated function or class.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_REGISTRY: dict[str, dict[str, Any]] = defaultdict(dict)


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: file ``obj`` under ``kind``/``name`` (e.g. ``register("loss", "hinge")``)."""

    def wrap(obj: T) -> T:
        if name in _REGISTRY[kind] and _REGISTRY[kind][name] is not obj:
            raise ValueError(f"{kind} '{name}' is registered twice")
        _REGISTRY[kind][name] = obj
        return obj

    return wrap


def lookup(kind: str, name: str) -> Any:
    """The object registered as ``kind``/``name``; a KeyError names the nearest valid name."""
    table = _REGISTRY.get(kind, {})
    if name not in table:
        near = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"valid: {', '.join(sorted(table)) or '(none)'}"
        raise KeyError(f"unknown {kind} '{name}'; {hint}")
    return table[name]


def names(kind: str) -> list[str]:
    """All names registered under ``kind``."""
    return sorted(_REGISTRY.get(kind, {}))
