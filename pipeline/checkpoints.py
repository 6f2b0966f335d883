"""Training checkpoints: written whole or not at all, verified before use.

A checkpoint directory holds Accelerate's state (``accelerate/``: parameters, optimisers, the
recipe's own state such as persistent chains), ``model.pt`` (what downstream stages load) and,
written last, ``MANIFEST.json`` with the size and sha256 of every file plus the epoch and step.
A directory whose manifest is missing or does not match its files is *corrupt or partial*: it is
skipped with a warning and the previous valid checkpoint is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from pipeline.rundir import MODEL_FILE

__all__ = ["MODEL_FILE", "latest_valid", "list_checkpoints", "persist_checkpoint", "verify", "write_manifest"]

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(ckpt_dir: Path, epoch: int, step: int, extra: dict[str, Any] | None = None) -> None:
    """Record every file's size and hash; written last, so its presence marks completeness."""
    files = {str(p.relative_to(ckpt_dir)): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(ckpt_dir.rglob("*")) if p.is_file() and p.name != MANIFEST}
    body = {"epoch": epoch, "step": step, "files": files, **(extra or {})}
    tmp = ckpt_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    tmp.replace(ckpt_dir / MANIFEST)


def verify(ckpt_dir: Path) -> dict[str, Any] | None:
    """The manifest if every listed file is present with the recorded size and hash, else None."""
    man_path = ckpt_dir / MANIFEST
    try:
        manifest = json.loads(man_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for rel, info in manifest.get("files", {}).items():
        p = ckpt_dir / rel
        if not p.is_file() or p.stat().st_size != info["size"] or _sha256(p) != info["sha256"]:
            return None
    return manifest


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint directory in Ray Train's storage (local path or any pyarrow filesystem)."""

    path: str
    filesystem: pafs.FileSystem

    def download(self) -> Path:
        """A local copy (or the directory itself when it is already local)."""
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            return Path(self.path)
        dest = Path(tempfile.mkdtemp(prefix="boltzgan-ckpt-"))
        pafs.copy_files(self.path, str(dest), source_filesystem=self.filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        return dest


def storage_dir(storage: str, name: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) of the run's folder in Ray Train storage."""
    fs, root = pafs.FileSystem.from_uri(storage if "://" in storage else str(Path(storage).resolve()))
    return fs, f"{root.rstrip('/')}/{name}"


def list_checkpoints(storage: str, name: str) -> list[StoredCheckpoint]:
    """Every ``checkpoint_*`` folder of the run, newest first by modification time."""
    fs, base = storage_dir(storage, name)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    dirs = [i for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")]
    dirs.sort(key=lambda i: (i.mtime_ns or 0, i.base_name), reverse=True)
    return [StoredCheckpoint(i.path, fs) for i in dirs]


def latest_valid(candidates: list[StoredCheckpoint]) -> tuple[Path, dict[str, Any]] | None:
    """The newest candidate (by recorded step) that verifies; corrupt ones are skipped with a warning."""
    verified = []
    for cand in candidates:
        local = cand.download()
        manifest = verify(local)
        if manifest is None:
            log.warning("checkpoint %s is corrupt or partial (manifest missing or files differ); skipping it",
                        cand.path)
            continue
        verified.append((manifest["step"], local, manifest))
    if not verified:
        return None
    step, local, manifest = max(verified, key=lambda t: t[0])
    return local, manifest


def persist_checkpoint(src: Path, storage: str, name: str, epoch: int, keep: int) -> str:
    """Copy a finished checkpoint into the run's storage folder and keep only the newest ``keep``.

    Used where Ray Train does not persist checkpoints itself (its in-process local mode). The copy
    goes to a hidden name first; only a complete copy is renamed to ``checkpoint_*``.
    """
    fs, base = storage_dir(storage, name)
    fs.create_dir(base, recursive=True)
    final = f"{base}/checkpoint_local_e{epoch:05d}_{time.time_ns()}"
    if isinstance(fs, pafs.LocalFileSystem):
        staging = f"{base}/.staging_{time.time_ns()}"
        pafs.copy_files(str(src), staging, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        fs.move(staging, final)
    else:  # object stores cannot rename a folder; a copy without all its files fails verify()
        pafs.copy_files(str(src), final, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    for old in list_checkpoints(storage, name)[keep:]:
        fs.delete_dir(old.path)
    return final
