"""MNIST-format IDX files (LeCun et al.), gzipped or not, parsed and validated with numpy."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    ("train", "images"): ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    ("train", "labels"): ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    ("test", "images"): ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    ("test", "labels"): ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: magic (0, 0, dtype, ndim), ndim big-endian sizes, then the data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"data.source: {path} is not a readable (gzip) IDX file ({exc}); "
                        f"re-download it or point idx: at an intact copy") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"data.source: {path} does not start with an IDX magic number; is it an IDX file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4")) if ndim else ()
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"data.source: {path} is truncated or corrupt: header says {dims} "
                        f"({expected} bytes of data) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def find_idx(directory: Path, split: str, kind: str) -> Path | None:
    for stem in _FILES[(split, kind)]:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None


def load_idx_dir(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{split: (images (N, H, W) uint8, labels or None)} for the splits present in ``directory``."""
    if not directory.is_dir():
        raise DataError(f"data.source: idx directory {directory} does not exist; on Debian "
                        f"`apt-get install dataset-fashion-mnist` provides /usr/share/datasets/fashion-mnist")
    out = {}
    for split in ("train", "test"):
        images = find_idx(directory, split, "images")
        if images is None:
            continue
        x = read_idx(images)
        labels = find_idx(directory, split, "labels")
        y = read_idx(labels).astype(np.int64) if labels else None
        if y is not None and len(y) != len(x):
            raise DataError(f"data.source: {labels} has {len(y)} labels for {len(x)} images in {images}")
        out[split] = (x, y)
    if "train" not in out:
        names = ", ".join(n + "[.gz]" for n in _FILES[("train", "images")])
        raise DataError(f"data.source: no training images in {directory} (looked for {names})")
    return out
