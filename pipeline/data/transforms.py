"""Image transforms of the prepare stage: channels, one size for all images, scaling, binarisation.

Images are float32 intensities in [0, 1], channel-last, either one (N, H, W, C) array (the fast
path: IDX, digits, uniform Hub data) or a list of (H, W, C) arrays when sizes or channels differ.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.errors import DataError

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's convert("L")

Images = np.ndarray | list[np.ndarray]


def fix_channels(x: np.ndarray, mode: str) -> np.ndarray:
    """(..., C) -> 1 channel (``gray``: BT.601 luma), 3 (``rgb``: gray repeated, alpha dropped), or as is."""
    c = x.shape[-1]
    if mode == "gray" and c in (3, 4):
        return (x[..., :3] @ _LUMA)[..., None]
    if mode == "rgb" and c == 1:
        return np.repeat(x, 3, axis=-1)
    if mode == "rgb" and c == 4:
        return x[..., :3]
    return x


def _sizes(images: Images) -> set[tuple[int, int]]:
    return {tuple(images.shape[1:3])} if isinstance(images, np.ndarray) else {im.shape[:2] for im in images}


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def conform(splits: list[Images], channels: str, image_size: int | None, rule: str,
            source: str) -> tuple[list[np.ndarray], str | None]:
    """Every split as one (N, H, W, C) array with the same channels and size, and the resize note.

    The target is ``image_size`` (square) or else the size of the first training image. Rule
    ``refuse`` (the default) fails on any mismatch rather than silently distorting the data.
    """
    splits = [fix_channels(s, channels) if isinstance(s, np.ndarray) else [fix_channels(im, channels) for im in s]
              for s in splits]
    found = {im.shape[-1] for s in splits for im in (s[:1] if isinstance(s, np.ndarray) else s)}
    if len(found) > 1:
        raise DataError(f"data.source: {source} mixes images with {sorted(found)} channels; set data.channels=gray "
                        f"or data.channels=rgb (--channels for `boltzgan data prepare`)")
    sizes = set().union(*(_sizes(s) for s in splits))
    first = splits[0][0].shape[:2]
    target = (image_size, image_size) if image_size else first
    if sizes == {target}:
        return [s if isinstance(s, np.ndarray) else np.stack(s) for s in splits], None
    if rule == "refuse":
        others = sorted(sizes - {first}) or sorted(sizes)
        fix = ("set data.image_size=N data.resize=bilinear (or nearest): `--set data.image_size=N "
               "data.resize=bilinear` for runs, `--image-size N --resize bilinear` for `boltzgan data prepare`")
        if len(sizes) > 1:
            raise DataError(f"data.source: {source} has images of different sizes ({_size_text(first)} and "
                            f"{_size_text(others[0])}, {len(sizes)} sizes in all); to resize them all, {fix}")
        raise DataError(f"data.source: {source} has {_size_text(first)} images but data.image_size={image_size} "
                        f"and data.resize=refuse; to resize them, {fix}")
    out = [np.stack([_resize(im, target, rule) for im in s]) for s in splits]
    return out, f"{rule} to {target[0]}x{target[1]}"


def _resize(image: np.ndarray, target: tuple[int, int], rule: str) -> np.ndarray:
    """One (H, W, C) float image to ``target`` (H, W), channel by channel on PIL float images."""
    if image.shape[:2] == tuple(target):
        return image
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F")
                        .resize((target[1], target[0]), _RESAMPLE[rule])) for c in range(image.shape[-1])]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def binarize(x: np.ndarray, rule: str, threshold: float, rng: np.random.Generator) -> np.ndarray:
    """{0, 1} from [0, 1] intensities: ``threshold`` (1 where x > threshold, so x == threshold -> 0)
    or ``stochastic`` (x ~ Bernoulli(intensity), as Salakhutdinov & Murray 2008 binarised MNIST,
    drawn once here with the seeded ``rng``)."""
    if rule == "threshold":
        return (x > threshold).astype(np.float32)
    if rule == "stochastic":
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
    raise ValueError(f"binarize rule {rule!r} is not one of threshold, stochastic")


def scale(x: np.ndarray, rule: str) -> np.ndarray:
    """[0, 1] intensities to ``unit`` [0, 1] (unchanged) or ``symmetric`` [-1, 1] (2x - 1, in place)."""
    if rule == "symmetric":
        x *= 2.0
        x -= 1.0
    return x
