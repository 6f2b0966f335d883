"""Annealed importance sampling for continuous EBMs p(x) = exp(−E(x))/Z (Neal 2001), with the
reverse run that sandwiches log Z when exact samples of p exist (Grosse et al. 2015, BDMC).

The path runs from a normalised diagonal Gaussian q₀ (fitted to the data: the data-marginal base)
to the EBM through f_β(x) = (1 − β) log q₀(x) − β E(x). A forward run draws x ~ q₀ and
accumulates log w = Σ_k (β_k − β_{k−1})(−E(x) − log q₀(x)) at the current x before one MALA
transition that leaves p_{β_k} invariant (Metropolis–Hastings corrected); E[w] = Z, so
log mean(w) is a stochastic lower bound on log Z (Jensen). A reverse run starts from exact draws
of p and anneals β from 1 to 0: E[w_rev] = 1/Z, so −log mean(w_rev) is a stochastic upper bound.

With a ``support`` (the quadrature box of a 2-D energy) the targets are restricted to it
(E = +∞ outside): runs then estimate the same Z_B as the grid, and a run whose base draw falls
outside gets weight 0, which keeps E[w] = Z_B. Without one the integral is over all of R^D, so
exp(−E) must be integrable there — an image EBM trained on [−1, 1]^D is not told what to do
outside, and its log Ẑ includes whatever mass it puts there.

The MALA step of each β is fixed before the runs by a pilot (Robbins–Monro on log h towards
acceptance 0.574 along the path, on separate chains): steps tuned on the runs' own history would
make the kernels depend on the past and the weights lose their unbiasedness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.samplers.adaptation import accept_probability
from models.samplers.langevin import MALASampler, _per_chain, energy_and_grad

Start = Callable[[int, torch.Generator | None], Tensor]
Support = Callable[[Tensor], Tensor]  # x (n, ...) -> (n,) bool: inside the target's support


@dataclass(frozen=True)
class GaussianBase:
    """q₀ = N(mean, diag(std²)) over data of shape ``shape``; log q₀ is normalised (log Z₀ = 0)."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor, min_std: float = 0.05) -> GaussianBase:
        """The per-dimension mean and std of data x (N, ...), the std floored at ``min_std``."""
        x = x.double()
        return cls(x.mean(0), x.std(0).clamp(min=min_std))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn((n, *self.mean.shape), generator=generator, dtype=torch.float64)
        return self.mean + self.std * z

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x.double() - self.mean) / self.std
        d = self.mean.numel()
        return -0.5 * (z**2).flatten(1).sum(1) - self.std.log().sum() - 0.5 * d * math.log(2 * math.pi)

    def grad_log_prob(self, x: Tensor) -> Tensor:
        return (-(x.double() - self.mean) / self.std**2).to(x.dtype)


def linear_betas(n: int) -> Tensor:
    return torch.linspace(0, 1, n, dtype=torch.float64)


class _Path:
    """U_β(x) = β E(x) − (1 − β) log q₀(x) and its gradient, keeping E and log q₀ for the weights."""

    def __init__(self, model: nn.Module, base: GaussianBase, support: Support | None = None):
        self.model, self.base, self.support = model, base, support
        self.dtype = next(model.parameters()).dtype

    def at(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        e, g = energy_and_grad(self.model, x)
        e = e.double()
        if self.support is not None:
            e = torch.where(self.support(x), e, torch.full_like(e, math.inf))
        return e, self.base.log_prob(x), g, self.base.grad_log_prob(x)

    @staticmethod
    def u(beta: float, e: Tensor, lq: Tensor) -> Tensor:
        return (beta * e if beta > 0 else 0.0) - (1 - beta) * lq


def _mala(path: _Path, beta: float, x: Tensor, cur: tuple, h: float, gen: torch.Generator | None):
    """One MALA transition targeting p_β ∝ exp(−U_β); returns (x, cached terms, acceptance probs)."""
    e, lq, g, glq = cur
    hv = torch.full((x.shape[0],), h, dtype=torch.float64)
    gu = beta * g - (1 - beta) * glq
    prop = x - _per_chain(hv, x) * gu + math.sqrt(2 * h) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    nxt = path.at(prop)
    gu_p = beta * nxt[2] - (1 - beta) * nxt[3]
    log_alpha = (path.u(beta, e, lq) - path.u(beta, nxt[0], nxt[1]) + MALASampler._log_q(x, prop, gu_p, hv)
                 - MALASampler._log_q(prop, x, gu, hv))
    a = accept_probability(log_alpha)
    take = torch.rand(x.shape[0], generator=gen, dtype=torch.float64) < a
    mask = _per_chain(take, x).bool()
    x = torch.where(mask, prop, x)
    cur = tuple(torch.where(mask if t.dim() > 1 else take, n_, c_) for t, n_, c_ in zip(cur, nxt, cur))
    return x, cur, a


@torch.no_grad()
def anneal(model: nn.Module, base: GaussianBase, x: Tensor, betas: Tensor, steps: Tensor,
           generator: torch.Generator | None = None, support: Support | None = None) -> Tensor:
    """Raw log-weights (float64, (n,)) of runs from states x along ``betas`` (increasing: forward
    from q₀ draws; decreasing: reverse from exact draws of p), one MALA transition of step
    ``steps[k]`` at each intermediate β_k."""
    path = _Path(model, base, support)
    x = x.to(path.dtype)
    cur = path.at(x)
    log_w = torch.zeros(x.shape[0], dtype=torch.float64)
    for k in range(1, len(betas)):
        lo, hi = float(betas[k - 1]), float(betas[k])
        log_w += (hi - lo) * (-cur[0] - cur[1])  # −∞ once a run has left the support: weight 0
        if k < len(betas) - 1:
            x, cur, _ = _mala(path, hi, x, cur, float(steps[k]), generator)
    return log_w


@torch.no_grad()
def pilot_steps(model: nn.Module, base: GaussianBase, betas: Tensor, n: int = 16, h0: float = 1e-2,
                target: float = 0.574, gain: float = 0.5, generator: torch.Generator | None = None,
                support: Support | None = None) -> Tensor:
    """MALA steps per β (len(betas),) from a pilot forward run of ``n`` chains: log h follows
    log h += gain·(mean acceptance − target) after every transition."""
    path = _Path(model, base, support)
    x = base.sample(n, generator).to(path.dtype)
    cur = path.at(x)
    log_h, out = math.log(h0), torch.empty(len(betas), dtype=torch.float64)
    for k in range(len(betas)):
        out[k] = math.exp(log_h)
        for _ in range(3 if k == 0 else 1):  # settle the first step a little more
            x, cur, a = _mala(path, float(betas[k]), x, cur, math.exp(log_h), generator)
            log_h += gain * (float(a.mean()) - target)
    return out


def ais_run(model: nn.Module, n: int, generator: torch.Generator | None, *, base: GaussianBase, betas: Tensor,
            steps: Tensor, start: Start | None = None, support: Support | None = None) -> Tensor:
    """The per-block run function for ``pipeline.sampling.parallel_ais``: forward runs from q₀, or
    reverse runs (``betas`` decreasing) from ``start(n, generator)`` draws of p."""
    x = start(n, generator) if start is not None else base.sample(n, generator)
    return anneal(model, base, x, betas, steps, generator, support)
