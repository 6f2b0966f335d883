"""Image transforms of the prepare stage: channels, the resize rule, binarisation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.errors import DataError

_RESAMPLE = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def fix_channels(image: np.ndarray, mode: str) -> np.ndarray:
    """(H, W, C) float [0, 1] -> 1 channel (gray: ITU-R 601 luma) or 3 (rgb: repeated), or as is."""
    c = image.shape[-1]
    if mode == "gray" and c == 3:
        return (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    if mode == "gray" and c == 4:
        return fix_channels(image[..., :3], mode)
    if mode == "rgb" and c == 1:
        return np.repeat(image, 3, axis=-1)
    if mode == "rgb" and c == 4:
        return image[..., :3]
    return image


def resize_all(images: list[np.ndarray], target: tuple[int, int], rule: str,
               source: str) -> tuple[list[np.ndarray], str | None]:
    """Bring every image to ``target`` (H, W). Rule ``refuse`` (default) fails on any mismatch
    instead of silently distorting the data."""
    channels = {im.shape[-1] for im in images}
    if len(channels) > 1:
        raise DataError(f"data.source: {source} mixes images with {sorted(channels)} channels; "
                        f"set data.channels=gray or data.channels=rgb")
    mismatch = next((im.shape[:2] for im in images if im.shape[:2] != tuple(target)), None)
    if mismatch is None:
        return images, None
    if rule == "refuse":
        raise DataError(f"data.source: {source} has images of different sizes ({images[0].shape[0]}×"
                        f"{images[0].shape[1]} and {mismatch[0]}×{mismatch[1]}; target {target[0]}×{target[1]}). "
                        f"Resize them with --set data.image_size=N --set data.resize=bilinear (or nearest).")
    out = [_resize(im, target, rule) for im in images]
    return out, f"{rule} to {target[0]}x{target[1]}"


def _resize(image: np.ndarray, target: tuple[int, int], rule: str) -> np.ndarray:
    if image.shape[:2] == tuple(target):
        return image
    chans = [np.asarray(Image.fromarray(image[..., c]).resize((target[1], target[0]), _RESAMPLE[rule]))
             for c in range(image.shape[-1])]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def binarize(x: np.ndarray, rule: str, threshold: float, rng: np.random.Generator) -> np.ndarray:
    """{0, 1} from [0, 1] intensities: ``threshold`` (x > t) or ``stochastic`` (x ~ Bernoulli(intensity))."""
    if rule == "threshold":
        return (x > threshold).astype(np.float32)
    if rule == "stochastic":
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
    raise ValueError(f"data.binarize={rule!r} is not one of none, threshold, stochastic")
