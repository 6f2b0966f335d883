"""The optimal discriminator and the value of the game (Goodfellow et al. 2014, Prop. 1 and Thm. 1).

For a fixed G, the discriminator maximising V(D, G) = E_data log D(x) + E_g log(1 − D(x)) is
D*(x) = p_data(x) / (p_data(x) + p_g(x)), and V(D*, G) = −log 4 + 2·JSD(p_data ‖ p_g). These
functions compute both sides on a common grid of masses (a discrete distribution, or densities
times the cell width) so tests can check a *trained* discriminator against them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def optimal_discriminator(p_data: Tensor, p_g: Tensor) -> Tensor:
    """D* = p_data / (p_data + p_g), pointwise (densities or masses)."""
    return p_data / (p_data + p_g)


def gaussian_optimal_logit(x: Tensor, data: tuple[float, float], gen: tuple[float, float]) -> Tensor:
    """logit D*(x) = log p_data(x) − log p_g(x) for 1-D Gaussians given as (mean, std).

    It is quadratic in x, so a logistic discriminator on (x, x²) can represent D* exactly."""
    dist = torch.distributions.Normal
    return dist(*data).log_prob(x) - dist(*gen).log_prob(x)


def game_value(logit: Tensor, p_data: Tensor, p_g: Tensor) -> Tensor:
    """V(D, G) = Σ p_data log D + Σ p_g log(1 − D) for D = σ(logit) and masses on a common grid.

    Taken from the logit (log σ(ℓ), log σ(−ℓ)) so it stays finite where D* rounds to 0 or 1."""
    return (p_data * F.logsigmoid(logit)).sum() + (p_g * F.logsigmoid(-logit)).sum()


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """KL(p ‖ q) of masses, with 0 log 0 = 0."""
    return torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p)).sum()


def jensen_shannon(p: Tensor, q: Tensor) -> Tensor:
    """JSD(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2 (nats)."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def value_at_optimum(p_data: Tensor, p_g: Tensor) -> Tensor:
    """C(G) = −log 4 + 2·JSD(p_data ‖ p_g) (Goodfellow et al. 2014, Thm. 1)."""
    return -math.log(4.0) + 2 * jensen_shannon(p_data, p_g)
