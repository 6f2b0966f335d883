"""Langevin dynamics and Metropolis-adjusted Langevin (MALA) for energies E(x) = -log p(x) + const.

Unadjusted Langevin: x ← x − s·∇ₓE(x) + σ·ε. With σ = √(2s) this is the Euler–Maruyama
discretisation of the Langevin diffusion whose stationary law is exp(−E) (bias O(s)); deep-EBM
practice decouples the two (Du & Mordatch 2019: large s, small σ), so both are parameters.
MALA (Roberts & Tweedie 1996) proposes with σ = √(2s) and accepts with the Metropolis–Hastings
ratio, which removes the discretisation bias; its acceptance rate is reported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.registry import register
from models.samplers.base import ChainState, Sampler


def energy_and_grad(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-chain energies and ∇ₓE (parameters' gradients are neither needed nor accumulated)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = model(x)
        (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), g.detach()


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@register("sampler", "langevin")
class LangevinSampler(Sampler):
    name = "langevin"

    def __init__(self, shape: tuple[int, ...], step_size: float, noise_std: float | None = None,
                 clamp: tuple[float, float] | None = None, init_range: tuple[float, float] = (-1.0, 1.0),
                 grad_clip: float | None = None):
        self.shape = tuple(shape)
        self.step_size = step_size
        self.noise_std = (2 * step_size) ** 0.5 if noise_std is None else noise_std
        self.clamp = clamp
        self.init_range = init_range
        self.grad_clip = grad_clip

    def uniform(self, n: int, generator: torch.Generator | None, device=None) -> Tensor:
        lo, hi = self.init_range
        return lo + (hi - lo) * torch.rand((n, *self.shape), generator=generator, device=device)

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        x = self.uniform(n, generator, next(model.parameters()).device)
        return ChainState(layers=[x], energy=model(x).detach())

    def from_points(self, model: nn.Module, x: Tensor) -> ChainState:
        with torch.no_grad():
            return ChainState(layers=[x], energy=model(x).detach())

    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        x = state.visible
        e = state.energy
        for _ in range(k):
            e, g = energy_and_grad(model, x)
            if self.grad_clip is not None:
                g = g.clamp(-self.grad_clip, self.grad_clip)
            x = x - self.step_size * g + self.noise_std * _noise(x, generator)
            if self.clamp is not None:
                x = x.clamp(*self.clamp)
        with torch.no_grad():
            e = model(x).detach()
        return ChainState(layers=[x.detach()], energy=e)


@register("sampler", "mala")
class MALASampler(LangevinSampler):
    """Langevin proposals with σ = √(2s), accepted by Metropolis–Hastings (exact for exp(−E))."""

    name = "mala"

    def __init__(self, shape: tuple[int, ...], step_size: float, init_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__(shape, step_size, None, None, init_range)

    def _log_q(self, to: Tensor, frm: Tensor, grad_frm: Tensor) -> Tensor:
        diff = (to - frm + self.step_size * grad_frm).flatten(1)
        return -(diff**2).sum(1) / (4 * self.step_size)

    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        x = state.visible
        e, g = energy_and_grad(model, x)
        accepted = state.accepted.clone() if state.accepted is not None else torch.zeros(x.shape[0], device=x.device)
        for _ in range(k):
            prop = x - self.step_size * g + self.noise_std * _noise(x, generator)
            e_p, g_p = energy_and_grad(model, prop)
            log_alpha = (e - e_p) + self._log_q(x, prop, g_p) - self._log_q(prop, x, g)
            u = torch.rand(x.shape[0], generator=generator, device=x.device)
            take = torch.log(u) < log_alpha
            mask = take.view(-1, *([1] * (x.dim() - 1)))
            x, e = torch.where(mask, prop, x), torch.where(take, e_p, e)
            g = torch.where(mask, g_p, g)
            accepted += take.float()
        return ChainState(layers=[x], energy=e, accepted=accepted, proposed=state.proposed + k)
