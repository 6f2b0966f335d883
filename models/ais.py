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
from models.bernoulli import bernoulli


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
    v = bernoulli(torch.sigmoid(b_a).expand(n_runs, -1), generator=generator)
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=W.device)
    db = b - b_a
    for k in range(1, len(betas)):
        lo, hi = float(betas[k - 1]), float(betas[k])
        a = v @ W + c
        log_w += (hi - lo) * (v @ db) + (F.softplus(hi * a) - F.softplus(lo * a)).sum(-1)
        if k == len(betas) - 1:
            break
        h = bernoulli(torch.sigmoid(hi * a), generator=generator)
        v = bernoulli(torch.sigmoid((1 - hi) * b_a + hi * (b + h @ W.T)), generator=generator)
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


# ----------------------------------------------------------------------------- reverse annealing
# RAISE (Burda, Grosse & Salakhutdinov, AISTATS 2015). The forward chain x_0 ~ p_0, x_k ~ T_k(· | x_{k-1})
# (k = 1..K, T_k leaving p_k = f_k / Z_k invariant) defines a normalised "annealing model" p_ann(x_K),
# which approaches the target as K grows. Running the chain backwards from a test point x_K with the
# reversals T̃_k as the proposal gives an unbiased estimate of p_ann(x_K) whose weight needs no Z_k:
#     log w = log f_K(x_K) − log Z_0 + Σ_{k=0}^{K−1} [log f_k(x_k) − log f_{k+1}(x_k)],
# so E[log w] ≤ log p_ann(x_K) (Jensen): a stochastic lower bound on the test log-likelihood, the
# conservative side of forward AIS (whose E[log Ẑ] ≤ log Z makes its likelihood optimistic).
# A v → h → v Gibbs sweep is reversible on the v-marginal, so for RBMs T̃_k = T_k.

def pick_rows(data: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` rows of ``data`` drawn uniformly with replacement from the run's own stream."""
    idx = torch.randint(0, data.shape[0], (n,), generator=generator)
    return data[idx]


def log_mean_exp_groups(log_w: Tensor, per: int) -> Tensor:
    """log-mean-exp over consecutive groups of ``per`` values: several chains per test point."""
    return torch.logsumexp(log_w.reshape(-1, per), 1) - math.log(per)


@torch.no_grad()
def rbm_reverse_log_ratio(rbm: RBM, base_bias: Tensor, betas: Tensor, v: Tensor,
                          generator: torch.Generator | None = None) -> Tensor:
    """RAISE from each row of ``v``: log w − log f_K(v) = −log Z_0 + Σ_k [log f_k(x_k) − log f_{k+1}(x_k)],
    the reverse chain's estimate of −log Z (float64, one value per row)."""
    W, b, c = rbm.W.double(), rbm.b.double(), rbm.c.double()
    b_a = base_bias.double().to(W.device)
    x = v.reshape(v.shape[0], -1).double().to(W.device)
    acc = torch.zeros(x.shape[0], dtype=torch.float64, device=W.device)
    db = b - b_a
    for k in range(len(betas) - 1, 0, -1):
        lo, hi = float(betas[k - 1]), float(betas[k])
        h = bernoulli(torch.sigmoid(hi * (x @ W + c)), generator=generator)  # T_k at β_k
        x = bernoulli(torch.sigmoid((1 - hi) * b_a + hi * (b + h @ W.T)), generator=generator)
        a = x @ W + c
        acc += (lo - hi) * (x @ db) + (F.softplus(lo * a) - F.softplus(hi * a)).sum(-1)
    return acc - base_log_z(base_bias, rbm.n_hidden)


def rbm_raise_run(model: RBM, n_runs: int, generator: torch.Generator | None, *, base: Tensor, betas: Tensor,
                  data: Tensor) -> Tensor:
    """Per-block run function (``run_fn(model, n, generator)``) of RAISE: each run starts at a test
    row drawn from ``data`` and returns log w − log p*(v) (the control variate of Burda et al. §5:
    the driver adds back the exact mean of log p*(v) = −F(v) over all test rows)."""
    generator = reverse_stream(generator)
    return rbm_reverse_log_ratio(model, base, betas, pick_rows(data, n_runs, generator), generator)


def reverse_stream(generator: torch.Generator | None) -> torch.Generator | None:
    """A stream of its own for the reverse runs, derived from the block's generator, so that forward
    and reverse runs of one evaluation (same seeds, same blocks) do not share random numbers."""
    if generator is None:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)) ^ 0x5A15E
    return torch.Generator(device=generator.device).manual_seed(seed)


@dataclass(frozen=True)
class ReverseResult:
    """Mean of the per-run values of a reverse estimator with its standard error."""

    mean: float
    se: float
    n_runs: int


def combine_reverse(values: Tensor) -> ReverseResult:
    """Merge per-run reverse values from any number of workers: a plain mean (each run is already
    a log-domain estimate for its own test point)."""
    values = values.double().reshape(-1)
    m = len(values)
    se = float(values.std(unbiased=True)) / math.sqrt(m) if m > 1 else math.inf
    return ReverseResult(float(values.mean()), se, m)
