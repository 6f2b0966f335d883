"""Gaussian-mixture toys for mode collapse, with the settings and metrics of PacGAN (Lin et al.
2018, §5; after VEEGAN, Srivastava et al. 2017).

* ``ring8``: 8 equally weighted modes on the unit circle, means (cos 2πk/8, sin 2πk/8) (radius 1),
  isotropic σ = 0.01. (VEEGAN's ring has radius 2 and σ 0.02; we follow PacGAN's σ, as the issue
  asks, and PacGAN's radius, so that 3σ balls stay far apart either way.)
* ``grid25``: 25 equally weighted modes at (−4 + 2i, −4 + 2j), i, j ∈ {0..4} (spacing 2), σ = 0.05.

Metrics (PacGAN §5, computed on 2,500 generated samples): a sample is *high quality* when it lies
within 3σ of its nearest mode; a mode is *covered* when at least one high-quality sample is
nearest to it; the *reverse KL* is KL(q ‖ p) between the histogram q of high-quality samples over
modes and the true (uniform) mode distribution p — 0 for balanced coverage, log K when all
samples sit on one of K modes, ∞ when no sample is high quality.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SIGMA = {"ring8": 0.01, "grid25": 0.05}


def mode_centres(name: str) -> Tensor:
    """The (K, 2) mode means of toy ``name``."""
    if name == "ring8":
        angles = torch.arange(8) * (2 * math.pi / 8)
        return torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    if name == "grid25":
        axis = torch.arange(-4.0, 5.0, 2.0)
        return torch.cartesian_prod(axis, axis)
    raise ValueError(f"unknown toy mixture {name!r}; known: {', '.join(SIGMA)}")


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """n points (n, 2) of the uniform mixture ``name`` and the index (n,) of the mode each came from.

    All randomness comes from ``generator``: the same seed gives the same points."""
    if n < 0:
        raise ValueError(f"sample_mixture: n={n} must be >= 0")
    centres = mode_centres(name)
    modes = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[modes] + SIGMA[name] * torch.randn(n, 2, generator=generator), modes


def mode_metrics(samples: Tensor, name: str) -> dict[str, float]:
    """modes_covered, high_quality_fraction and reverse_kl of ``samples`` (N, 2) (see module doc)."""
    centres, sigma = mode_centres(name), SIGMA[name]
    if samples.numel() == 0 or samples.shape[-1] != 2:
        raise ValueError(f"mode_metrics needs a non-empty (N, 2) batch of points, got shape {tuple(samples.shape)}")
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


def log_density(name: str, x: Tensor) -> Tensor:
    """log p_data(x) of the uniform mixture ``name`` at points x (N, 2), in float64 (closed form)."""
    centres, sigma = mode_centres(name).double(), SIGMA[name]
    d2 = torch.cdist(x.reshape(-1, 2).double(), centres) ** 2
    log_comp = -d2 / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
    return torch.logsumexp(log_comp, 1) - math.log(len(centres))


def expectation(name: str, f, order: int = 20) -> Tensor:
    """E_{p_data}[f(x)] by tensor-product Gauss–Hermite quadrature of ``order`` points per axis and
    mode: E_{N(μ, σ²I)}[f] = (1/π) Σᵢⱼ wᵢwⱼ f(μ + √2σ(tᵢ, tⱼ)), exact for polynomials of degree
    < 2·order and spectrally accurate for smooth f. ``f`` maps (M, 2) float64 points to (M,) or (M, k)."""
    import numpy as np

    t, w = np.polynomial.hermite.hermgauss(order)
    t, w = torch.from_numpy(t), torch.from_numpy(w)
    nodes = torch.cartesian_prod(t, t) * (math.sqrt(2) * SIGMA[name])  # (order², 2)
    weights = torch.outer(w, w).flatten() / math.pi
    centres = mode_centres(name).double()
    pts = (centres[:, None, :] + nodes[None]).reshape(-1, 2)
    vals = f(pts)
    vals = vals.reshape(len(centres), len(weights), *vals.shape[1:])
    return torch.einsum("kn,kn...->...", weights.expand(len(centres), -1), vals) / len(centres)
