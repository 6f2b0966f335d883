"""Annealed importance sampling for RBM partition functions (Neal 2001; Salakhutdinov & Murray 2008).

The path runs from a base-rate RBM A (no weights, visible biases from the data marginals, whose
log Z is closed form) to the target RBM B through intermediate distributions over v:

    f_β(v) = ((1-β) b_A + β b_B)ᵀ v + Σ_j softplus(β (c_j + (vW)_j)),

f_0 has log Z_0 = Σ_i softplus(b_A,i) + H log 2 and f_1 = -F_B. Each run accumulates
log w = Σ_k f_{β_k}(v_{k-1}) - f_{β_{k-1}}(v_{k-1}) in float64 with one Gibbs transition that
leaves p_{β_k} invariant; log Ẑ_B = log Z_0 + log mean(w). Runs can be split across workers:
only raw log-weights are returned, and :func:`combine_log_weights` merges them with a single
log-sum-exp (averaging per-worker log Ẑ would be biased by Jensen's inequality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.rbm import RBM


def schedule(spec: str = "salakhutdinov2008") -> Tensor:
    """β grid: S&M 2008's 14,500 points (0→0.5 by 1e-3, 0.5→0.9 by 1e-4, 0.9→1 by 1e-5) or ``linear:N``."""
    if spec == "salakhutdinov2008":
        parts = [torch.arange(0, 500) * 1e-3, 0.5 + torch.arange(0, 4000) * 1e-4,
                 0.9 + torch.arange(0, 10000) * 1e-5, torch.ones(1)]
        return torch.cat([p.double() for p in parts])
    kind, _, n = spec.partition(":")
    if kind == "linear" and n.isdigit() and int(n) >= 2:
        return torch.linspace(0, 1, int(n), dtype=torch.float64)
    raise ValueError(f"AIS schedule {spec!r} is not 'salakhutdinov2008' or 'linear:N' (N >= 2)")


def base_rate_bias(data_mean: Tensor, eps: float = 1e-3) -> Tensor:
    """Visible biases of the base-rate model: log p/(1-p) of the data marginals."""
    p = data_mean.reshape(-1).double().clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


@torch.no_grad()
def ais_log_weights(rbm: RBM, base_bias: Tensor, betas: Tensor, n_runs: int,
                    generator: torch.Generator | None = None) -> Tensor:
    """Raw log importance weights of ``n_runs`` independent AIS runs (float64, shape (n_runs,))."""
    W, b, c = rbm.W.double(), rbm.b.double(), rbm.c.double()
    b_a = base_bias.double().to(W.device)
    v = torch.bernoulli(torch.sigmoid(b_a).expand(n_runs, -1), generator=generator)
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=W.device)
    db = b - b_a
    for k in range(1, len(betas)):
        lo, hi = float(betas[k - 1]), float(betas[k])
        a = v @ W + c
        log_w += (hi - lo) * (v @ db) + (F.softplus(hi * a) - F.softplus(lo * a)).sum(-1)
        if k == len(betas) - 1:
            break
        h = torch.bernoulli(torch.sigmoid(hi * a), generator=generator)
        v = torch.bernoulli(torch.sigmoid((1 - hi) * b_a + hi * (b + h @ W.T)), generator=generator)
    return log_w


def base_log_z(base_bias: Tensor, n_hidden: int) -> float:
    return float(F.softplus(base_bias.double()).sum()) + n_hidden * math.log(2.0)


@dataclass(frozen=True)
class AISResult:
    """log Ẑ with the S&M bounds log(Ẑ ± 3σ̂), σ̂ the standard error of the mean weight."""

    log_z: float
    log_z_lower: float
    log_z_upper: float
    n_runs: int
    ess: float  # effective sample size of the importance weights

    def as_dict(self) -> dict[str, float]:
        return {"log_z": self.log_z, "log_z_lower": self.log_z_lower, "log_z_upper": self.log_z_upper,
                "ais_runs": self.n_runs, "ais_weight_ess": self.ess}


def combine_log_weights(log_w: Tensor, log_z0: float) -> AISResult:
    """Merge raw log-weights from any number of workers into one estimate (single log-sum-exp)."""
    log_w = log_w.double().reshape(-1)
    m = len(log_w)
    top = log_w.max()
    w = torch.exp(log_w - top)  # weights scaled by exp(-top)
    mean = w.mean()
    se = w.std(unbiased=True) / math.sqrt(m) if m > 1 else torch.tensor(0.0, dtype=torch.float64)
    log_mean = float(torch.log(mean) + top) + log_z0
    lower = float(torch.log(mean - 3 * se) + top) + log_z0 if mean > 3 * se else -math.inf
    upper = float(torch.log(mean + 3 * se) + top) + log_z0
    ess = float(w.sum() ** 2 / (w**2).sum())
    return AISResult(log_mean, lower, upper, m, ess)


def rbm_ais_run(model: RBM, n_runs: int, generator: torch.Generator | None, *, base: Tensor,
                betas: Tensor) -> Tensor:
    """The per-block run function for the parallel runner: ``run_fn(model, n, generator)``."""
    return ais_log_weights(model, base, betas, n_runs, generator)
