"""Data sources named by URI (``data.source``).

:func:`resolve_source` checks the URI and fingerprints the source *without* reading its content
(file sizes and mtimes, or the Arrow fingerprints of a cached Hub dataset), so a prepared
directory that is already up to date costs nothing; :attr:`Source.load` reads it when something
must be built. Images come back as float32 (H, W, C) in [0, 1], toys as (N, 2) points.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data import hf
from pipeline.data.idx import idx_files, load_idx_split
from pipeline.errors import DataError

FORMS = "digits, idx:DIR, hf:NAME[:CONFIG], imagefolder:DIR, parquet:PATH, disk:PATH, toy:ring8, toy:grid25"
SCHEMES = ("digits", "idx", "hf", "imagefolder", "parquet", "disk", "toy")


@dataclass
class Split:
    images: np.ndarray | list[np.ndarray]  # (N, H, W, C) in [0, 1]; a list when sizes differ; (N, 2) points
    labels: np.ndarray | None  # int64


@dataclass
class Raw:
    splits: dict[str, Split]  # "train" and "test" when the source has both, else "all"
    class_names: list[str] | None = None


@dataclass(frozen=True)
class Source:
    uri: str
    kind: str  # "image" or "points"
    fingerprint: str
    load: Callable[[], Raw]


def resolve_source(uri: str, toy_samples: int, seed: int, bad_images: str = "refuse") -> Source:
    """Check ``uri`` and fingerprint what it names; nothing is read yet. ``bad_images`` (refuse or
    skip) is what the ``datasets``-read sources do with an image file that cannot be decoded."""
    scheme, sep, arg = uri.partition(":")
    if uri == "digits":
        return Source(uri, "image", "sklearn-digits-v1", _load_digits)
    if scheme == "toy" and sep and arg:
        return Source(uri, "points", f"toy-{arg}", lambda: _load_toy(arg, toy_samples, seed))
    resolvers = {"idx": _idx, "hf": _hub, "imagefolder": _imagefolder, "parquet": _parquet, "disk": _disk}
    if scheme in resolvers and sep and arg:
        return resolvers[scheme](uri, arg) if scheme == "idx" else resolvers[scheme](uri, arg, bad_images)
    near = difflib.get_close_matches(scheme, SCHEMES, n=1, cutoff=0.5)
    hint = f" Did you mean '{near[0]}{'' if near[0] == 'digits' else ':'}'?" if near and near[0] != scheme else ""
    needs_arg = f" '{scheme}:' needs a path or name after the colon." if scheme in resolvers else ""
    raise DataError(f"data.source: {uri!r} is not a known source.{needs_arg}{hint} Valid forms: {FORMS}.")


# ------------------------------------------------------------------------------------------ helpers

def _existing(path_text: str, what: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise DataError(f"data.source: the {what} path {path} does not exist (relative paths are resolved "
                        f"from {Path.cwd()}); check the path")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise DataError(f"data.source: the {what} path {path} is not readable by this user; fix its permissions")
    return path


def _fingerprint_files(paths: list[Path]) -> str:
    """Identity of a file-based source: names, sizes and modification times (not contents)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]


def _to_unit(images: np.ndarray) -> np.ndarray:
    """Integer or float images -> float32 [0, 1], channel-last."""
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    elif x.size and x.max() > 1.0:
        x /= float(np.iinfo(images.dtype).max) if np.issubdtype(images.dtype, np.integer) else float(x.max())
    return x[..., None] if x.ndim == 3 else x


# ------------------------------------------------------------------------------------------ sources

