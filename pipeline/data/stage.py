"""The prepare stage: ``data.source`` -> train/test splits as Arrow files plus ``meta.json``.

Order of work: resolve and fingerprint the source (cheap), return the existing directory when it
already holds this spec, else load, split, conform sizes, scale or binarise, and write everything
into a temporary sibling that is renamed into place (a failure leaves nothing behind).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.config import DataConfig
from pipeline.data.meta import META, DataMeta, PreparedData, is_prepared, load_prepared
from pipeline.data.sources import Raw, Source, Split, resolve_source
from pipeline.data.store import split_table, write_splits
from pipeline.data.transforms import binarize, conform, scale
from pipeline.errors import DataError
from pipeline.locks import hold

FORMAT_VERSION = 2  # 2: one Arrow record batch per split (memory-mapped as one numpy view)


def output_fields(cfg: DataConfig, kind: str) -> dict:
    """The DataConfig fields that change the prepared output for a source of this kind."""
    keep = {"source", "test_fraction", "seed", "limit"}
    if kind == "points":
        keep |= {"toy_samples"}
    else:
        keep |= {"channels", "image_size", "resize", "binarize"}
        keep |= {"bad_images"} if cfg.bad_images != "refuse" else set()  # refuse never changes an output
        keep |= {"scale"} if cfg.binarize == "none" else {"threshold"} if cfg.binarize == "threshold" else set()
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k in keep}


def spec_fingerprint(cfg: DataConfig, source: Source) -> str:
    blob = json.dumps({"cfg": output_fields(cfg, source.kind), "source": source.fingerprint, "v": FORMAT_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare(cfg: DataConfig, out: str | Path) -> PreparedData:
    """Prepare ``cfg.source`` into ``out``; when ``out`` already holds this spec nothing is redone
    (``cached=True``). ``out`` holding anything else is an error, never overwritten."""
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    source = resolve_source(cfg.source, cfg.toy_samples, cfg.seed, cfg.bad_images)
    fingerprint = spec_fingerprint(cfg, source)
    existing = _existing_output(out, fingerprint)
    if existing is not None:
        return existing
    with hold(out, "data"):  # one writer per directory; a second one is refused, naming the holder
        existing = _existing_output(out, fingerprint)
        return existing if existing is not None else _build(cfg, source, fingerprint, out, started)


def _build(cfg: DataConfig, source: Source, fingerprint: str, out: Path, started: float) -> PreparedData:
    raw = source.load()
    _refuse_nonfinite(raw, cfg.source)
    (train, test), split_note = _split(raw, cfg)
    (train_x, test_x), fields = _points(train, test) if source.kind == "points" else _images(train, test, cfg)
    meta = DataMeta(source=cfg.source, fingerprint=fingerprint, n_train=len(train_x), n_test=len(test_x),
                    num_classes=_num_classes(raw, train, test), class_names=raw.class_names, split=split_note,
                    **fields)
    with atomic.atomic_dir(out) as tmp:
        write_splits(tmp, {"train": split_table(train_x, train.labels), "test": split_table(test_x, test.labels)})
        meta.seconds = round(time.perf_counter() - started, 3)
        atomic.write_text(tmp / META, meta.model_dump_json(indent=2) + "\n")
    return load_prepared(out)


def _existing_output(out: Path, fingerprint: str) -> PreparedData | None:
    """The prepared data when ``out`` holds this spec; None when ``out`` is free (absent or empty)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise DataError(f"data: the output {out} is a file; choose another --out (a new directory)")
    if not any(out.iterdir()):
        return None
    if not is_prepared(out):
        raise DataError(f"data: the output directory {out} already holds other files and is not a prepared "
                        f"dataset; choose another --out or empty that directory yourself. Nothing was written.")
    existing = load_prepared(out)
    if existing.meta.fingerprint != fingerprint:
        raise DataError(f"data: {out} already holds a prepared dataset of another spec (source "
                        f"{existing.meta.source}, fingerprint {existing.meta.fingerprint}, this one {fingerprint}); "
                        f"choose another --out or delete {out} to prepare it again")
    return PreparedData(existing.path, existing.meta, cached=True)


