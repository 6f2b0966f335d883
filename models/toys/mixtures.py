"""Gaussian-mixture toys for mode collapse (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).

* ``ring8``: 8 modes at (cos 2πk/8, sin 2πk/8) (radius 1), σ = 0.01.
* ``grid25``: 25 modes at (-4 + 2i, -4 + 2j), i, j ∈ {0..4}, σ = 0.05.

Metrics as in PacGAN §5: a sample is *high quality* when it lies within 3σ of the nearest mode;
a mode is *covered* when at least one high-quality sample is assigned to it; the *reverse KL* is
KL(q ‖ uniform) of the histogram q of high-quality samples over modes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TOYS = {"ring8": 0.01, "grid25": 0.05}


def mode_centres(name: str) -> Tensor:
    if name == "ring8":
        angles = torch.arange(8) * (2 * math.pi / 8)
        return torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    if name == "grid25":
        axis = torch.arange(-4.0, 5.0, 2.0)
        return torch.cartesian_prod(axis, axis)
    raise KeyError(f"unknown toy {name!r}; known: {', '.join(TOYS)}")


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """n points of the uniform mixture and the index of the mode each came from."""
    centres = mode_centres(name)
    modes = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[modes] + TOYS[name] * torch.randn(n, 2, generator=generator), modes


def mode_metrics(samples: Tensor, name: str) -> dict[str, float]:
    """Modes covered, fraction of high-quality samples and reverse KL to the uniform mode histogram."""
    centres, sigma = mode_centres(name), TOYS[name]
    dist = torch.cdist(samples.reshape(-1, 2).double(), centres.double())
    nearest_d, nearest = dist.min(1)
    good = nearest_d <= 3 * sigma
    counts = torch.bincount(nearest[good], minlength=len(centres)).double()
    covered = int((counts > 0).sum())
    if good.any():
        q = counts / counts.sum()
        nz = q > 0
        reverse_kl = float((q[nz] * torch.log(q[nz] * len(centres))).sum())
    else:
        reverse_kl = math.inf
    return {"modes_covered": float(covered), "high_quality_fraction": float(good.double().mean()),
            "reverse_kl": reverse_kl}
