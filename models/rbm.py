"""Bernoulli restricted Boltzmann machine (Smolensky 1986; Hinton 2002).

E(v, h) = -bᵀv - cᵀh - vᵀWh over v ∈ {0,1}^V, h ∈ {0,1}^H. Summing out h gives the free energy
F(v) = -bᵀv - Σ_j softplus(c_j + (vW)_j), and p(v) = exp(-F(v)) / Z.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.exact import check_enumerable


class RBM(nn.Module):
    """Bernoulli–Bernoulli RBM. ``forward(v)`` returns the per-example free energy F(v)."""

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def forward(self, v: Tensor) -> Tensor:
        return self.free_energy(v)

    def free_energy(self, v: Tensor) -> Tensor:
        v = v.reshape(v.shape[0], -1)
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(-1)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        v = v.reshape(v.shape[0], -1)
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def p_h(self, v: Tensor) -> Tensor:
        return torch.sigmoid(v.reshape(v.shape[0], -1) @ self.W + self.c)

    def p_v(self, h: Tensor) -> Tensor:
        return torch.sigmoid(h @ self.W.T + self.b)

    def gibbs_step(self, v: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One v → h → v sweep; returns (new v sample, the hidden sample it came from)."""
        h = torch.bernoulli(self.p_h(v), generator=generator)
        return torch.bernoulli(self.p_v(h), generator=generator), h

    def init_visible_bias(self, mean: Tensor, eps: float = 1e-3) -> None:
        """b = log p/(1-p) of the data marginals (Hinton's practical guide, §8)."""
        p = mean.reshape(-1).clamp(eps, 1 - eps)
        with torch.no_grad():
            self.b.copy_(torch.log(p / (1 - p)))

    def log_partition(self, chunk: int = 1 << 14) -> Tensor:
        """Exact log Z by enumerating the smaller layer (≤ 25 units), in float64 chunks."""
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        if self.n_hidden <= self.n_visible:
            # log Z = logsumexp_h [cᵀh + Σ_i softplus(b_i + (W h)_i)]
            return _enumerate_logsumexp(self.n_hidden, lambda h: h @ c + F.softplus(h @ W.T + b).sum(-1), chunk)
        return _enumerate_logsumexp(self.n_visible, lambda v: v @ b + F.softplus(v @ W + c).sum(-1), chunk)

    def log_likelihood(self, v: Tensor, log_z: Tensor | None = None) -> Tensor:
        """Per-example log p(v) = -F(v) - log Z (exact log Z unless given)."""
        log_z = self.log_partition() if log_z is None else log_z
        return -self.free_energy(v).double() - log_z

    @torch.no_grad()
    def pseudo_log_likelihood(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Stochastic PLL: V · log σ(F(ṽ) - F(v)) with one random bit flipped per example."""
        v = v.reshape(v.shape[0], -1)
        idx = torch.randint(0, v.shape[1], (v.shape[0],), generator=generator, device=v.device)
        flipped = v.clone()
        rows = torch.arange(v.shape[0], device=v.device)
        flipped[rows, idx] = 1 - flipped[rows, idx]
        return v.shape[1] * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))

    @torch.no_grad()
    def reconstruction_error(self, v: Tensor) -> Tensor:
        """Mean squared error of the mean-field reconstruction p(v | E[h | v])."""
        v = v.reshape(v.shape[0], -1)
        return ((self.p_v(self.p_h(v)) - v) ** 2).sum(-1).mean()


def all_binary_states(n: int, start: int = 0, stop: int | None = None, dtype=torch.float64) -> Tensor:
    """Rows start..stop of the 2^n × n table of binary states (bit i of the row index)."""
    stop = 2**n if stop is None else stop
    idx = torch.arange(start, stop, dtype=torch.int64)
    return ((idx[:, None] >> torch.arange(n)) & 1).to(dtype)


def _enumerate_logsumexp(n: int, log_weight, chunk: int) -> Tensor:
    check_enumerable(n)
    parts = [torch.logsumexp(log_weight(all_binary_states(n, s, min(s + chunk, 2**n))), 0)
             for s in range(0, 2**n, chunk)]
    return torch.logsumexp(torch.stack(parts), 0)



class GaussianRBM(RBM):
    """Gaussian–Bernoulli RBM with unit-variance visible units (for real-valued data):
    E(v, h) = ½‖v − b‖² − cᵀh − vᵀWh, so p(v | h) = N(b + Wh, I) and
    F(v) = ½‖v − b‖² − Σ_j softplus(c_j + (vW)_j)."""

    def free_energy(self, v: Tensor) -> Tensor:
        v = v.reshape(v.shape[0], -1)
        return 0.5 * ((v - self.b) ** 2).sum(-1) - F.softplus(v @ self.W + self.c).sum(-1)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        v = v.reshape(v.shape[0], -1)
        return 0.5 * ((v - self.b) ** 2).sum(-1) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def p_v(self, h: Tensor) -> Tensor:
        """The mean of p(v | h)."""
        return self.b + h @ self.W.T

    def gibbs_step(self, v: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        h = torch.bernoulli(self.p_h(v), generator=generator)
        mean = self.p_v(h)
        return mean + torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype), h

    def init_visible_bias(self, mean: Tensor, eps: float = 1e-3) -> None:
        with torch.no_grad():
            self.b.copy_(mean.reshape(-1))

    def log_partition(self, chunk: int = 1 << 14) -> Tensor:
        """log Z = (D/2) log 2π + logsumexp_h [cᵀh + ½‖b + Wh‖² − ½‖b‖²], enumerating h (≤ 25 units)."""
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        const = 0.5 * self.n_visible * math.log(2 * math.pi) - 0.5 * float((b**2).sum())
        return const + _enumerate_logsumexp(self.n_hidden, lambda h: h @ c + 0.5 * ((b + h @ W.T) ** 2).sum(-1),
                                            chunk)
