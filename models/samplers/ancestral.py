"""Ancestral sampling for generators: each step draws fresh latents and maps them through G.

The chain state holds the latent z ~ N(0, I); ``to_data`` is G(z). Draws are independent, so
there is no Markov chain to diagnose (``has_chains = False``: the sampling stage skips R-hat/ESS
and says so); the "energy" ½‖z‖² only fills the shared trace format. All randomness comes from the passed generator, so a seeded block of chains gives the
same samples on any number of workers.
"""

from __future__ import annotations

import torch
from torch import nn

from models.gan.networks import sample_latent
from models.registry import register
from models.samplers.base import ChainState, Sampler


@register("sampler", "ancestral")
class AncestralSampler(Sampler):
    name = "ancestral"
    has_chains = False

    def __init__(self, latent_dim: int):
        self.latent_dim = latent_dim

    def _draw(self, model: nn.Module, n: int, generator: torch.Generator | None) -> ChainState:
        z = sample_latent(n, self.latent_dim, generator, device=next(model.parameters()).device)
        return ChainState(layers=[z], energy=0.5 * (z**2).sum(1))

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        return self._draw(model, n, generator)

    @torch.no_grad()
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        for _ in range(k):
            state = self._draw(model, state.num_chains, generator)
        return state

    @torch.no_grad()
    def to_data(self, model: nn.Module, state: ChainState) -> torch.Tensor:
        return model(state.layers[0])
