"""Goodfellow et al. (2014), Prop. 1 and Thm. 1: for fixed G the optimal discriminator is
D*(x) = p_data(x) / (p_data(x) + p_g(x)), and the value of the game at D* is
C(G) = −log 4 + 2·JSD(p_data ‖ p_g)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def optimal_discriminator(p_data: Tensor, p_g: Tensor) -> Tensor:
    return p_data / (p_data + p_g)


def game_value(d: Tensor, p_data: Tensor, p_g: Tensor) -> Tensor:
    """V(D, G) = E_data log D + E_g log(1 − D) for densities (or masses) on a common grid."""
    return (p_data * torch.log(d)).sum() + (p_g * torch.log1p(-d)).sum()


def jensen_shannon(p: Tensor, q: Tensor) -> Tensor:
    m = 0.5 * (p + q)
    kl = lambda a, b: (a * (torch.log(a) - torch.log(b))).where(a > 0, torch.zeros_like(a)).sum()  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def value_at_optimum(p_data: Tensor, p_g: Tensor) -> Tensor:
    """−log 4 + 2·JSD(p_data ‖ p_g)."""
    return -math.log(4.0) + 2 * jensen_shannon(p_data, p_g)
