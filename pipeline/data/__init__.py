"""The prepare stage: a data source (URI) -> a prepared Arrow dataset on disk with metadata.

A prepared directory holds ``dataset/`` (a ``datasets.DatasetDict`` with ``train`` and ``test``,
saved with ``save_to_disk``) and ``meta.json``. Column ``image`` is a fixed-size list of float32
of length prod(shape); :func:`open_split` exposes it as memory-mapped numpy chunks, so training
workers read only the rows they index.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from pipeline import artifacts
from pipeline.config import DataConfig
from pipeline.data.sources import Raw, Split, load_source
from pipeline.data.transforms import binarize, fix_channels, resize_all
from pipeline.errors import DataError

META = "meta.json"
FORMAT_VERSION = 1


class DataMeta(BaseModel):
    """What a prepared directory holds (``meta.json``)."""

    source: str
    fingerprint: str
    shape: tuple[int, ...]
    value_range: tuple[float, float]
    binarize: str
    threshold: float | None = None
    binarize_seed: int | None = None
    n_train: int
    n_test: int
    num_classes: int | None = None
    class_names: list[str] | None = None
    split: str
    resize: str | None = None
    notes: list[str] = []
    seconds: float = 0.0


@dataclass(frozen=True)
class PreparedData:
    path: str
    meta: DataMeta
    cached: bool = False

    def data_shape(self):
        from pipeline.recipes.base import DataShape

        m = self.meta
        return DataShape(shape=tuple(m.shape), value_range=tuple(m.value_range),
                         binary=m.binarize != "none", num_classes=m.num_classes)


# ------------------------------------------------------------------------------------------ reading

class SplitArray:
    """Rows of a split as memory-mapped (n_i, D) numpy chunks; indexing gathers only those rows."""

    def __init__(self, chunks: list[np.ndarray]):
        self.chunks = chunks
        self.offsets = np.cumsum([0] + [len(c) for c in chunks])
        dim = chunks[0].shape[1] if chunks else 0
        self.shape = (int(self.offsets[-1]), dim)
        self.dtype = np.float32

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(len(self)))
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.chunks) == 1:
            return self.chunks[0][idx]
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        for c in np.unique(which):
            mask = which == c
            out[mask] = self.chunks[c][idx[mask] - self.offsets[c]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[slice(None)]
        return arr.astype(dtype) if dtype is not None else arr


def load_prepared(path: str | Path) -> PreparedData:
    path = Path(path)
    meta_path = path / META
    if not meta_path.exists():
        raise DataError(f"data: {path} is not a prepared dataset (no {META}); create one with "
                        f"`boltzgan data prepare SOURCE --out {path}`")
    return PreparedData(str(path.resolve()), DataMeta.model_validate_json(meta_path.read_text()))


def open_split(path: str | Path, split: str) -> tuple[SplitArray, np.ndarray | None]:
    """(x rows (N, D) float32 without copying the file into memory, labels or None)."""
    import datasets

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    ds = datasets.load_from_disk(str(Path(path) / "dataset" / split))
    col = ds.data.column("image")
    chunks = [ch.flatten().to_numpy(zero_copy_only=True).reshape(len(ch), -1) for ch in col.chunks if len(ch)]
    labels = np.asarray(ds.data.column("label").to_numpy()) if "label" in ds.column_names else None
    return SplitArray(chunks), labels


# ------------------------------------------------------------------------------------------ writing

def spec_fingerprint(cfg: DataConfig, source_fingerprint: str) -> str:
    fields = cfg.model_dump(mode="json")
    fields.pop("dir", None)
    blob = json.dumps({"cfg": fields, "source": source_fingerprint, "v": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare(cfg: DataConfig, out: str | Path) -> PreparedData:
    """Prepare ``cfg.source`` into ``out``; a second call with the same spec does no work (cached)."""
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    raw = load_source(cfg.source, cfg.toy_samples, cfg.seed)
    fingerprint = spec_fingerprint(cfg, raw.fingerprint)
    cached = _check_out_dir(out, fingerprint)
    if cached is not None:
        return cached
    train, test, split_note = _split(raw, cfg)
    train, test, shape, resize_note = _images(train, test, raw, cfg)
    value_range = (0.0, 1.0) if cfg.binarize != "none" or cfg.scale == "unit" or raw.kind == "points" else (-1.0, 1.0)
    meta = DataMeta(
        source=cfg.source, fingerprint=fingerprint, shape=shape,
        value_range=value_range if raw.kind != "points" else _bounds(train.images),
        binarize=cfg.binarize if raw.kind != "points" else "none",
        threshold=cfg.threshold if cfg.binarize == "threshold" else None,
        binarize_seed=cfg.seed if cfg.binarize == "stochastic" else None,
        n_train=len(train.images), n_test=len(test.images),
        num_classes=_num_classes(raw, train), class_names=raw.class_names, split=split_note,
        resize=resize_note, notes=raw.notes)
    _write(out, {"train": train, "test": test}, meta, started)
    return load_prepared(out)


def _check_out_dir(out: Path, fingerprint: str) -> PreparedData | None:
    """The cached result when ``out`` holds this spec; an error when it holds anything else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not out.is_dir():
        raise DataError(f"data: --out {out} is a file; choose a directory path")
    if (out / META).exists():
        existing = load_prepared(out)
        if existing.meta.fingerprint == fingerprint:
            return PreparedData(existing.path, existing.meta, cached=True)
        raise DataError(f"data: {out} already holds a prepared dataset from a different spec "
                        f"(source {existing.meta.source}); use another --out or delete that directory")
    raise DataError(f"data: {out} exists and holds other files (not a prepared dataset); choose another "
                    f"--out or empty it. Nothing was written.")


