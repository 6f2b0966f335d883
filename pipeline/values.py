"""Checks every config value gets before any work starts (used by :mod:`pipeline.config`).

Pydantic checks types and the bounds each field declares; these add what holds for *every*
field, so a new field is covered without remembering to: floats are finite (``.inf`` and ``.nan``
parse as floats), integers are bounded (``1e12`` parses as an integer), seeds fit the 32-bit
seeders (``numpy.random.seed`` refuses more), layer widths are allocatable, strings are non-empty
printable text of bounded length. Run names, storage URIs and Ray addresses have their own forms.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from pydantic_core import PydanticCustomError

MAX_INT = 10**9
MAX_SEED = 2**32 - 1
MAX_UNITS = 100_000  # units per layer: an RBM of 784 × 100k is 78M parameters
WIDTH_FIELDS = frozenset({"n_hidden", "hidden", "latent_dim"})
MAX_TEXT = 4096
MAX_NAME = 100
MAX_SHOWN = 80
# What pyarrow.fs.FileSystem.from_uri (and so Ray Train's storage_path) understands.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def shown(value: Any) -> str:
    """``repr`` of a value, cut to a readable length (error messages stay one short line)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _bad(reason: str) -> PydanticCustomError:
    return PydanticCustomError("bad_value", "{reason}", {"reason": reason})


def bad_text(text: str) -> str | None:
    """Why ``text`` is not acceptable config text (None when it is)."""
    if not text.strip():
        return "is empty; give a value or leave the key out for its default"
    if len(text) > MAX_TEXT:
        return f"is {len(text)} characters long (at most {MAX_TEXT})"
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return (f"contains the control or formatting character U+{ord(ch):04X} "
                    f"({unicodedata.name(ch, 'unnamed')}); use plain printable text")
    return None


def check_value(field: str, value: Any) -> Any:
    """Raise a ``bad_value`` error when ``value`` (of config field ``field``) is out of bounds."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad("is not a finite number; use an ordinary number")
    elif isinstance(value, int):
        _check_int(field, value)
    elif isinstance(value, str):
        problem = bad_text(value)
        if problem:
            raise _bad(problem)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_value(field, item)
    return value


def _check_int(field: str, value: int) -> None:
    if field.endswith("seed"):
        if not 0 <= value <= MAX_SEED:
            raise _bad(f"is not a valid seed; use an integer from 0 to {MAX_SEED} (2^32 - 1)")
    elif field in WIDTH_FIELDS and value > MAX_UNITS:
        raise _bad(f"asks for more than {MAX_UNITS:,} units in a layer; use a smaller width")
    elif abs(value) > MAX_INT:
        raise _bad(f"is beyond the bound of {MAX_INT:,} for integer settings; use a smaller number")


_NAME_EXTRA = set("-_.+")


def check_run_name(value: str | None, key: str) -> str | None:
    """A run name becomes one directory under ``output.root``: no separators, no ``..``, no hidden
    names, letters/digits and ``- _ . +`` only, at most MAX_NAME characters."""
    if value is None:
        return value
    problem = bad_text(value)
    if problem is None:
        if len(value) > MAX_NAME:
            problem = f"is {len(value)} characters long (at most {MAX_NAME})"
        elif "/" in value or "\\" in value:
            problem = "contains a path separator; a run name is one directory name under output.root"
        elif value.startswith(".") or ".." in value:
            problem = "starts with '.' or contains '..'; it must name a directory inside output.root"
        elif not all(ch.isalnum() or ch in _NAME_EXTRA for ch in value):
            odd = next(ch for ch in value if not (ch.isalnum() or ch in _NAME_EXTRA))
            problem = f"contains {odd!r}; use letters, digits and - _ . + only"
    if problem:
        raise _bad(f"is not a usable run name: it {problem} (key {key})")
    return value


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def check_storage(value: str | None) -> str | None:
    """``output.storage``: a local path or a URI of a filesystem pyarrow (Ray Train) supports."""
    if value is None:
        return value
    m = _SCHEME.match(value)
    if m is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", value) and not value.startswith("file:"):
            raise _bad("looks like a URI but lacks '//' after the scheme; write e.g. s3://bucket/prefix")
        return value  # a local path
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in STORAGE_SCHEMES:
        raise _bad(f"uses the scheme '{scheme}://', which Ray Train's storage (pyarrow.fs) does not support; "
                   f"use a local path or one of {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
    if scheme != "file" and not rest.split("/", 1)[0]:
        raise _bad(f"names no bucket or host after '{scheme}://'; write e.g. {scheme}://bucket/prefix")
    return value


_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*" \
        r"|\[[0-9A-Fa-f:.]+\])"
_ADDRESS = re.compile(rf"^(?:ray://)?({_HOST}):([0-9]{{1,5}})$")


def check_ray_address(value: str | None) -> str | None:
    """``resources.ray_address``: auto, local, HOST:PORT (the GCS) or ray://HOST:PORT (Ray Client)."""
    if value is None or value in ("auto", "local"):
        return value
    m = _ADDRESS.match(value)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise _bad("is not a Ray address; use auto, HOST:PORT of the head's GCS (e.g. 10.0.0.5:6379) or "
                   "ray://HOST:PORT (Ray Client, e.g. ray://head:10001)")
    return value


_RANGE = re.compile(r"^\s*([0-9]+)\s*\.\.\s*([0-9]+)\s*$")


def check_worker_range(value: Any, key: str) -> int | str:
    """``resources.num_workers``: a count N (0 = in-process) or an elastic range ``MIN..MAX``
    (normalised to ``"MIN..MAX"``; ``N..N`` is the count N)."""
    fix = f"write a worker count (e.g. {key}=2) or an elastic range MIN..MAX with 1 <= MIN < MAX (e.g. {key}=1..4)"
    if isinstance(value, bool):
        raise _bad(f"{key}={value!r} is a boolean, not a worker count; {fix}")
    if isinstance(value, int):
        if value < 0:
            raise _bad(f"{key}={value} is negative; {fix}")
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        m = _RANGE.match(value)
        if m is None:
            raise _bad(f"{key}={shown(value)} is neither a count nor a range; {fix}")
        low, high = int(m.group(1)), int(m.group(2))
        if low < 1 or high < low:
            raise _bad(f"{key}={shown(value)} is not a range with 1 <= MIN <= MAX; {fix}")
        return low if low == high else f"{low}..{high}"
    raise _bad(f"{key}={shown(value)} is not a worker count; {fix}")
