"""Fully visible Boltzmann machine (Ackley, Hinton & Sejnowski 1985).

Convention: units y ∈ {0,1}ⁿ, E(y) = −(½ yᵀWy + bᵀy) / T with W symmetric and zero on the
diagonal (enforced by the parametrisation), p(y) = exp(−E(y)) / Z. The maximum-likelihood
gradient of the mean log-likelihood is ⟨yyᵀ⟩_data − ⟨yyᵀ⟩_model (off-diagonal, divided by T):
with exact log Z the loss ``mean E(data) + log Z`` has exactly that gradient; for larger n the
model expectation comes from persistent Gibbs chains (the shared energy-based recipe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.rbm import _enumerate_logsumexp
from models.bernoulli import bernoulli


class FullyVisibleBM(nn.Module):
    """``forward(y)`` returns per-example energies (there are no hidden units to sum out)."""

    def __init__(self, n: int, temperature: float = 1.0, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.temperature = temperature
        self.W_raw = nn.Parameter(torch.randn(n, n, generator=generator) * init_std)
        self.b = nn.Parameter(torch.zeros(n))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n))

    @property
    def n_visible(self) -> int:
        return self.b.shape[0]

    @property
    def W(self) -> Tensor:
        """Symmetric with zero diagonal: ½(R + Rᵀ) ⊙ (1 − I)."""
        return 0.5 * (self.W_raw + self.W_raw.T) * self.off_diagonal

    def energy(self, y: Tensor) -> Tensor:
        y = y.reshape(y.shape[0], -1).to(self.b.dtype)
        return -(0.5 * ((y @ self.W) * y).sum(-1) + y @ self.b) / self.temperature

    forward = energy
    free_energy = energy  # fully visible: the energy is the free energy

    def log_partition(self, chunk: int = 1 << 14) -> Tensor:
        """Exact log Z over all 2ⁿ states (n ≤ 25), chunked, log-sum-exp."""
        return _enumerate_logsumexp(self.n_visible, lambda y: -self.energy(y.to(self.b.dtype)), chunk)

    def log_likelihood(self, y: Tensor, log_z: Tensor | None = None) -> Tensor:
        log_z = self.log_partition() if log_z is None else log_z
        return -self.energy(y) - log_z

    @torch.no_grad()
    def gibbs_step(self, y: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, None]:
        """One sequential sweep over the sites: y_i ~ Bernoulli(σ((W_i·y + b_i) / T))."""
        y = y.clone()
        W = self.W
        for i in range(self.n_visible):
            p = torch.sigmoid((y @ W[:, i] + self.b[i]) / self.temperature)
            y[:, i] = bernoulli(p, generator=generator)
        return y, None

    # ------------------------------------------------------------------ annealing (n > 20 units)
    # Path from independent units with biases b_A (the data's base rates, log Z_A = Σ softplus(b_A)) to
    # the BM: log f_β(y) = −β E(y) + (1 − β) b_Aᵀy. Transitions are sequential Gibbs sweeps of p_β; a
    # sweep in site order 0..n−1 has as its reversal the sweep in order n−1..0, which RAISE uses.
    def tempered_log_f(self, y: Tensor, beta: float, base_bias: Tensor) -> Tensor:
        return -beta * self.energy(y) + (1 - beta) * (y @ base_bias.to(y.dtype))

    @torch.no_grad()
    def tempered_sweep(self, y: Tensor, beta: float, base_bias: Tensor, generator: torch.Generator | None,
                       reverse: bool = False) -> Tensor:
        """One sequential Gibbs sweep of p_β (sites in reverse order when ``reverse``)."""
        y = y.clone()
        W, b, b_a = self.W.to(y.dtype), self.b.to(y.dtype), base_bias.to(y.dtype)
        for i in (range(self.n_visible - 1, -1, -1) if reverse else range(self.n_visible)):
            logit = beta * (y @ W[:, i] + b[i]) / self.temperature + (1 - beta) * b_a[i]
            y[:, i] = bernoulli(torch.sigmoid(logit), generator=generator)
        return y

    @staticmethod
    def base_log_z(base_bias: Tensor) -> float:
        return float(F.softplus(base_bias.double()).sum())

    @torch.no_grad()
    def ais_log_weights(self, base_bias: Tensor, betas: Tensor, n_runs: int,
                        generator: torch.Generator | None = None) -> Tensor:
        """Forward AIS log-weights (float64): E[exp(log w)] = Z / Z_A (Neal 2001)."""
        b_a = base_bias.double()
        y = bernoulli(torch.sigmoid(b_a).expand(n_runs, -1), generator=generator)
        log_w = torch.zeros(n_runs, dtype=torch.float64)
        for k in range(1, len(betas)):
            lo, hi = float(betas[k - 1]), float(betas[k])
            log_w += self.tempered_log_f(y, hi, b_a) - self.tempered_log_f(y, lo, b_a)
            if k < len(betas) - 1:
                y = self.tempered_sweep(y, hi, b_a, generator)
        return log_w

    @torch.no_grad()
    def reverse_log_ratio(self, y: Tensor, base_bias: Tensor, betas: Tensor,
                          generator: torch.Generator | None = None) -> Tensor:
        """RAISE (Burda et al. 2015) from rows y: log w − log f(y), the reverse estimate of −log Z."""
        b_a = base_bias.double()
        y = y.reshape(y.shape[0], -1).double()
        acc = torch.full((y.shape[0],), -self.base_log_z(b_a), dtype=torch.float64)
        for k in range(len(betas) - 1, 0, -1):
            lo, hi = float(betas[k - 1]), float(betas[k])
            y = self.tempered_sweep(y, hi, b_a, generator, reverse=True)
            acc += self.tempered_log_f(y, lo, b_a) - self.tempered_log_f(y, hi, b_a)
        return acc

    def exact_gradient(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """∂ mean log p / ∂(W, b) = (⟨yyᵀ⟩_data − ⟨yyᵀ⟩_model, ⟨y⟩_data − ⟨y⟩_model) / T, by enumeration."""
        from models.rbm import all_binary_states

        states = all_binary_states(self.n_visible, dtype=self.b.dtype)
        with torch.no_grad():
            p = torch.softmax(-self.energy(states), 0)
        y = y.reshape(y.shape[0], -1).to(self.b.dtype)
        data_yy, model_yy = y.T @ y / len(y), states.T @ (states * p[:, None])
        grad_w = (data_yy - model_yy) * self.off_diagonal / self.temperature
        grad_b = (y.mean(0) - p @ states) / self.temperature
        return grad_w, grad_b
