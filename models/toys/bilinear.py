"""The bilinear game min_x max_y f(x, y) = x·y: the simplest instability of GAN training.

With the simultaneous-gradient field F(z) = (∂f/∂x, −∂f/∂y) = (y, −x) and step η:

* simultaneous gradient descent–ascent z ← z − ηF(z) multiplies ‖z‖ by √(1 + η²) every step
  (diverges);
* alternating updates (x first, then y with the new x) preserve a quadratic form: bounded cycles
  for η < 2;
* extragradient z ← z − ηF(z − ηF(z)) contracts ‖z‖ by √(1 − η² + η⁴) per step;
* optimistic GD z ← z − 2ηF(z_t) + ηF(z_{t−1}) converges for small η (rate: the spectral radius
  of its 4×4 companion matrix, :func:`optimistic_rate`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)  # F(z) = A z


def field(z: Tensor) -> Tensor:
    return A @ z


def simultaneous(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        zs.append(zs[-1] - eta * field(zs[-1]))
    return torch.stack(zs)


def alternating(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        x, y = zs[-1]
        x = x - eta * y
        y = y + eta * x
        zs.append(torch.stack([x, y]))
    return torch.stack(zs)


def extragradient(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        half = zs[-1] - eta * field(zs[-1])
        zs.append(zs[-1] - eta * field(half))
    return torch.stack(zs)


def optimistic(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double(), z0.double() - eta * field(z0.double())]
    for _ in range(steps - 1):
        zs.append(zs[-1] - 2 * eta * field(zs[-1]) + eta * field(zs[-2]))
    return torch.stack(zs)


DYNAMICS = {"simultaneous": simultaneous, "alternating": alternating, "extragradient": extragradient,
            "optimistic": optimistic}


def simultaneous_rate(eta: float) -> float:
    return math.sqrt(1 + eta**2)


def extragradient_rate(eta: float) -> float:
    return math.sqrt(1 - eta**2 + eta**4)


def optimistic_rate(eta: float) -> float:
    """Spectral radius of z_{t+1} = (I − 2ηA) z_t + ηA z_{t−1}."""
    eye = torch.eye(2, dtype=torch.float64)
    companion = torch.cat([torch.cat([eye - 2 * eta * A, eta * A], 1),
                           torch.cat([eye, torch.zeros(2, 2, dtype=torch.float64)], 1)])
    return float(torch.linalg.eigvals(companion).abs().max())
