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
from models.bernoulli import bernoulli


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
        h = bernoulli(self.p_h(v), generator=generator)
        return bernoulli(self.p_v(h), generator=generator), h

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


class CenteredRBM(RBM):
    """Centred Bernoulli RBM (Melchior, Fischer & Wiskott, JMLR 2016):
    E(v, h) = −(v − μ)ᵀb − cᵀ(h − λ) − (v − μ)ᵀW(h − λ), offsets μ (visible) and λ (hidden) buffers.

    It is the plain RBM with W, b − Wλ, c − Wᵀμ up to the constant κ = μᵀb + cᵀλ − μᵀWλ in the energy
    (so log Z_centred = log Z_plain − κ and p(v) is unchanged); what changes is the gradient of the
    free-energy loss: ⟨(v − μ)(h − λ)ᵀ⟩_data − ⟨(v − μ)(h − λ)ᵀ⟩_model for W, which the paper shows
    is better conditioned. :meth:`move_offsets` changes μ, λ without changing the distribution.
    """

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__(n_visible, n_hidden, init_std, generator)
        self.register_buffer("mu", torch.zeros(n_visible))
        self.register_buffer("lam", torch.zeros(n_hidden))

    def free_energy(self, v: Tensor) -> Tensor:
        x = v.reshape(v.shape[0], -1) - self.mu
        return -(x @ self.b) + self.c @ self.lam + (x @ self.W) @ self.lam - F.softplus(x @ self.W + self.c).sum(-1)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        x, y = v.reshape(v.shape[0], -1) - self.mu, h - self.lam
        return -(x @ self.b) - (y @ self.c) - ((x @ self.W) * y).sum(-1)

    def p_h(self, v: Tensor) -> Tensor:
        return torch.sigmoid((v.reshape(v.shape[0], -1) - self.mu) @ self.W + self.c)

    def p_v(self, h: Tensor) -> Tensor:
        return torch.sigmoid((h - self.lam) @ self.W.T + self.b)

    def energy_offset(self) -> Tensor:
        """κ with E_centred = E_plain + κ."""
        return self.mu @ self.b + self.c @ self.lam - self.mu @ self.W @ self.lam

    @torch.no_grad()
    def uncentred(self) -> RBM:
        """The plain RBM with the same p(v, h) (what AIS, RAISE and PT work with)."""
        plain = RBM(self.n_visible, self.n_hidden).to(self.W.device, self.W.dtype)
        plain.W.copy_(self.W)
        plain.b.copy_(self.b - self.W @ self.lam)
        plain.c.copy_(self.c - self.W.T @ self.mu)
        return plain.requires_grad_(False)

    def log_partition(self, chunk: int = 1 << 14) -> Tensor:
        return self.uncentred().log_partition(chunk) - self.energy_offset().double()

    @torch.no_grad()
    def move_offsets(self, mu: Tensor | None = None, lam: Tensor | None = None) -> None:
        """New offsets with b, c re-parameterised so that b − Wλ and c − Wᵀμ (the distribution) stay."""
        if lam is not None:
            self.b.add_(self.W @ (lam - self.lam))
            self.lam.copy_(lam)
        if mu is not None:
            self.c.add_(self.W.T @ (mu - self.mu))
            self.mu.copy_(mu)


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
        h = bernoulli(self.p_h(v), generator=generator)
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
