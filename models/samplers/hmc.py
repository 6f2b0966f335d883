"""Hamiltonian Monte Carlo (Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian dynamics") for
energies E(x) = −log p(x) + const.

Each transition draws a momentum p ~ N(0, I), runs L leapfrog steps of size ε on
H(x, p) = E(x) + ½‖p‖² (half step in p, L alternating full steps, half step in p) and accepts the
end point with probability min(1, exp(H(x, p) − H(x', p'))). Leapfrog is volume-preserving and
reversible, so the chain leaves exp(−E) invariant exactly. Each transition scales ε by a factor
drawn uniformly from [1 − j, 1 + j] (Neal 2011, §5.4.2.2; j = 0.2): with a fixed trajectory
length the leapfrog energy error on near-Gaussian targets oscillates with the trajectory's phase,
so acceptance is not monotone in ε (measured on a 2-D Gaussian, L = 5: 0.78 at ε = 0.45, 0.98
at ε = 0.51) and adaptation cannot settle; jitter averages the phases out. ε is adapted during burn-in
by dual averaging towards acceptance 0.65 (Beskos et al. 2013's optimum for high dimensions is
0.651; Stan uses 0.8), then frozen — see :class:`models.samplers.langevin.MetropolisSampler`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.registry import register
from models.samplers.langevin import MetropolisSampler, _noise, _per_chain, energy_and_grad


@register("sampler", "hmc")
class HMCSampler(MetropolisSampler):
    name = "hmc"
    target_accept = 0.65

    def __init__(self, shape: tuple[int, ...], step_size: float, leapfrog_steps: int = 10,
                 init_range: tuple[float, float] = (-1.0, 1.0), target_accept: float | None = None,
                 adapt_steps: int = 0, starts: Tensor | None = None, init_kind: str = "noise",
                 jitter: float = 0.2):
        super().__init__(shape, step_size, init_range, target_accept, adapt_steps, starts, init_kind)
        if leapfrog_steps < 1:
            raise ValueError(f"hmc: leapfrog_steps={leapfrog_steps} must be at least 1")
        if not 0 <= jitter < 1:
            raise ValueError(f"hmc: jitter={jitter} must lie in [0, 1)")
        self.leapfrog_steps = leapfrog_steps
        self.jitter = jitter

    def propose(self, model: nn.Module, x: Tensor, e: Tensor, g: Tensor, h: Tensor,
                generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.jitter:
            u = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            h = h * (1 + self.jitter * (2 * u - 1))
        eps = _per_chain(h, x)
        p = _noise(x, generator)
        kinetic0 = 0.5 * (p.double() ** 2).flatten(1).sum(1)
        p = p - 0.5 * eps * g
        x_new, e_new, g_new = x, e, g
        for i in range(self.leapfrog_steps):
            x_new = x_new + eps * p
            e_new, g_new = energy_and_grad(model, x_new)
            if i < self.leapfrog_steps - 1:
                p = p - eps * g_new
        p = p - 0.5 * eps * g_new
        kinetic1 = 0.5 * (p.double() ** 2).flatten(1).sum(1)
        log_alpha = (e.double() + kinetic0) - (e_new.double() + kinetic1)
        return x_new, e_new, g_new, log_alpha
