"""Target energies with known moments, shared by the MCMC sampler tests."""

from __future__ import annotations

import torch
from torch import nn

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
P = torch.linalg.inv(SIGMA)


class Gaussian(nn.Module):
    """E(x) = ½(x − μ)ᵀ Σ⁻¹ (x − μ) in 2-D (a dummy parameter gives the samplers a device)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        d = x - MU
        return 0.5 * ((d @ P) * d).sum(1)


class DoubleWell(nn.Module):
    """E(x) = −log(½N(x; −2, 0.5²) + ½N(x; 2, 0.5²)) in 1-D: E[x²] = 4.25 exactly."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        x = x[:, 0]
        return -torch.logsumexp(torch.stack([-(x + 2) ** 2 / 0.5, -(x - 2) ** 2 / 0.5]), 0)