def _load_digits() -> Raw:
    """scikit-learn's bundled 8×8 digits (1,797 images, values 0..16, no test split)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    return Raw({"all": Split(x, d.target.astype(np.int64))}, class_names=[str(i) for i in range(10)])


def _load_toy(name: str, n: int, seed: int) -> Raw:
    import torch

    from models.toys.mixtures import sample_mixture

    try:
        points, modes = sample_mixture(name, n, torch.Generator().manual_seed(seed))
    except (KeyError, ValueError) as exc:
        raise DataError(f"data.source: toy:{name} is not a known toy ({exc}); use toy:ring8 or toy:grid25") from None
    return Raw({"all": Split(points.numpy().astype(np.float32), modes.numpy().astype(np.int64))})


def _idx(uri: str, arg: str) -> Source:
    directory = _existing(arg, "idx")
    if not directory.is_dir():
        raise DataError(f"data.source: idx: needs a directory of IDX files, and {directory} is a file; "
                        f"use idx:{directory.parent}")
    files = idx_files(directory)

    def load() -> Raw:
        splits = {}
        for split in ("train", "test"):
            if (split, "images") in files:
                x, y = load_idx_split(files, split)
                splits[split] = Split(_to_unit(x), y)
        return Raw(splits if "test" in splits else {"all": splits["train"]})

    return Source(uri, "image", _fingerprint_files(list(files.values())), load)


def _datasets_source(uri: str, fingerprint: str, get: Callable[[], object], bad_images: str = "refuse") -> Source:
    """A source read through ``datasets``: its train split and its test (or validation) split when it
    has one; otherwise its only (or train) split becomes "all", to be split at random."""

    def load() -> Raw:
        import datasets

        ds = get()
        parts = ds if isinstance(ds, datasets.DatasetDict) else {"all": ds}
        parts = {name: part for name, part in parts.items() if len(part)}
        if not parts:
            raise DataError(f"data.source: {uri} holds no examples (every split is empty)")
        train = "train" if "train" in parts else next(iter(parts))
        test = next((n for n in ("test", "validation") if n in parts and n != train), None)
        splits, class_names = {}, None
        for key, name in (("train", train), ("test", test)) if test else (("all", train),):
            images, labels, names = hf.convert_split(parts[name], bad_images)
            splits[key], class_names = Split(images, labels), class_names or names
        return Raw(splits, class_names)

    return Source(uri, "image", fingerprint, load)


def _imagefolder(uri: str, arg: str, bad_images: str) -> Source:
    import datasets

    directory = _existing(arg, "imagefolder")
    files = _files_under(directory) if directory.is_dir() else []
    if not files:
        raise DataError(f"data.source: imagefolder {directory} is empty or not a directory; it needs class "
                        f"sub-folders of images (e.g. cat/1.png, dog/2.png)")
    get = lambda: hf.call(lambda: datasets.load_dataset("imagefolder", data_dir=str(directory)), uri)  # noqa: E731
    return _datasets_source(uri, _fingerprint_files(files), get, bad_images)


def _parquet(uri: str, arg: str, bad_images: str) -> Source:
    import datasets

    path = _existing(arg, "parquet")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"data.source: no .parquet files under {path}")
    if sum(_parquet_rows(f) for f in files) == 0:
        raise DataError(f"data.source: {uri} holds no examples (its parquet files have 0 rows); it is empty")
    get = lambda: hf.call(  # noqa: E731
        lambda: datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train"), uri)
    return _datasets_source(uri, _fingerprint_files(files), get, bad_images)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # ArrowInvalid and friends: not parquet, truncated footer
        raise DataError(f"data.source: {path} is not a readable parquet file ({type(exc).__name__}: {exc})") from None


def _disk(uri: str, arg: str, bad_images: str) -> Source:
    import datasets

    path = _existing(arg, "disk")
    get = lambda: hf.call(lambda: datasets.load_from_disk(str(path)), uri,  # noqa: E731
                          " (disk: expects a directory written by Dataset.save_to_disk or DatasetDict.save_to_disk)")
    return _datasets_source(uri, _fingerprint_files(_files_under(path)), get, bad_images)


def _hub(uri: str, arg: str, bad_images: str) -> Source:
    """``hf:NAME[:CONFIG]``: a local dataset directory, else the Hub (its local cache when offline)."""
    import datasets

    name, _, config = arg.partition(":")
    local = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) and not local.exists():
        raise DataError(f"data.source: {uri} names the local path {local}, which does not exist (relative paths "
                        f"are resolved from {Path.cwd()}); check the path. Hub names look like OWNER/NAME.")
    if local.is_dir():
        get = lambda: hf.call(lambda: datasets.load_dataset(str(local), config or None), uri)  # noqa: E731
        return _datasets_source(uri, _fingerprint_files(_files_under(local)), get, bad_images)
    advice = f" To use a local copy instead: {hf.LOCAL_SOURCES}."
    # datasets reads the offline variables at import; when they were set later we still probe,
    # because datasets would go on to try the network.
    if hf.hub_offline():
        advice = (f" Offline mode is on (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE), so only the local cache "
                  f"({datasets.config.HF_DATASETS_CACHE}) is searched and {name} is not in it. Download it "
                  f"once with network access, or use a local source: {hf.LOCAL_SOURCES}.")
    elif not hf.hub_reachable():
        raise DataError(
            f"data.source: {uri} names a dataset on the Hugging Face Hub, but {hf.hub_endpoint()} is not reachable "
            f"from this machine (no answer within {hf.HUB_PROBE_SECONDS:g} s). If the dataset is in the local "
            f"cache, set HF_DATASETS_OFFLINE=1 to use it; otherwise use a local source: {hf.LOCAL_SOURCES}.")
    ds = hf.call(lambda: datasets.load_dataset(name, config or None), uri, advice)
    caches = ds.cache_files.values() if isinstance(ds, datasets.DatasetDict) else [ds.cache_files]
    files = [Path(f["filename"]) for split in caches for f in split]  # the Arrow files in the local cache
    return _datasets_source(uri, _fingerprint_files(files), lambda: ds, bad_images)
