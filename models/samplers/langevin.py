"""Langevin dynamics and Metropolis-adjusted Langevin (MALA) for energies E(x) = -log p(x) + const.

Unadjusted Langevin: x ← x − s·∇ₓE(x) + σ·ε. With σ = √(2s) this is the Euler–Maruyama
discretisation of the Langevin diffusion whose stationary law is exp(−E) (bias O(s)); deep-EBM
practice decouples the two (Du & Mordatch 2019: large s, small σ), so both are parameters.
MALA (Roberts & Tweedie 1996) proposes with σ = √(2h) and accepts with the Metropolis–Hastings
ratio, which removes the discretisation bias. Its step h is its own (not the training step s):
per chain, adapted during burn-in towards acceptance 0.574 (Roberts & Rosenthal 1998's optimum)
by dual averaging (:mod:`models.samplers.adaptation`), then frozen; acceptance is counted per
chain after adaptation.

Chains start from uniform noise on the data range, or from rows of a pool of points (``starts``:
a replay buffer or data), picked with the block's generator so a seed reproduces them.
"""

from __future__ import annotations

import copy
from abc import abstractmethod

import torch
from torch import Tensor, nn

from models.registry import register
from models.samplers.adaptation import DualAveraging, accept_probability
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


def _per_chain(v: Tensor, x: Tensor) -> Tensor:
    """A (C,) per-chain value shaped to broadcast against chains x (C, ...)."""
    return v.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


@register("sampler", "langevin")
class LangevinSampler(Sampler):
    name = "langevin"

    def __init__(self, shape: tuple[int, ...], step_size: float, noise_std: float | None = None,
                 clamp: tuple[float, float] | None = None, init_range: tuple[float, float] = (-1.0, 1.0),
                 grad_clip: float | None = None, starts: Tensor | None = None, init_kind: str = "noise"):
        self.shape = tuple(shape)
        self.step_size = step_size
        self.noise_std = (2 * step_size) ** 0.5 if noise_std is None else noise_std
        self.clamp = clamp
        self.init_range = init_range
        self.grad_clip = grad_clip
        if starts is not None and len(starts) == 0:
            raise ValueError(f"{type(self).__name__}: starts (init={init_kind}) is empty")
        self.starts = starts
        self.init_kind = init_kind

    def uniform(self, n: int, generator: torch.Generator | None, device=None) -> Tensor:
        lo, hi = self.init_range
        return lo + (hi - lo) * torch.rand((n, *self.shape), generator=generator, device=device)

    def start_points(self, n: int, generator: torch.Generator | None, device=None) -> Tensor:
        """``n`` chain starts: uniform noise, or rows of ``starts`` drawn with ``generator``."""
        if self.starts is None:
            return self.uniform(n, generator, device)
        gen_device = generator.device if generator is not None else "cpu"
        idx = torch.randint(0, len(self.starts), (n,), generator=generator, device=gen_device).cpu()
        return self.starts[idx].to(device=device, dtype=torch.get_default_dtype())

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        x = self.start_points(n, generator, next(model.parameters()).device)
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


class MetropolisSampler(LangevinSampler):
    """A gradient-based proposal with a Metropolis–Hastings correction and a per-chain step size.

    Subclasses implement :meth:`propose`. The first ``adapt_steps`` transitions of a chain adapt its
    step by dual averaging towards ``target_accept``; later transitions use the frozen step and are
    the ones counted in ``accepted``/``proposed`` (so the reported acceptance is the kept chain's).
    ``extras`` carries the adaptation state (``log_step_bar``: the step each chain settled on).
    """

    target_accept: float = 0.574

    def __init__(self, shape: tuple[int, ...], step_size: float, init_range: tuple[float, float] = (-1.0, 1.0),
                 target_accept: float | None = None, adapt_steps: int = 0, starts: Tensor | None = None,
                 init_kind: str = "noise"):
        super().__init__(shape, step_size, None, None, init_range, None, starts, init_kind)
        if target_accept is not None:
            self.target_accept = target_accept
        if not 0 < self.target_accept < 1:
            raise ValueError(f"{self.name}: target_accept={self.target_accept} must lie in (0, 1)")
        self.adapt_steps = adapt_steps
        self.adapter = DualAveraging(self.target_accept)

    def adapt_during(self, steps: int) -> MetropolisSampler:
        out = copy.copy(self)
        out.adapt_steps = steps
        return out

    @abstractmethod
    def propose(self, model: nn.Module, x: Tensor, e: Tensor, g: Tensor, h: Tensor,
                generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(proposal, its energies, its gradients, log MH ratio) for per-chain steps ``h`` (C,)."""

    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        x, extras = state.visible, dict(state.extras)
        if extras.get("grad_of") is x:  # the gradient cached by the last call is still valid
            e, g = state.energy, extras["grad"]
        else:
            e, g = energy_and_grad(model, x)
        adapt = {k_: extras[k_] for k_ in ("log_step", "log_step_bar", "mu", "h_bar", "t") if k_ in extras}
        if not adapt:
            adapt = self.adapter.start(self.step_size, x.shape[0], x.device)
        accepted = state.accepted.clone() if state.accepted is not None else torch.zeros(x.shape[0], device=x.device)
        proposed = state.proposed
        for _ in range(k):
            adapting = bool(adapt["t"] < self.adapt_steps)
            h = (adapt["log_step"] if adapting else adapt["log_step_bar"]).exp()
            prop, e_p, g_p, log_alpha = self.propose(model, x, e, g, h, generator)
            a = accept_probability(log_alpha)
            take = torch.rand(x.shape[0], generator=generator, device=x.device) < a
            mask = _per_chain(take, x).bool()
            x, e, g = torch.where(mask, prop, x), torch.where(take, e_p, e), torch.where(mask, g_p, g)
            if adapting:
                adapt = self.adapter.update(adapt, a)
            else:
                accepted += take.float()
                proposed += 1
        return ChainState(layers=[x], energy=e, accepted=accepted, proposed=proposed,
                          extras={**adapt, "grad": g, "grad_of": x})

    def step_sizes(self, state: ChainState) -> Tensor | None:
        """The per-chain step each chain uses after adaptation (None before the first step)."""
        bar = state.extras.get("log_step_bar")
        return None if bar is None else bar.exp()


@register("sampler", "mala")
class MALASampler(MetropolisSampler):
    """Langevin proposals x' = x − h∇E + √(2h)ε accepted by Metropolis–Hastings (exact for exp(−E))."""

    name = "mala"
    target_accept = 0.574

    def propose(self, model: nn.Module, x: Tensor, e: Tensor, g: Tensor, h: Tensor,
                generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        hv = _per_chain(h, x)
        prop = x - hv * g + torch.sqrt(2 * hv) * _noise(x, generator)
        e_p, g_p = energy_and_grad(model, prop)
        log_alpha = (e - e_p).double() + self._log_q(x, prop, g_p, h) - self._log_q(prop, x, g, h)
        return prop, e_p, g_p, log_alpha

    @staticmethod
    def _log_q(to: Tensor, frm: Tensor, grad_frm: Tensor, h: Tensor) -> Tensor:
        """log q(to | frm) up to the −D/2·log(4πh) that cancels (same h both ways)."""
        diff = (to - frm + _per_chain(h, to) * grad_frm).flatten(1).double()
        return -(diff**2).sum(1) / (4 * h.double())

