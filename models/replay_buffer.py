"""The sample replay buffer of Du & Mordatch (2019): persistent-chain starts for deep EBMs."""

from __future__ import annotations

import torch
from torch import Tensor


class ReplayBuffer:
    """A fixed-size ring of past negative samples, initialised with uniform noise.

    ``starts(n)`` returns chain starts: each is drawn from the buffer with probability
    ``reuse`` (0.95 in the paper) and is fresh uniform noise otherwise; ``push`` writes the
    chains' end points back over the oldest entries.
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], low: float, high: float, reuse: float = 0.95,
                 generator: torch.Generator | None = None):
        self.low, self.high, self.reuse = low, high, reuse
        self.data = self._uniform(capacity, shape, generator)
        self.pointer = 0
        self.pushed = 0  # entries written so far (the rest of the buffer is still its initial noise)

    def _uniform(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        return self.low + (self.high - self.low) * torch.rand((n, *shape), generator=generator)

    def starts(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(starts, from_buffer mask)."""
        idx = torch.randint(0, len(self.data), (n,), generator=generator)
        from_buffer = torch.rand(n, generator=generator) < self.reuse
        x = torch.where(from_buffer.view(-1, *([1] * (self.data.dim() - 1))), self.data[idx],
                        self._uniform(n, tuple(self.data.shape[1:]), generator))
        return x, from_buffer

    def push(self, x: Tensor) -> None:
        x = x.detach().cpu()
        n = min(len(x), len(self.data))
        idx = (self.pointer + torch.arange(n)) % len(self.data)
        self.data[idx] = x[:n]
        self.pointer = int((self.pointer + n) % len(self.data))
        self.pushed += n

    def filled(self) -> Tensor:
        """The entries written by training, newest first (all of it once it has wrapped); the
        initial noise when nothing was pushed yet."""
        return self.latest(min(self.pushed, len(self.data)) or len(self.data))

    def latest(self, n: int) -> Tensor:
        """The ``n`` most recently pushed entries, newest first (older than ``capacity`` wraps around)."""
        idx = (self.pointer - 1 - torch.arange(min(n, len(self.data)))) % len(self.data)
        return self.data[idx].clone()

    def state_dict(self) -> dict:
        return {"data": self.data, "pointer": self.pointer, "pushed": self.pushed}

    def load_state_dict(self, state: dict) -> None:
        self.data, self.pointer = state["data"], state["pointer"]
        self.pushed = state.get("pushed", len(self.data))  # older checkpoints: assume it is full
