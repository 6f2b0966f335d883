"""Atomic writes: every output is written to a temporary sibling and renamed into place, so a
crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_torch(path: str | Path, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_torch(path: str | Path, what: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``).

    A file that needs anything else (a pickled object, i.e. code) or is not a torch file at all is
    refused with a :class:`~pipeline.errors.UnsafeFileError`; nothing in it is executed.
    """
    from pipeline.errors import UnsafeFileError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UnsafeFileError(f"{what}: {path} was refused: it is not a plain tensor file that torch can load with "
                              f"weights_only=True ({type(exc).__name__}: {first}). It is corrupt or was altered; "
                              f"nothing in it was run. Re-create it (train again) or restore it from a backup.") from None


DIGEST_SUFFIX = ".sha256"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def write_digest(path: str | Path) -> Path:
    """Write ``<path>.sha256`` (``sha256sum`` format) beside ``path``."""
    path = Path(path)
    return write_text(digest_path(path), f"{sha256_file(path)}  {path.name}\n")


def verify_digest(path: str | Path, what: str) -> None:
    """Refuse ``path`` unless ``<path>.sha256`` exists and matches its bytes (corruption, tampering)."""
    from pipeline.errors import UnsafeFileError

    path = Path(path)
    sidecar = digest_path(path)
    try:
        expected = sidecar.read_text().split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        raise UnsafeFileError(f"{what}: {path} was refused: its hash file {sidecar.name} is missing or unreadable, so "
                              f"the file cannot be checked; re-create the run (train again)") from None
    actual = sha256_file(path)
    if actual != expected:
        raise UnsafeFileError(f"{what}: {path} was refused: its sha256 {actual[:16]}… does not match "
                              f"{sidecar.name} ({expected[:16]}…); the file is corrupt or was altered. Re-create it "
                              f"(train again, or copy {path.name} from the run's newest checkpoint_* directory).")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line (a crash can at worst lose the line being written, never earlier ones)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a JSON-lines file (a torn last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
