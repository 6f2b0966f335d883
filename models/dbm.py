"""Deep Boltzmann machine (Salakhutdinov & Hinton 2009) with binary layers v, h1, …, hL.

E(v, h) = −Σ_l b_lᵀ x_l − Σ_l x_{l}ᵀ W_l x_{l+1}  (x_0 = v). Layers only talk to neighbours, so
given the odd layers the even ones are independent (and vice versa): Gibbs sampling alternates
odd/even, mean-field iterates the same updates with probabilities, and summing out all even
layers (v included) leaves an analytic unnormalised marginal over the odd layers — the state space
AIS anneals on (for two hidden layers: AIS over h1 with v and h2 summed out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.exact import AUTO_EXACT_UNITS, check_enumerable
from models.rbm import all_binary_states
from models.bernoulli import bernoulli


@dataclass
class LayerPair:
    """Input of a greedy-pretraining step: the two-layer sub-model (x_l, x_{l+1}) of weight index l."""

    index: int
    x: Tensor
    h: Tensor


# Greedy pretraining (Salakhutdinov & Hinton 2009, 2012): the bottom RBM sees its visible layer
# twice (bottom-up input doubled), the top one its hidden layer twice (top-down input doubled),
# middle ones both, because in the DBM each of those layers hears from two neighbours.
def pretrain_multipliers(index: int, n_weights: int) -> tuple[float, float]:
    """(bottom-up, top-down) input multipliers of the modified RBM for weight matrix ``index``."""
    up = 2.0 if index < n_weights - 1 else 1.0
    down = 2.0 if index > 0 else 1.0
    return up, down


class DBM(nn.Module):
    """``forward(layers)`` returns the joint energy of [v, h1, …] per example, or the pair energy
    −b_lᵀx − b_{l+1}ᵀh − xᵀW_l h for a :class:`LayerPair` (greedy pretraining)."""

    def __init__(self, sizes: list[int], init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 3:
            raise ValueError(f"a DBM needs a visible and at least two hidden layers, got sizes {sizes}")
        self.sizes = list(sizes)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(a, b, generator=generator) * init_std) for a, b in zip(sizes[:-1], sizes[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in sizes])

    @property
    def n_visible(self) -> int:
        return self.sizes[0]

    def energy(self, layers: list[Tensor]) -> Tensor:
        e = sum(-(x @ b) for x, b in zip(layers, self.biases))
        for l, W in enumerate(self.weights):
            e = e - ((layers[l] @ W) * layers[l + 1]).sum(-1)
        return e

    def forward(self, layers: list[Tensor] | LayerPair) -> Tensor:
        if isinstance(layers, LayerPair):
            l, x, h = layers.index, layers.x, layers.h
            return -(x @ self.biases[l]) - (h @ self.biases[l + 1]) - ((x @ self.weights[l]) * h).sum(-1)
        return self.energy(list(layers))

    @torch.no_grad()
    def pretrain_negative(self, pair: LayerPair, k: int, generator: torch.Generator | None) -> LayerPair:
        """CD-k of the modified RBM of weight ``pair.index`` from the positive pair; hidden as probabilities."""
        l = pair.index
        up, down = pretrain_multipliers(l, len(self.weights))
        W, b_x, b_h = self.weights[l], self.biases[l], self.biases[l + 1]
        h = bernoulli(pair.h, generator=generator)
        for _ in range(k):
            x = bernoulli(torch.sigmoid(down * (h @ W.T) + b_x), generator=generator)
            p_h = torch.sigmoid(up * (x @ W) + b_h)
            h = bernoulli(p_h, generator=generator)
        return LayerPair(l, x, p_h)

    @torch.no_grad()
    def pretrain_up(self, x: Tensor, index: int) -> Tensor:
        """p(h | x) of the modified RBM of weight ``index`` (the positive phase and the up-pass)."""
        up, _ = pretrain_multipliers(index, len(self.weights))
        return torch.sigmoid(up * (x @ self.weights[index]) + self.biases[index + 1])

    def layer_input(self, layers: list[Tensor], l: int, beta: float | Tensor = 1.0) -> Tensor:
        """Total input to layer l from its neighbours (and bias), scaled by the inverse temperature."""
        x = self.biases[l].expand(layers[0].shape[0], -1)
        if l > 0:
            x = x + layers[l - 1] @ self.weights[l - 1]
        if l + 1 < len(self.sizes):
            x = x + layers[l + 1] @ self.weights[l].T
        return beta * x

    @torch.no_grad()
    def gibbs_step(self, layers: list[Tensor], generator: torch.Generator | None = None,
                   clamp_visible: bool = False) -> list[Tensor]:
        """Sample all odd layers given the even ones, then all even layers given the odd ones."""
        layers = list(layers)
        for parity in (1, 0):
            for l in range(parity, len(layers), 2):
                if l == 0 and clamp_visible:
                    continue
                layers[l] = bernoulli(torch.sigmoid(self.layer_input(layers, l)), generator=generator)
        return layers

    @torch.no_grad()
    def mean_field(self, v: Tensor, iterations: int = 10) -> list[Tensor]:
        """Fixed-point iterations of the factorial posterior Q(h | v) (S&H 2009, eq. 9); returns [v, μ1, …]."""
        layers = [v] + [torch.full((v.shape[0], n), 0.5, device=v.device, dtype=v.dtype) for n in self.sizes[1:]]
        for _ in range(iterations):
            for l in [*range(1, len(layers), 2), *range(2, len(layers), 2)]:
                layers[l] = torch.sigmoid(self.layer_input(layers, l))
        return layers

    def p_v(self, h1: Tensor) -> Tensor:
        return torch.sigmoid(self.biases[0] + h1 @ self.weights[0].T)

    # ---------------------------------------------------------------- the marginal over odd layers
    def odd_log_marginal(self, odd: list[Tensor], beta: float = 1.0) -> Tensor:
        """log Σ_even exp(−β E) for given odd layers: Σ_odd β bᵀh + Σ_even Σ softplus(β · input)."""
        layers = self._with_even_zeros(odd)
        out = sum(beta * (layers[l] @ self.biases[l]) for l in range(1, len(layers), 2))
        for l in range(0, len(layers), 2):
            out = out + F.softplus(self.layer_input(layers, l, beta)).sum(-1)
        return out

    def _with_even_zeros(self, odd: list[Tensor]) -> list[Tensor]:
        n = odd[0].shape[0]
        layers: list[Tensor] = []
        for l, size in enumerate(self.sizes):
            layers.append(odd[l // 2] if l % 2 else torch.zeros(n, size, dtype=odd[0].dtype, device=odd[0].device))
        return layers

    def odd_sizes(self) -> list[int]:
        return self.sizes[1::2]

    def log_partition(self, chunk: int = 1 << 12) -> Tensor:
        """Exact log Z by enumerating the odd layers (≤ 20 units in total), even layers summed out."""
        total = sum(self.odd_sizes())
        check_enumerable(total, AUTO_EXACT_UNITS)
        parts = []
        for s in range(0, 2**total, chunk):
            states = all_binary_states(total, s, min(s + chunk, 2**total), dtype=self.biases[0].dtype)
            parts.append(torch.logsumexp(self.odd_log_marginal(self._split_odd(states)), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def _split_odd(self, flat: Tensor) -> list[Tensor]:
        return list(torch.split(flat, self.odd_sizes(), dim=1))

    def log_unnormalized_visible(self, v: Tensor) -> Tensor:
        """Exact log p*(v) = log Σ_h exp(−E(v, h)): odd layers enumerated, even hidden layers summed out."""
        odd = self._split_odd(all_binary_states(sum(self.odd_sizes()), dtype=v.dtype))
        out = []
        for row in v:
            layers = self._with_even_zeros(odd)
            layers[0] = row.expand(len(odd[0]), -1)
            val = layers[0] @ self.biases[0] + ((layers[0] @ self.weights[0]) * layers[1]).sum(-1)
            val = val + sum(layers[l] @ self.biases[l] for l in range(1, len(layers), 2))
            for l in range(2, len(layers), 2):
                val = val + F.softplus(self.layer_input(layers, l)).sum(-1)
            out.append(torch.logsumexp(val, 0))
        return torch.stack(out)

    def mean_field_bound(self, v: Tensor, iterations: int = 30) -> Tensor:
        """Per-example −E(v, μ) + H(Q) ≤ log p*(v) (Jensen; E is multilinear so E_Q[E] = E(v, μ))."""
        mu = self.mean_field(v, iterations)
        entropy = sum(_bernoulli_entropy(m).sum(-1) for m in mu[1:])
        return -self.energy(mu) + entropy

    @torch.no_grad()
    def ais_log_weights(self, betas: Tensor, n_runs: int, generator: torch.Generator | None = None) -> Tensor:
        """AIS from the uniform model (β = 0) on the odd layers, even layers summed out; float64.

        Z_0 = 2^(total units); transitions are Gibbs sweeps of the β-tempered DBM.
        """
        dtype = torch.float64
        odd = [bernoulli(torch.full((n_runs, n), 0.5, dtype=dtype), generator=generator)
               for n in self.odd_sizes()]
        log_w = torch.zeros(n_runs, dtype=dtype)
        for k in range(1, len(betas)):
            lo, hi = float(betas[k - 1]), float(betas[k])
            log_w += self.odd_log_marginal(odd, hi) - self.odd_log_marginal(odd, lo)
            if k == len(betas) - 1:
                break
            odd = self.tempered_sweep(odd, hi, generator)
        return log_w

    @torch.no_grad()
    def tempered_sweep(self, odd: list[Tensor], beta: float, generator: torch.Generator | None) -> list[Tensor]:
        """Even layers given the odd ones, then odd given even, all at inverse temperature β: a kernel
        on the odd-layer marginal that leaves it invariant and is reversible (as v → h → v in an RBM)."""
        layers = self._with_even_zeros(odd)
        for l in range(0, len(layers), 2):
            layers[l] = bernoulli(torch.sigmoid(self.layer_input(layers, l, beta)), generator=generator)
        for l in range(1, len(layers), 2):
            layers[l] = bernoulli(torch.sigmoid(self.layer_input(layers, l, beta)), generator=generator)
        return layers[1::2]

    def log_f_visible_odd(self, v: Tensor, odd: list[Tensor]) -> Tensor:
        """log Σ exp(−E(v, odd, even')) over the even hidden layers even' (v and the odd layers given)."""
        layers = self._with_even_zeros(odd)
        layers[0] = v
        val = v @ self.biases[0] + ((v @ self.weights[0]) * layers[1]).sum(-1)
        val = val + sum(layers[l] @ self.biases[l] for l in range(1, len(layers), 2))
        for l in range(2, len(layers), 2):
            val = val + F.softplus(self.layer_input(layers, l)).sum(-1)
        return val

    @torch.no_grad()
    def posterior_draw(self, v: Tensor, generator: torch.Generator | None,
                       iterations: int = 30) -> tuple[list[Tensor], Tensor]:
        """Odd layers drawn from the factorial mean-field posterior Q(odd | v), with log Q of the draw."""
        mu = self.mean_field(v, iterations)
        odd, log_q = [], torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
        for m in mu[1::2]:
            m = m.clamp(1e-6, 1 - 1e-6)
            h = bernoulli(m, generator=generator)
            odd.append(h)
            log_q = log_q + (h * torch.log(m) + (1 - h) * torch.log1p(-m)).sum(-1)
        return odd, log_q

    @torch.no_grad()
    def importance_log_f(self, v: Tensor, samples: int, generator: torch.Generator | None,
                         iterations: int = 30) -> Tensor:
        """Importance-sampled log p*(v) with Q(odd | v) as proposal and the even layers summed out:
        log mean_m f(v, odd_m)/Q(odd_m | v); a stochastic lower bound that tightens with ``samples``."""
        vv = v.repeat_interleave(samples, 0)
        odd, log_q = self.posterior_draw(vv, generator, iterations)
        return torch.logsumexp((self.log_f_visible_odd(vv, odd) - log_q).reshape(-1, samples), 1) - math.log(samples)

    @torch.no_grad()
    def raise_log_weights(self, v: Tensor, betas: Tensor, generator: torch.Generator | None,
                          iterations: int = 30) -> Tensor:
        """RAISE (Burda et al. 2015) on the odd-layer path of :meth:`ais_log_weights`, from test rows v.

        p(odd | v) is intractable, so the reverse chain starts from odd ~ Q(odd | v) and the weight
        carries f(v, odd)/Q(odd | v) (even hidden layers summed out, v emitted given odd):
        log w = log f(v, odd_K) − log Q − log Z_0 + Σ_{k<K} [log f_k(odd_k) − log f_{k+1}(odd_k)],
        an unbiased estimate of the annealing model's p(v) for any Q with full support.
        """
        odd, log_q = self.posterior_draw(v, generator, iterations)
        log_w = self.log_f_visible_odd(v, odd) - log_q - self.base_log_z()
        for k in range(len(betas) - 1, 0, -1):
            lo, hi = float(betas[k - 1]), float(betas[k])
            odd = self.tempered_sweep(odd, hi, generator)
            log_w += self.odd_log_marginal(odd, lo) - self.odd_log_marginal(odd, hi)
        return log_w

    def base_log_z(self) -> float:
        return sum(self.sizes) * math.log(2.0)


def _bernoulli_entropy(p: Tensor, eps: float = 1e-12) -> Tensor:
    return -(p * torch.log(p + eps) + (1 - p) * torch.log(1 - p + eps))


class CenteredDBM(DBM):
    """Centred DBM (Melchior, Fischer & Wiskott 2016, §4): with offsets μ_l per layer,
    E(x) = −Σ_l b_lᵀ(x_l − μ_l) − Σ_l (x_l − μ_l)ᵀ W_l (x_{l+1} − μ_{l+1}).

    The conditionals (hence Gibbs and mean field) are those of the plain DBM with biases
    b_l − W_{l−1}ᵀμ_{l−1} − W_l μ_{l+1}, and E differs from that plain energy by a constant; what
    changes is the gradient of the energy loss, centred like the RBM's. Offsets start at zero (so
    greedy pretraining is the plain one) and :meth:`move_offsets` changes them without changing p.
    """

    def __init__(self, sizes: list[int], init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__(sizes, init_std, generator)
        for l, n in enumerate(self.sizes):
            self.register_buffer(f"offset_{l}", torch.zeros(n))

    def offset(self, l: int) -> Tensor:
        return getattr(self, f"offset_{l}")

    def energy(self, layers: list[Tensor]) -> Tensor:
        c = [x - self.offset(l) for l, x in enumerate(layers)]
        e = sum(-(x @ b) for x, b in zip(c, self.biases))
        for l, W in enumerate(self.weights):
            e = e - ((c[l] @ W) * c[l + 1]).sum(-1)
        return e

    def layer_input(self, layers: list[Tensor], l: int, beta: float | Tensor = 1.0) -> Tensor:
        x = self.biases[l].expand(layers[0].shape[0], -1)
        if l > 0:
            x = x + (layers[l - 1] - self.offset(l - 1)) @ self.weights[l - 1]
        if l + 1 < len(self.sizes):
            x = x + (layers[l + 1] - self.offset(l + 1)) @ self.weights[l].T
        return beta * x

    def p_v(self, h1: Tensor) -> Tensor:
        return torch.sigmoid(self.biases[0] + (h1 - self.offset(1)) @ self.weights[0].T)

    @torch.no_grad()
    def move_offsets(self, offsets: list[Tensor]) -> None:
        """New offsets; biases re-parameterised so that the plain biases (the distribution) stay."""
        delta = [new.to(self.offset(l).dtype) - self.offset(l) for l, new in enumerate(offsets)]
        for l in range(len(self.sizes)):
            if l > 0:
                self.biases[l].add_(delta[l - 1] @ self.weights[l - 1])
            if l + 1 < len(self.sizes):
                self.biases[l].add_(delta[l + 1] @ self.weights[l].T)
        for l, new in enumerate(offsets):
            self.offset(l).copy_(new)

    @torch.no_grad()
    def uncentred(self) -> DBM:
        """The plain DBM with the same distribution (what AIS, RAISE, exact log Z and PT read)."""
        plain = DBM(self.sizes).to(self.weights[0].device, self.weights[0].dtype)
        zeros = [torch.zeros_like(self.offset(l))[None] for l in range(len(self.sizes))]
        for l in range(len(self.sizes)):
            plain.biases[l].copy_(self.layer_input(zeros, l)[0])  # b_l − W_{l−1}ᵀμ_{l−1} − W_l μ_{l+1}
        for W, w in zip(plain.weights, self.weights):
            W.copy_(w)
        return plain.requires_grad_(False)
