"""Data sources named by URI. Each loader returns :class:`Raw`: images in [0, 1] as (H, W, C)
arrays (or 2-D points for toys), labels when the source has them, and a fingerprint of the source."""

from __future__ import annotations

import difflib
import hashlib
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from pipeline.data.idx import load_idx_dir
from pipeline.errors import DataError

HUB_PROBE_SECONDS = 5.0


@dataclass
class Split:
    images: np.ndarray | list[np.ndarray]  # (N, H, W, C) float32 in [0, 1], a list if sizes differ, or (N, 2) points
    labels: np.ndarray | None


@dataclass
class Raw:
    splits: dict[str, Split]
    fingerprint: str
    kind: str = "image"  # or "points"
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)


def _fingerprint_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _existing(path_text: str, what: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise DataError(f"data.source: {what} path {path} does not exist; check the path (it is resolved "
                        f"relative to {Path.cwd()})")
    if not os.access(path, os.R_OK):
        raise DataError(f"data.source: {what} path {path} is not readable by this user; fix its permissions")
    return path


def _to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 (or 0..max) images to float32 [0, 1], channel-last."""
    x = images.astype(np.float32)
    top = 255.0 if images.dtype == np.uint8 or x.max() > 1.0 else 1.0
    x /= top
    return x[..., None] if x.ndim == 3 else x


# ------------------------------------------------------------------------------------------ loaders

def load_digits_source(_: str) -> Raw:
    """scikit-learn's bundled 8×8 digits (1,797 images, values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    return Raw({"all": Split(x, d.target.astype(np.int64))}, fingerprint="sklearn-digits-v1",
               class_names=[str(i) for i in range(10)])


def load_idx_source(arg: str) -> Raw:
    directory = _existing(arg, "idx")
    splits = {name: Split(_to_unit(x), y) for name, (x, y) in load_idx_dir(directory).items()}
    return Raw(splits, fingerprint=_fingerprint_files([p for p in directory.iterdir() if p.is_file()]))


def load_toy_source(arg: str, n: int, seed: int) -> Raw:
    import torch

    from models.toys.mixtures import sample_mixture

    try:
        points, modes = sample_mixture(arg, n, torch.Generator().manual_seed(seed))
    except (KeyError, ValueError) as exc:
        raise DataError(f"data.source: toy:{arg} is not a known toy ({exc}); use toy:ring8 or toy:grid25") from None
    return Raw({"all": Split(points.numpy().astype(np.float32), modes.numpy().astype(np.int64))},
               fingerprint=f"toy-{arg}-{n}-{seed}", kind="points")


def load_hf_dataset_source(ds_dict, fingerprint: str) -> Raw:
    """Convert a loaded ``datasets`` Dataset/DatasetDict: find the image and label columns."""
    import datasets

    if isinstance(ds_dict, datasets.Dataset):
        ds_dict = datasets.DatasetDict({"all": ds_dict})
    splits, class_names = {}, None
    for name, ds in ds_dict.items():
        if len(ds) == 0:
            continue
        img_col, label_col = _columns(ds)
        images = [_pil_or_array(v) for v in ds[img_col]]
        labels = np.asarray(ds[label_col], dtype=np.int64) if label_col else None
        feat = ds.features.get(label_col) if label_col else None
        if isinstance(feat, datasets.ClassLabel):
            class_names = list(feat.names)
        key = "test" if name in ("test", "validation") and "test" not in splits else name
        splits[key] = Split(_stack_if_same(images), labels)
    if "train" not in splits and "all" not in splits and splits:
        first = next(iter(splits))
        splits["all"] = splits.pop(first)
    return Raw(splits, fingerprint=fingerprint, class_names=class_names)


def _columns(ds) -> tuple[str, str | None]:
    import datasets

    names = list(ds.features)
    img = next((c for c, f in ds.features.items() if isinstance(f, datasets.Image)), None)
    img = img or next((c for c in ("image", "img", "pixel_values") if c in names), None)
    if img is None:
        raise DataError(f"data.source: no image column found (columns: {', '.join(names)}); expected an Image "
                        f"feature or a column named image/img/pixel_values")
    label = next((c for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)), None)
    label = label or next((c for c in ("label", "labels") if c in names), None)
    return img, label


