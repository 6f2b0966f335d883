"""The one sampler interface shared by every model with a Markov chain or an ancestral pass.

A sampler is separate from the model (as diffusers separates schedulers from models): it holds
only its own hyper-parameters, takes the model and a batch of chain states, and advances them
``k`` steps. Gibbs (BM/RBM/DBM), Langevin and MALA (deep EBMs) and ancestral passes (DBN, GAN
generator) all implement it, so the parallel sampling runner, AIS and the diagnostics are written
once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn


@dataclass
class ChainState:
    """A batch of C chains.

    ``layers[0]`` is the visible layer (data space for images: (C, *shape)); further entries are
    hidden layers or latent codes. ``energy`` is each chain's energy (or free energy) at the
    current state, shape (C,), used for traces and R-hat. ``accepted`` counts accepted proposals
    per chain for Metropolis-adjusted samplers (None otherwise); ``proposed`` counts proposals.
    """

    layers: list[Tensor]
    energy: Tensor
    accepted: Tensor | None = None
    proposed: int = 0
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def visible(self) -> Tensor:
        return self.layers[0]

    @property
    def num_chains(self) -> int:
        return self.layers[0].shape[0]

    def acceptance_rate(self) -> Tensor | None:
        if self.accepted is None or self.proposed == 0:
            return None
        return self.accepted.float() / self.proposed

    def detach(self) -> ChainState:
        return replace(self, layers=[t.detach() for t in self.layers], energy=self.energy.detach())


class Sampler(ABC):
    """Advances chains of a model. Implementations must draw randomness only from ``generator``
    so that a seeded generator per block of chains reproduces the sample on any number of workers."""

    name: str = "sampler"
    # False for samplers whose draws are independent (ancestral passes): there is no chain to
    # diagnose, so the sampling stage skips R-hat/ESS and says so.
    has_chains: bool = True

    @abstractmethod
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        """Fresh chains (from the model's base distribution or noise)."""

    @abstractmethod
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        """Advance every chain ``k`` transitions; return the new state with energies."""

    def to_data(self, model: nn.Module, state: ChainState) -> Tensor:
        """Samples in data space (e.g. probabilities of the visible units, a DBN's top-down pass)."""
        return state.visible
