"""Block Gibbs sampling for models with conditionally independent layers (RBM; BM/DBM plug in
through the same two methods)."""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register
from models.samplers.base import ChainState, Sampler
from models.bernoulli import bernoulli


@register("sampler", "gibbs")
class GibbsSampler(Sampler):
    """v → h → v sweeps. ``k`` sweeps per ``step``; the state keeps the last hidden sample too.

    Works for any model with ``gibbs_step(v, generator) -> (v, h)``, ``free_energy(v)`` and
    ``n_visible``; energies in the state are free energies F(v) (the quantity traced for R-hat).
    """

    name = "gibbs"

    def __init__(self, init: str = "uniform", data_mean: torch.Tensor | None = None, output: str = "mean"):
        self.init_mode = init
        self.data_mean = data_mean
        self.output = output  # "mean": p(v | h) of the last sweep (smoother images); "sample": v itself

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        device = next(model.parameters()).device
        p = (self.data_mean.reshape(-1).to(device).expand(n, -1) if self.init_mode == "data-mean"
             and self.data_mean is not None else torch.full((n, model.n_visible), 0.5, device=device))
        v = bernoulli(p, generator=generator)
        return ChainState(layers=[v], energy=model.free_energy(v))

    @torch.no_grad()
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        v = state.visible
        h = None
        for _ in range(k):
            v, h = model.gibbs_step(v, generator)
        return ChainState(layers=[v, h], energy=model.free_energy(v))

    @torch.no_grad()
    def to_data(self, model: nn.Module, state: ChainState) -> torch.Tensor:
        """Mean-field visible probabilities given the last hidden sample (smoother images)."""
        if self.output == "mean" and len(state.layers) > 1 and state.layers[1] is not None:
            return model.p_v(state.layers[1])
        return state.visible
