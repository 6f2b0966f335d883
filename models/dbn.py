"""Deep belief net (Hinton, Osindero & Teh 2006): a stack of RBMs trained greedily, bottom up.

The generative model is an RBM over the top two layers with directed sigmoid layers below it:
sampling runs Gibbs in the top RBM and then one top-down pass. The variational lower bound of
Salakhutdinov & Murray (2008) on log p(v) uses the recognition weights Q(h_l | h_{l-1}) of the
stack: log p(v) ≥ E_Q[log p(v | h1) + log p(h1)] + H(Q(h1 | v)), applied recursively, with the
top RBM's log p(h) = −F(h) − log Z (exact or AIS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.rbm import RBM, all_binary_states
from models.bernoulli import bernoulli


@dataclass
class LayerInput:
    """Input of a greedy step: the data as seen by RBM ``index`` (its visible layer)."""

    index: int
    x: Tensor


class DBN(nn.Module):
    """``forward(LayerInput(l, x))`` returns the free energy of RBM l at x."""

    def __init__(self, sizes: list[int], init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 3:
            raise ValueError(f"a DBN needs a visible and at least two hidden layers, got sizes {sizes}")
        self.sizes = list(sizes)
        self.rbms = nn.ModuleList([RBM(a, b, init_std, generator) for a, b in zip(sizes[:-1], sizes[1:])])

    @property
    def n_visible(self) -> int:
        return self.sizes[0]

    @property
    def top(self) -> RBM:
        return self.rbms[-1]

    def forward(self, inp: LayerInput) -> Tensor:
        return self.rbms[inp.index].free_energy(inp.x)

    @torch.no_grad()
    def up(self, v: Tensor, to: int, generator: torch.Generator | None = None) -> Tensor:
        """Binary states of layer ``to`` (0 = v) from sampled recognition passes through RBMs below it."""
        x = v
        for rbm in self.rbms[:to]:
            x = bernoulli(rbm.p_h(x), generator=generator)
        return x

    @torch.no_grad()
    def down(self, top_visible: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Top-down generative pass from the top RBM's visible layer; returns p(v | h1)."""
        h = top_visible
        for rbm in list(self.rbms)[-2:0:-1]:
            h = bernoulli(rbm.p_v(h), generator=generator)
        return self.rbms[0].p_v(h)

    @torch.no_grad()
    def log_p_lower(self, x: Tensor, level: int, top_log_z: float, samples: int = 10,
                    generator: torch.Generator | None = None, exact: bool = False) -> Tensor:
        """Per-example lower bound on log p(x) of the sub-DBN from RBM ``level`` up.

        E_Q over Q(h | x) = RBM_level's p(h | x): by enumeration (``exact``, small layers) or with
        ``samples`` Monte Carlo draws (an unbiased estimate of the bound).
        """
        rbm = self.rbms[level]
        x = x.reshape(x.shape[0], -1).double()
        if level == len(self.rbms) - 1:
            return -_free_energy64(rbm, x) - top_log_z
        q = torch.sigmoid(x @ rbm.W.double() + rbm.c.double())
        entropy = -(q * torch.log(q.clamp_min(1e-12)) + (1 - q) * torch.log((1 - q).clamp_min(1e-12))).sum(-1)
        if exact:
            hs = all_binary_states(rbm.n_hidden, dtype=torch.float64)
            log_q = (hs @ torch.log(q.clamp_min(1e-300)).T + (1 - hs) @ torch.log((1 - q).clamp_min(1e-300)).T)
            weights = torch.exp(log_q)  # (states, examples)
            terms = torch.stack([self._log_cond(x, h.expand(len(x), -1), rbm) for h in hs])
            above = torch.stack([self.log_p_lower(h.expand(1, -1), level + 1, top_log_z, exact=True)[0]
                                 for h in hs])[:, None]
            return ((terms + above) * weights).sum(0) + entropy
        total = torch.zeros(len(x), dtype=torch.float64)
        for _ in range(samples):
            h = bernoulli(q, generator=generator)
            total += self._log_cond(x, h, rbm) + self.log_p_lower(h, level + 1, top_log_z, samples, generator)
        return total / samples + entropy

    @staticmethod
    def _log_cond(x: Tensor, h: Tensor, rbm: RBM) -> Tensor:
        """log p(x | h) of the directed layer = Σ_i x_i a_i − softplus(a_i), a = b + W h."""
        a = rbm.b.double() + h @ rbm.W.double().T
        return (x * a - F.softplus(a)).sum(-1)

    @torch.no_grad()
    def exact_log_p(self, v: Tensor, top_log_z: float) -> Tensor:
        """Exact log p(v) of a 2-hidden-layer DBN by enumerating h1 (tiny models only)."""
        if len(self.rbms) != 2:
            raise ValueError("exact_log_p is implemented for two hidden layers")
        rbm1, top = self.rbms[0], self.rbms[1]
        hs = all_binary_states(rbm1.n_hidden, dtype=torch.float64)
        log_prior = -_free_energy64(top, hs) - top_log_z
        v = v.reshape(v.shape[0], -1).double()
        cond = torch.stack([self._log_cond(v, h.expand(len(v), -1), rbm1) for h in hs])  # (states, examples)
        return torch.logsumexp(cond + log_prior[:, None], 0)


def _free_energy64(rbm: RBM, x: Tensor) -> Tensor:
    """F(x) in float64 without converting the module."""
    return -(x @ rbm.b.double()) - F.softplus(x @ rbm.W.double() + rbm.c.double()).sum(-1)
