"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to *both* real and fake
images, in the discriminator step and in the generator step, so D never sees un-augmented data
and G receives gradients through the augmentation.

The three policies of the paper: ``color`` (brightness ± 0.5, saturation × U(0, 2), contrast ×
U(0.5, 1.5)), ``translation`` (shift by up to 1/8 of the image, zero padded) and ``cutout`` (a
square of half the image side zeroed). Each draw is per sample. All randomness comes from the
passed generator (or torch's default one, which the engine seeds per rank and epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One U(0, 1) draw per sample, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def color(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Brightness, saturation and contrast jitter, in the paper's order and ranges."""
    x = x + (_uniform(x, generator) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2.0 * _uniform(x, generator)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def translation(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> Tensor:
    """Shift each image by integers in [−r, r] pixels per axis (r = ratio · side, rounded), padding
    with zeros; implemented as a gather from the zero-padded batch so it stays differentiable."""
    n, _, h, w = x.shape
    ry, rx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-ry, ry + 1, (n, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-rx, rx + 1, (n, 1, 1), device=x.device, generator=generator)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy + ry).expand(n, h, w)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx + rx).expand(n, h, w)
    padded = torch.nn.functional.pad(x, (rx, rx, ry, ry))
    batch = torch.arange(n, device=x.device)[:, None, None].expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> Tensor:
    """Zero a square of side ratio · side per image, its centre uniform over the image (the square
    may be clipped at the border, as in the paper's code)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - sy % 2), (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w + (1 - sx % 2), (n, 1, 1), device=x.device, generator=generator)
    ty = torch.arange(h, device=x.device)[None, :, None] - (cy - sy // 2)  # row offset inside the square
    tx = torch.arange(w, device=x.device)[None, None, :] - (cx - sx // 2)
    inside = (ty >= 0) & (ty < sy) & (tx >= 0) & (tx < sx)
    return x * (~inside)[:, None].to(x.dtype)


_FNS: dict[str, Callable[..., Tensor]] = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policy: Sequence[str], generator: torch.Generator | None = None) -> Tensor:
    """Apply the named policies in order (``[]`` returns x unchanged)."""
    for name in policy:
        x = _FNS[name](x, generator)
    return x.contiguous()
