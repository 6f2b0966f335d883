"""Samplers of the deep Boltzmann-family models on the shared interface."""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register
from models.samplers.base import ChainState, Sampler
from models.bernoulli import bernoulli


@register("sampler", "dbn-ancestral")
class DBNSampler(Sampler):
    """Gibbs chains in the DBN's top RBM; ``to_data`` adds the top-down pass to p(v | h1)."""

    name = "dbn-ancestral"

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        top = model.top
        x = bernoulli(torch.full((n, top.n_visible), 0.5, device=top.W.device), generator=generator)
        return ChainState(layers=[x], energy=top.free_energy(x))

    @torch.no_grad()
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        x = state.visible
        for _ in range(k):
            x, _ = model.top.gibbs_step(x, generator)
        # the top-down pass in to_data draws its layers from a seed taken from the block's stream
        # here, so the sample does not depend on the global RNG or on the number of workers
        seed = torch.randint(0, 2**62, (1,), generator=generator, device=x.device)
        return ChainState(layers=[x], energy=model.top.free_energy(x), extras={"down_seed": seed})

    @torch.no_grad()
    def to_data(self, model: nn.Module, state: ChainState) -> torch.Tensor:
        """Binary draws v ~ p(v | h1) after the top-down pass (scored like the binary test images)."""
        x = state.visible
        seed = state.extras.get("down_seed")
        gen = torch.Generator(device=x.device).manual_seed(int(seed) if seed is not None else 0)
        return bernoulli(model.down(x, gen), generator=gen)


@register("sampler", "dbm-gibbs")
class DBMGibbsSampler(Sampler):
    """Alternating odd/even block Gibbs over all layers; traces the joint energy."""

    name = "dbm-gibbs"

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        device = model.weights[0].device
        layers = [bernoulli(torch.full((n, s), 0.5, device=device), generator=generator) for s in model.sizes]
        return ChainState(layers=layers, energy=model.energy(layers))

    @torch.no_grad()
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        layers = state.layers
        for _ in range(k):
            layers = model.gibbs_step(layers, generator)
        return ChainState(layers=layers, energy=model.energy(layers))

    @torch.no_grad()
    def to_data(self, model: nn.Module, state: ChainState) -> torch.Tensor:
        """The binary visible layer of the chains (scored like the binary test images)."""
        return state.layers[0]
