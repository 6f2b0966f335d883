"""MNIST-format IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/), gzipped or not.

Layout: a 4-byte magic number (0, 0, dtype code, number of dimensions), one big-endian uint32 per
dimension, then the values in C order. Parsed with numpy and checked against the header, so a
truncated download fails here with the file named instead of as a reshape error later.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
# The standard names (Fashion-MNIST, MNIST, KMNIST...) and the dotted variant some mirrors use.
_STEMS = {
    ("train", "images"): ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    ("train", "labels"): ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    ("test", "images"): ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    ("test", "labels"): ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file (decompressed first when it starts with the gzip magic)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
        elif path.suffix == ".gz":
            raise gzip.BadGzipFile("not a gzip file")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"data.source: {path} is not a readable IDX file ({type(exc).__name__}: {exc}); "
                        f"download it again or point idx: at an intact copy") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"data.source: {path} does not start with an IDX magic number (0x0000 + dtype + ndim); "
                        f"it is not an IDX file or it is corrupt")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"data.source: {path} is truncated inside its header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"data.source: {path} is truncated or corrupt: header says {dims} "
                        f"({expected} bytes of values) but it holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def find_idx(directory: Path, split: str, kind: str) -> Path | None:
    """The file for (split, kind) under its standard name, raw or ``.gz``."""
    for stem in _STEMS[(split, kind)]:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None


def idx_files(directory: Path) -> dict[tuple[str, str], Path]:
    """The IDX files present in ``directory``; an error when there are no training images."""
    found = {key: p for key in _STEMS if (p := find_idx(directory, *key)) is not None}
    if ("train", "images") not in found:
        names = ", ".join(f"{s}[.gz]" for s in _STEMS[("train", "images")])
        raise DataError(f"data.source: no training images in {directory} (looked for {names}); "
                        f"idx: expects the MNIST file names, e.g. /usr/share/datasets/fashion-mnist")
    return found


def load_idx_split(files: dict[tuple[str, str], Path], split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(images (N, H, W) or (N, H, W, C), int64 labels or None) of one split."""
    images_path, labels_path = files[(split, "images")], files.get((split, "labels"))
    x = read_idx(images_path)
    if x.ndim not in (3, 4):
        raise DataError(f"data.source: {images_path} holds an array of shape {x.shape}; images must be "
                        f"(N, H, W) or (N, H, W, C)")
    if labels_path is None:
        return x, None
    y = read_idx(labels_path)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"data.source: {labels_path} holds labels of shape {y.shape} for the {len(x)} images "
                        f"of {images_path}; the two files do not belong together")
    return x, y.astype(np.int64)
