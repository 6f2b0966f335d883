"""Fully visible Boltzmann machine (Ackley, Hinton & Sejnowski 1985).

Convention: units y ∈ {0,1}ⁿ, E(y) = −(½ yᵀWy + bᵀy) / T with W symmetric and zero on the
diagonal (enforced by the parametrisation), p(y) = exp(−E(y)) / Z. The maximum-likelihood
gradient of the mean log-likelihood is ⟨yyᵀ⟩_data − ⟨yyᵀ⟩_model (off-diagonal, divided by T):
with exact log Z the loss ``mean E(data) + log Z`` has exactly that gradient; for larger n the
model expectation comes from persistent Gibbs chains (the shared energy-based recipe).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.rbm import _enumerate_logsumexp


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
            y[:, i] = torch.bernoulli(p, generator=generator)
        return y, None

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