def _split(raw: Raw, cfg: DataConfig) -> tuple[Split, Split, str]:
    if "train" in raw.splits and "test" in raw.splits:
        train, test, note = raw.splits["train"], raw.splits["test"], "source"
    else:
        whole = raw.splits.get("all") or raw.splits.get("train")
        n = len(whole.images)
        if n < 2:
            raise DataError(f"data.source: {cfg.source} yields {n} example(s); at least 2 are needed for a "
                            f"train/test split")
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_test = max(1, int(round(n * cfg.test_fraction)))
        train, test = _take(whole, order[n_test:]), _take(whole, order[:n_test])
        note = f"random test_fraction={cfg.test_fraction} seed={cfg.seed}"
    if cfg.limit is not None:
        train = _take(train, np.arange(min(cfg.limit, len(train.images))))
    if len(train.images) == 0:
        raise DataError(f"data.source: {cfg.source} has no training examples")
    if len(test.images) == 0:
        raise DataError(f"data.source: {cfg.source} has no test examples; set data.test_fraction or add a test split")
    return train, test, note


def _take(split: Split, idx: np.ndarray) -> Split:
    images = [split.images[i] for i in idx] if isinstance(split.images, list) else split.images[idx]
    return Split(images, split.labels[idx] if split.labels is not None else None)


def _images(train: Split, test: Split, raw: Raw, cfg: DataConfig) -> tuple[Split, Split, tuple[int, ...], str | None]:
    """Channels, resize rule, scaling and binarisation; returns flat float32 rows and the shape."""
    if raw.kind == "points":
        return train, test, (int(train.images.shape[1]),), None
    rng = np.random.default_rng([cfg.seed, 0xB1])
    target = (cfg.image_size, cfg.image_size) if cfg.image_size else tuple(train.images[0].shape[:2])
    out, notes = [], []
    for split in (train, test):
        images = [fix_channels(im, cfg.channels) for im in split.images]
        images, note = resize_all(images, target, cfg.resize, cfg.source)
        notes.append(note)
        x = np.stack(images).transpose(0, 3, 1, 2)  # (N, C, H, W)
        if cfg.binarize != "none":
            x = binarize(x, cfg.binarize, cfg.threshold, rng)
        elif cfg.scale == "symmetric":
            x = x * 2.0 - 1.0
        out.append(Split(np.ascontiguousarray(x, dtype=np.float32), split.labels))
    return out[0], out[1], tuple(int(s) for s in out[0].images.shape[1:]), next((n for n in notes if n), None)


def _bounds(points: np.ndarray) -> tuple[float, float]:
    return float(points.min()), float(points.max())


def _num_classes(raw: Raw, train: Split) -> int | None:
    if raw.class_names:
        return len(raw.class_names)
    return int(train.labels.max()) + 1 if train.labels is not None and len(train.labels) else None


def _write(out: Path, splits: dict[str, Split], meta: DataMeta, started: float) -> None:
    import datasets
    import pyarrow as pa

    datasets.disable_progress_bars()
    with artifacts.atomic_dir(out) as tmp:
        for name, split in splits.items():
            rows = split.images.reshape(len(split.images), -1)
            cols = {"image": pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), rows.shape[1])}
            if split.labels is not None:
                cols["label"] = pa.array(split.labels.astype(np.int64))
            table = datasets.table.InMemoryTable(pa.table(cols))
            datasets.Dataset(table).save_to_disk(str(tmp / "dataset" / name))
        meta.seconds = round(time.perf_counter() - started, 3)
        artifacts.write_text(tmp / META, meta.model_dump_json(indent=2))
