"""The YAML dialect of config files and ``--set`` values: YAML 1.2 core scalars, no aliases.

PyYAML implements YAML 1.1, where ``010`` is 8 (octal), ``1:30`` is 90 (base 60), ``no`` is
False and ``2020-01-01`` a date. Here a scalar means what it reads as: ``010`` is 10, ``0x10`` 16,
``0o10`` 8, ``1:30``, ``no`` and dates stay text, and ``1e-3`` is a float (YAML 1.2 core schema).
Aliases (``*name``) are refused, which bounds a document's size by its text (an anchor/alias
"billion laughs" bomb cannot expand); so are duplicate keys, non-text keys, deep nesting and
files over MAX_BYTES. Every failure is one :class:`~pipeline.errors.ConfigError` line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pipeline.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core resolvers, refusing aliases, duplicate keys and deep nesting."""

    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in config files; "
                                              "write the value out", mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        self.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(None, None, f"the key {str(key)[:40]!r} is not text",
                                                        key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key '{key[:40]}' appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _int(loader: StrictLoader, node: Any) -> int:
    text = loader.construct_scalar(node)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    return sign * int(digits, 10)


def _float(loader: StrictLoader, node: Any) -> float:
    text = loader.construct_scalar(node).lower()
    if text.lstrip("+-") == ".inf":
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _bool(loader: StrictLoader, node: Any) -> bool:
    return loader.construct_scalar(node).lower() == "true"


_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]
for _tag, _pattern, _first in _RESOLVERS:
    StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
StrictLoader.add_constructor("tag:yaml.org,2002:int", _int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", _float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", _bool)


def _refuse(loader: StrictLoader, node: Any) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"the tag {node.tag[:60]} is not allowed; configs hold text, "
                                            f"numbers, true/false, lists and mappings only", node.start_mark)


for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def loads(text: str, where: str) -> Any:
    """Parse ``text`` (from ``where``, named in errors) or raise one ConfigError line."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{where}: {len(text):,} characters is more than a config can be ({MAX_BYTES:,})")
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())[:160]
        raise ConfigError(f"{where}: not valid config YAML{at}: {problem}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{where}: not valid config YAML: {' '.join(str(exc).split())[:160]}") from None


def load_mapping(text: str, where: str) -> dict[str, Any]:
    """A config document: a mapping of sections (an empty document is an empty mapping)."""
    data = loads(text, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a config must be a mapping of sections (data:, model:, train: ...), "
                          f"not a {type(data).__name__}")
    return data