def _pil_or_array(value) -> np.ndarray:
    """A PIL image or nested list to float32 (H, W, C) in [0, 1] (uint8 is divided by 255)."""
    if hasattr(value, "convert") and value.mode not in ("L", "RGB"):
        value = value.convert("RGB")
    arr = np.asarray(value)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)


def _stack_if_same(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    shapes = {im.shape for im in images}
    return np.stack(images) if len(shapes) == 1 else images


def load_imagefolder_source(arg: str) -> Raw:
    import datasets

    directory = _existing(arg, "imagefolder")
    files = [p for p in directory.rglob("*") if p.is_file()]
    if not files:
        raise DataError(f"data.source: imagefolder {directory} holds no files; it needs class sub-folders of images")
    ds = _hf_call(lambda: datasets.load_dataset("imagefolder", data_dir=str(directory)), arg)
    return load_hf_dataset_source(ds, _fingerprint_files(files))


def load_parquet_source(arg: str) -> Raw:
    import datasets

    path = _existing(arg, "parquet")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"data.source: no .parquet files under {path}")
    ds = _hf_call(lambda: datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train"), arg)
    return load_hf_dataset_source(ds, _fingerprint_files(files))


def load_disk_source(arg: str) -> Raw:
    import datasets

    path = _existing(arg, "disk")
    ds = _hf_call(lambda: datasets.load_from_disk(str(path)), arg)
    return load_hf_dataset_source(ds, _fingerprint_files([p for p in path.rglob("*") if p.is_file()]))


def load_hub_source(arg: str) -> Raw:
    """``hf:NAME[:CONFIG]``: a local dataset directory, or the Hub (or its cache when offline)."""
    import datasets

    name, _, config = arg.partition(":")
    if Path(name).expanduser().is_dir():
        local = str(Path(name).expanduser())
        ds = _hf_call(lambda: datasets.load_dataset(local, config or None), arg)
        return load_hf_dataset_source(ds, _fingerprint_files([p for p in Path(local).rglob("*") if p.is_file()]))
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes")
                  for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
    if not offline and not _hub_reachable():
        raise DataError(
            f"data.source: hf:{arg} needs the Hugging Face Hub, which is not reachable from this machine "
            f"(no connection within {HUB_PROBE_SECONDS:g} s). To use a copy in the local cache set "
            f"HF_DATASETS_OFFLINE=1; otherwise use a local source: idx:DIR, parquet:PATH, disk:PATH "
            f"(a dataset saved with save_to_disk) or imagefolder:DIR.")
    ds = _hf_call(lambda: datasets.load_dataset(name, config or None), arg)
    return load_hf_dataset_source(ds, f"hf-{name}-{config}-{getattr(ds, 'fingerprint', '')}")


def _hub_reachable() -> bool:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)

    def probe() -> bool:
        with socket.create_connection((url.hostname, port), timeout=HUB_PROBE_SECONDS):
            return True

    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(probe).result(timeout=HUB_PROBE_SECONDS + 1)
        except (OSError, FutureTimeout):
            return False


def _hf_call(fn: Callable, arg: str):
    """Run a ``datasets`` loader, turning its failures into one DataError paragraph."""
    try:
        return fn()
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, ConnectionError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"data.source: could not load {arg!r}: {type(exc).__name__}: {first}") from None


SCHEMES: dict[str, Callable[[str], Raw]] = {
    "idx": load_idx_source,
    "hf": load_hub_source,
    "imagefolder": load_imagefolder_source,
    "parquet": load_parquet_source,
    "disk": load_disk_source,
}
ALL_SCHEMES = ["digits", *SCHEMES, "toy"]


def load_source(source: str, toy_samples: int, seed: int) -> Raw:
    """Dispatch on the URI scheme of ``data.source``."""
    if source == "digits":
        return load_digits_source(source)
    scheme, sep, arg = source.partition(":")
    if scheme == "toy" and sep:
        return load_toy_source(arg, toy_samples, seed)
    if scheme in SCHEMES and sep and arg:
        return SCHEMES[scheme](arg)
    near = difflib.get_close_matches(scheme, ALL_SCHEMES, n=1)
    hint = f" Did you mean '{near[0]}:'?" if near and near[0] != scheme else ""
    raise DataError(f"data.source: {source!r} is not a known source.{hint} Valid forms: digits, idx:DIR, "
                    f"hf:NAME[:CONFIG], imagefolder:DIR, parquet:PATH, disk:PATH, toy:ring8, toy:grid25.")
