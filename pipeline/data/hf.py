"""Hugging Face ``datasets`` glue: loading with readable errors, finding the image and label
columns, and a quick Hub reachability probe.

The probe exists because ``datasets.load_dataset`` on an unreachable Hub retries for ~25 s and
then raises a bare ConnectionError; a single HEAD request with a short deadline tells the user
the same thing in 5 s, together with the local alternatives.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.errors import DataError

log = logging.getLogger(__name__)

HUB_PROBE_SECONDS = 5.0
LOCAL_SOURCES = ("idx:DIR (MNIST-format files), parquet:PATH, disk:PATH (a dataset saved with save_to_disk) "
                 "or imagefolder:DIR (class sub-folders of images)")
IMAGE_COLUMNS = ("image", "img", "pixel_values")
LABEL_COLUMNS = ("label", "labels")


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether the Hub answers a HEAD request within ``timeout`` (any HTTP status counts).

    urllib honours the *_proxy variables like ``datasets`` does; the request runs in a daemon
    thread so a hanging DNS lookup (not covered by socket timeouts) cannot hold us either.
    """
    answered: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout)
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)
        except Exception:  # URLError, timeouts, resets: all mean "not reachable now"
            answered.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(answered and answered[0])


def hub_offline() -> bool:
    """Offline mode as ``datasets`` itself sees it (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE at import)."""
    import datasets

    return bool(datasets.config.HF_HUB_OFFLINE)


def call(fn: Callable[[], Any], uri: str, advice: str = "") -> Any:
    """Run a ``datasets`` loader, turning its many exception types into one DataError paragraph."""
    try:
        return fn()
    except DataError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        first = (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")
        raise DataError(f"data.source: could not load {uri}: {type(exc).__name__}: {first}.{advice}") from None


def image_label_columns(ds) -> tuple[str, str | None]:
    """The image column (an ``Image`` feature, else image/img/pixel_values) and the label column
    (a ``ClassLabel``, else label/labels, else none)."""
    import datasets

    features = ds.features
    image = next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)
    image = image or next((c for c in IMAGE_COLUMNS if c in features), None)
    if image is None:
        raise DataError(f"data.source: no image column among the columns {', '.join(features)}; expected an "
                        f"Image feature or a column named {'/'.join(IMAGE_COLUMNS)}")
    label = next((c for c, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    label = label or next((c for c in LABEL_COLUMNS if c in features), None)
    return image, label


def to_unit_image(value: Any) -> np.ndarray:
    """A PIL image, array or nested list -> float32 (H, W, C); uint8 / 255, uint16 / 65535, floats as is."""
    if hasattr(value, "mode") and value.mode not in ("L", "RGB", "RGBA", "F", "I;16", "I"):
        value = value.convert("RGB")  # palette, CMYK, LA...
    arr = np.asarray(value)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32)


def convert_split(ds, bad_images: str = "refuse") -> tuple[list[np.ndarray], np.ndarray | None, list[str] | None]:
    """(images as float32 (H, W, C) arrays, int64 labels or None, class names or None).

    Encoded images (an ``Image`` feature, or a ``{bytes, path}`` struct written without the HF
    metadata) are decoded here one by one, so an unreadable file (corrupt, truncated, a
    decompression bomb) is named: refused, or skipped with a warning when ``bad_images="skip"``.
    """
    import datasets

    image_col, label_col = image_label_columns(ds)
    if isinstance(ds.features[image_col], datasets.Image):
        ds = ds.cast_column(image_col, datasets.Image(decode=False))
    images, keep = [], []
    for i, value in enumerate(ds[image_col]):
        image = _decode(value, i, image_col, bad_images)
        if image is not None:
            images.append(image)
            keep.append(i)
    if not images:
        raise DataError(f"data.source: none of the {len(ds)} images in column '{image_col}' could be read")
    if label_col is None:
        return images, None, None
    labels = np.asarray(ds[label_col], dtype=np.int64)[keep]
    feature = ds.features[label_col]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return images, labels, names


def _decode(value: Any, index: int, column: str, bad_images: str) -> np.ndarray | None:
    """One image value -> float32 (H, W, C), or None when it is unreadable and skipped."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        name = value.get("path") or f"row {index}"
        try:
            return to_unit_image(_open_image(value))
        except Exception as exc:  # PIL's UnidentifiedImageError, OSError (truncated), DecompressionBomb*
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
            if bad_images == "skip":
                log.warning("data.source: skipping unreadable image %s (%s)", name, reason)
                return None
            raise DataError(f"data.source: the image {name} (row {index} of column '{column}') cannot be read "
                            f"({reason}); remove or replace it, or set data.bad_images=skip to leave unreadable "
                            f"images out") from None
    if isinstance(value, (dict, str, bytes)) or value is None:
        raise DataError(f"data.source: column '{column}' holds {type(value).__name__} values (row {index}), not "
                        f"images or pixel arrays; store images as an Image feature or {{bytes, path}} structs")
    try:
        return to_unit_image(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data.source: row {index} of column '{column}' is not a pixel array ({exc})") from None


def _open_image(value: dict) -> Any:
    """PIL image from encoded bytes (or the file path), fully loaded; a decompression-bomb warning
    (more than PIL's MAX_IMAGE_PIXELS) counts as unreadable."""
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        with Image.open(source) as img:
            img.load()
            return img.copy()
