"""Bernoulli draws for every binary unit in the project (Gibbs sweeps, AIS, PT, CD negatives).

``torch.bernoulli`` on the CPU costs about 10 ns an element here, four times a uniform draw and a
compare (5.3 ms against 1.4 ms for a 1000×500 tensor on one thread): in a CD-1 step of an RBM
784-500 at batch 1000 its two draws took 13.5 ms of a 55 ms step. ``u < p`` with u ~ U[0, 1) is a
Bernoulli(p) draw exactly, so the distribution is unchanged; only the random stream differs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A 0/1 tensor of p's dtype and device with P(1) = p elementwise."""
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return u.lt_(p.detach())  # in place: no boolean tensor, no conversion pass (same draws); never a graph
