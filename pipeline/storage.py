"""``output.storage``: the one place a run's files must live when nodes share nothing else.

A :class:`Store` is a folder in a pyarrow filesystem (a local path, ``s3://bucket/prefix``,
``gs://...``), the same filesystem Ray Train persists checkpoints to. Stages never open it
directly: :class:`pipeline.rundir.RunDir` writes through to it and reads back from it, the data
mirror (:mod:`pipeline.data.mirror`) copies prepared data into it, and the driver's local
directories become caches of it.

Objects are always written whole (a local file through a temporary sibling renamed into place;
an object-store object, which becomes visible only once its upload completes), so a reader sees
the old object or the new one, never half of one; "complete" markers (a sample's manifest, a
prepared dataset's meta file, a checkpoint's MANIFEST) are written last.

Options (``output.storage_options``) are pyarrow's URI options, e.g. ``endpoint_override``,
``scheme=http`` and ``region`` for an S3-compatible server; ``AWS_ENDPOINT_URL`` (the AWS SDKs'
variable) is honoured for ``s3://`` when no endpoint is given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.fs as pafs

from pipeline.errors import ConfigError

OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")


def storage_uri(storage: str, options: dict[str, str] | None = None) -> str:
    """``storage`` with ``options`` (and ``AWS_ENDPOINT_URL`` for s3) merged into its URI query,
    which is how pyarrow's ``FileSystem.from_uri`` takes filesystem options."""
    if "://" not in storage:
        if options:
            raise ConfigError(f"output.storage_options={options!r} is set but output.storage={storage!r} is a local "
                              f"path, which takes no options; remove output.storage_options or use a URI such as "
                              f"s3://bucket/prefix")
        return str(Path(storage).expanduser().resolve())
    parts = urlsplit(storage)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in (options or {}).items()})
    if parts.scheme == "s3" and "endpoint_override" not in query:
        query.update(_endpoint_from_env())
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return f"{base}?{urlencode(sorted(query.items()), safe=':')}" if query else base


def _endpoint_from_env() -> dict[str, str]:
    """``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` as pyarrow options (host:port and scheme)."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return {}
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return {"endpoint_override": parts.netloc, "scheme": parts.scheme}


def is_object_store(storage: str | None) -> bool:
    """Whether ``storage`` names an object store (where uploads are slow enough to go async)."""
    return bool(storage) and urlsplit(storage).scheme.lower() in OBJECT_STORE_SCHEMES


@dataclass(frozen=True)
class Store:
    """A folder in a pyarrow filesystem; paths below it are '/'-separated relative names."""

    uri: str  # as given (with its options), for messages and for re-opening
    filesystem: pafs.FileSystem = field(repr=False, compare=False)
    base: str

    @classmethod
    def open(cls, storage: str, options: dict[str, str] | None = None, setting: str = "output.storage") -> Store:
        """The store at ``storage``; a URI pyarrow cannot open is refused naming ``setting``."""
        uri = storage_uri(storage, options)
        if "://" not in uri:
            return cls(uri, pafs.LocalFileSystem(), uri)
        try:
            fs, base = pafs.FileSystem.from_uri(uri)
        except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise ConfigError(f"{setting}={storage!r} cannot be opened by pyarrow ({exc}); write a URI such as "
                              f"s3://bucket/prefix, with output.storage_options (endpoint_override, scheme, region) "
                              f"for an S3-compatible server") from None
        return cls(uri, fs, base.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def child(self, rel: str) -> Store:
        """The folder ``rel`` below this one."""
        head, _, query = self.uri.partition("?")
        return Store(f"{head.rstrip('/')}/{rel}" + (f"?{query}" if query else ""), self.filesystem, self._path(rel))

    def __str__(self) -> str:
        return self.base if self.is_local else f"{urlsplit(self.uri).scheme}://{self.base}"

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    # -------------------------------------------------------------- objects
    def exists(self, rel: str) -> bool:
        return self.filesystem.get_file_info(self._path(rel)).type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes:
        with self.filesystem.open_input_stream(self._path(rel)) as f:
            return f.read()

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write one object whole (locally: a temporary sibling renamed into place)."""
        if self.is_local:
            from pipeline import atomic

            with atomic.atomic_path(self._path(rel)) as tmp:
                tmp.write_bytes(data)
            return
        with self.filesystem.open_output_stream(self._path(rel)) as f:  # visible once closed
            f.write(data)

    def delete(self, rel: str) -> None:
        """Delete the file ``rel`` if it is there."""
        if self.exists(rel):
            with contextlib.suppress(FileNotFoundError):  # a concurrent delete
                self.filesystem.delete_file(self._path(rel))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.filesystem.delete_dir(self._path(rel))

    def names(self, rel: str = "") -> list[str]:
        """Names of the files and folders directly in ``rel`` (empty when it does not exist)."""
        infos = self.filesystem.get_file_info(pafs.FileSelector(self._path(rel), allow_not_found=True))
        return sorted(i.base_name for i in infos)

    # -------------------------------------------------------------- copies to and from local files
    def upload(self, local: str | Path, rel: str) -> None:
        """Copy a local file or directory to ``rel`` (a file goes up whole)."""
        local = Path(local)
        if local.is_file():
            self.write_bytes(rel, local.read_bytes())
            return
        pafs.copy_files(str(local), self._path(rel), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem)

    def download(self, rel: str, local: str | Path) -> Path:
        """Copy the file ``rel`` to ``local`` (through a temporary sibling, renamed into place)."""
        from pipeline import atomic

        with atomic.atomic_path(local) as tmp:
            tmp.write_bytes(self.read_bytes(rel))
        return Path(local)

    def download_dir(self, rel: str, local: str | Path) -> Path:
        """Copy the folder ``rel`` to the new directory ``local``; concurrent copies (two workers
        of one node) are safe: each copies to its own temporary sibling and the first rename wins."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{local.name}.", dir=local.parent))
        try:
            pafs.copy_files(self._path(rel), str(tmp), source_filesystem=self.filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
            os.rename(tmp, local)
        except OSError:
            if not local.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return local


def node_cache_root() -> Path:
    """This node's cache of stored data (``BOLTZGAN_NODE_CACHE``, else a folder in the temp dir):
    never a path another node wrote, so a worker cannot depend on the driver's disk."""
    configured = os.environ.get("BOLTZGAN_NODE_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "boltzgan-node-cache"