def _split(raw: Raw, cfg: DataConfig) -> tuple[tuple[Split, Split], str]:
    """The source's own train/test split, or a seeded random one; then ``limit``."""
    if "all" not in raw.splits:
        train, test, note = raw.splits["train"], raw.splits["test"], "source"
    else:
        whole = raw.splits["all"]
        n = len(whole.images)
        n_test = int(round(n * cfg.test_fraction))
        if n_test < 1 or n - n_test < 1:
            raise DataError(f"data.source: {cfg.source} has {n} example(s), too few for a train/test split with "
                            f"data.test_fraction={cfg.test_fraction}; use more data or another test_fraction")
        order = np.random.default_rng(cfg.seed).permutation(n)
        train, test = _take(whole, order[n_test:]), _take(whole, order[:n_test])
        note = f"random test_fraction={cfg.test_fraction} seed={cfg.seed}"
    if cfg.limit is not None and cfg.limit < len(train.images):
        train = _take(train, np.arange(cfg.limit))
        note += f"; first {cfg.limit} training examples kept (limit)"
    for name, split in (("training", train), ("test", test)):
        if len(split.images) == 0:
            raise DataError(f"data.source: {cfg.source} has no {name} examples; it is empty")
    return (train, test), note


def _refuse_nonfinite(raw: Raw, source: str) -> None:
    """NaN/inf values would be scaled into every image (one inf maximum makes all pixels -1)."""
    for name, split in raw.splits.items():
        arrays = split.images if isinstance(split.images, list) else [split.images]
        bad, first = 0, None
        for i, x in enumerate(arrays):
            finite = np.isfinite(np.asarray(x, dtype=np.float64) if not isinstance(split.images, list) else x)
            n = int(finite.size - np.count_nonzero(finite))
            if n and first is None:
                where = np.argwhere(~finite)[0]
                first = tuple(int(w) for w in where) if not isinstance(split.images, list) else (i, *map(int, where))
            bad += n
        if bad:
            raise DataError(f"data.source: {source} has {bad:,} non-finite value(s) (NaN or inf) in its {name} split; "
                            f"the first at index {first} (example, then position); clean the data first")


def _take(split: Split, idx: np.ndarray) -> Split:
    images = [split.images[i] for i in idx] if isinstance(split.images, list) else split.images[idx]
    return Split(images, split.labels[idx] if split.labels is not None else None)


def _points(train: Split, test: Split) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    x = np.concatenate([train.images, test.images])
    return (train.images, test.images), {"shape": (int(x.shape[1]),), "binarize": "none",
                                         "value_range": (float(x.min()), float(x.max()))}


def _images(train: Split, test: Split, cfg: DataConfig) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """Channels and size, then [0, 1] -> scale or binarise; arrays (N, C, H, W) float32."""
    (xtr, xte), resize_note = conform([train.images, test.images], cfg.channels, cfg.image_size, cfg.resize,
                                      cfg.source)
    lo, hi = min(float(xtr.min()), float(xte.min())), max(float(xtr.max()), float(xte.max()))
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"data.source: {cfg.source} has pixel values in [{lo:g}, {hi:g}]; expected uint8 images "
                        f"or float intensities in [0, 1] (normalised pixel_values cannot be prepared)")
    rng = np.random.default_rng([cfg.seed, 0xB1])  # the stochastic binarisation's own stream
    arrays = []
    for x in (xtr, xte):
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1), dtype=np.float32)  # (N, C, H, W)
        arrays.append(binarize(x, cfg.binarize, cfg.threshold, rng) if cfg.binarize != "none" else scale(x, cfg.scale))
    binary = cfg.binarize != "none"
    return (arrays[0], arrays[1]), {"shape": tuple(int(s) for s in arrays[0].shape[1:]),
            "value_range": (0.0, 1.0) if binary or cfg.scale == "unit" else (-1.0, 1.0),
            "binarize": cfg.binarize, "threshold": cfg.threshold if cfg.binarize == "threshold" else None,
            "binarize_seed": cfg.seed if cfg.binarize == "stochastic" else None, "resize": resize_note}


def _num_classes(raw: Raw, train: Split, test: Split) -> int | None:
    """From the class names, else the largest label in either split (a class may be absent from one)."""
    if raw.class_names:
        return len(raw.class_names)
    if train.labels is None or test.labels is None:
        return None
    return int(max(train.labels.max(), test.labels.max())) + 1
