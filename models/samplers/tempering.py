"""Parallel tempering (replica exchange; Swendsen & Wang 1986, Geyer 1991) for the Boltzmann family.

K replicas of every chain run at inverse temperatures 1 = β_1 > … > β_K ≥ 0 of the tempered model
p_β ∝ f_β; after each Gibbs sweep (one per replica, at its own β) neighbouring replicas (k, k+1)
propose to exchange states, accepted with the Metropolis ratio

    α = min(1, f_{β_k}(x_{k+1}) f_{β_{k+1}}(x_k) / (f_{β_k}(x_k) f_{β_{k+1}}(x_{k+1}))),

which leaves the product ∏_k p_{β_k} invariant, so the β = 1 replica samples the model while the hot
ones cross between modes (Desjardins et al. 2010 and Cho et al. 2010 use it as the negative phase
of RBM training). Even and odd pairs alternate between steps. The swap acceptance rate of every
pair is kept in the state and reported; a pair that never swaps means the ladder is too coarse.

Tempered families (f_β, the sweep at β):
* RBM: the v-marginal f_β(v) = exp(β bᵀv) ∏_j (1 + exp(β (c_j + (vW)_j))), a v → h → v sweep at β;
* fully visible BM: f_β(y) = exp(−β E(y)), a sequential sweep at β;
* DBM: f_β(x) = exp(−β E(x)) over all layers, an odd/even sweep at β.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.bm import FullyVisibleBM
from models.dbm import DBM
from models.rbm import RBM, GaussianRBM
from models.registry import register
from models.samplers.base import ChainState, Sampler
from models.bernoulli import bernoulli


def ladder(temperatures: int, beta_min: float = 0.0) -> Tensor:
    """Inverse temperatures 1 … β_min, evenly spaced (float64)."""
    if temperatures < 2:
        raise ValueError(f"parallel tempering needs at least 2 temperatures, got {temperatures}")
    if not 0.0 <= beta_min < 1.0:
        raise ValueError(f"parallel tempering: beta_min = {beta_min} must lie in [0, 1)")
    return torch.linspace(1.0, beta_min, temperatures, dtype=torch.float64)


# ----------------------------------------------------------------------- the tempered families
def _family(model: nn.Module) -> str:
    if isinstance(model, GaussianRBM):
        raise ValueError("parallel tempering is implemented for binary units; the Gaussian RBM is not supported")
    for cls, name in ((RBM, "rbm"), (FullyVisibleBM, "bm"), (DBM, "dbm")):
        if isinstance(model, cls):
            return name
    raise ValueError(f"parallel tempering supports RBMs, fully visible BMs and DBMs, not {type(model).__name__}")


def _sizes(model: nn.Module) -> list[int]:
    return list(model.sizes) if isinstance(model, DBM) else [model.n_visible]


def tempered_log_f(model: nn.Module, layers: list[Tensor], beta: Tensor) -> Tensor:
    """log f_β per row; ``beta`` has one entry per row."""
    kind = _family(model)
    if kind == "rbm":
        v = layers[0]
        return beta * (v @ model.b) + F.softplus(beta[:, None] * (v @ model.W + model.c)).sum(-1)
    if kind == "bm":
        return -beta * model.energy(layers[0])
    return -beta * model.energy(layers)


@torch.no_grad()
def tempered_sweep(model: nn.Module, layers: list[Tensor], beta: Tensor,
                   generator: torch.Generator | None) -> list[Tensor]:
    """One Gibbs sweep of every row at its own β."""
    kind, col = _family(model), beta[:, None]
    if kind == "rbm":
        v = layers[0]
        h = bernoulli(torch.sigmoid(col * (v @ model.W + model.c)), generator=generator)
        return [bernoulli(torch.sigmoid(col * (h @ model.W.T + model.b)), generator=generator)]
    if kind == "bm":
        return [model.tempered_sweep(layers[0], beta, torch.zeros_like(model.b), generator)]
    out = list(layers)
    for parity in (1, 0):
        for l in range(parity, len(out), 2):
            out[l] = bernoulli(torch.sigmoid(model.layer_input(out, l, col)), generator=generator)
    return out


def _energy(model: nn.Module, layers: list[Tensor]) -> Tensor:
    kind = _family(model)
    if kind == "rbm":
        return model.free_energy(layers[0])
    return model.energy(layers[0] if kind == "bm" else layers)


# ------------------------------------------------------------------------------------ the sampler
@register("sampler", "pt")
class ParallelTemperingSampler(Sampler):
    """Replica exchange on the shared interface. ``state.layers`` hold the β = 1 replica (the
    samples); ``state.extras`` hold all replicas (``replicas_<l>``: (K, C, n_l)) and the swap counts
    per pair; ``state.accepted`` / ``proposed`` count each chain's accepted / attempted swaps."""

    name = "pt"

    def __init__(self, temperatures: int = 10, beta_min: float = 0.0):
        self.betas = ladder(temperatures, beta_min)

    @property
    def temperatures(self) -> int:
        return len(self.betas)

    def _dtype(self, model: nn.Module) -> torch.dtype:
        return next(model.parameters()).dtype

    @torch.no_grad()
    def init(self, model: nn.Module, n: int, generator: torch.Generator | None = None) -> ChainState:
        device, k = next(model.parameters()).device, self.temperatures
        reps = [bernoulli(torch.full((k, n, s), 0.5, device=device, dtype=self._dtype(model)),
                          generator=generator) for s in _sizes(model)]
        zeros = torch.zeros(k - 1, dtype=torch.float64, device=device)
        return self._state(model, reps, zeros, zeros.clone(), torch.zeros(n, device=device), 0, 0)

    def _state(self, model: nn.Module, reps: list[Tensor], acc: Tensor, tried: Tensor, per_chain: Tensor,
               proposed: int, parity: int) -> ChainState:
        top = [r[0] for r in reps]
        extras = {f"replicas_{l}": r for l, r in enumerate(reps)}
        extras |= {"swap_accepted": acc, "swap_attempts": tried, "parity": torch.tensor(parity)}
        return ChainState(layers=top, energy=_energy(model, top), accepted=per_chain, proposed=proposed,
                          extras=extras)

    @torch.no_grad()
    def step(self, model: nn.Module, state: ChainState, k: int = 1,
             generator: torch.Generator | None = None) -> ChainState:
        n_l = len(_sizes(model))
        reps = [state.extras[f"replicas_{l}"] for l in range(n_l)]
        acc, tried = state.extras["swap_accepted"].clone(), state.extras["swap_attempts"].clone()
        per_chain, proposed = state.accepted.clone(), state.proposed
        parity = int(state.extras["parity"])
        big_k, c = reps[0].shape[0], reps[0].shape[1]
        beta_rows = self.betas.to(reps[0].device, reps[0].dtype).repeat_interleave(c)
        for _ in range(k):
            flat = tempered_sweep(model, [r.reshape(big_k * c, -1) for r in reps], beta_rows, generator)
            reps = [f.reshape(big_k, c, -1) for f in flat]
            reps, took = self._swap(model, reps, parity, generator)
            pairs = torch.arange(parity, big_k - 1, 2, device=acc.device)
            acc[pairs] += took.sum(1).double()
            tried[pairs] += c
            per_chain += took.sum(0).to(per_chain.dtype)
            proposed += len(pairs)
            parity = 1 - parity
        return self._state(model, reps, acc, tried, per_chain, proposed, parity)

    def _swap(self, model: nn.Module, reps: list[Tensor], parity: int,
              generator: torch.Generator | None) -> tuple[list[Tensor], Tensor]:
        """Metropolis exchange of the pairs (k, k+1), k ≡ parity (mod 2); returns the accept mask (pairs, C)."""
        big_k, c = reps[0].shape[0], reps[0].shape[1]
        lo = torch.arange(parity, big_k - 1, 2, device=reps[0].device)
        if len(lo) == 0:
            return reps, torch.zeros(0, c, dtype=torch.bool, device=reps[0].device)
        hi = lo + 1
        betas = self.betas.to(reps[0].device, reps[0].dtype)
        b_lo, b_hi = betas[lo].repeat_interleave(c), betas[hi].repeat_interleave(c)
        x_lo = [r[lo].reshape(len(lo) * c, -1) for r in reps]
        x_hi = [r[hi].reshape(len(lo) * c, -1) for r in reps]
        log_alpha = (tempered_log_f(model, x_hi, b_lo) + tempered_log_f(model, x_lo, b_hi)
                     - tempered_log_f(model, x_lo, b_lo) - tempered_log_f(model, x_hi, b_hi)).reshape(len(lo), c)
        u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
        take = torch.log(u) < log_alpha
        out = []
        for r in reps:
            r = r.clone()
            a, b = r[lo], r[hi]
            m = take[..., None]
            r[lo], r[hi] = torch.where(m, b, a), torch.where(m, a, b)
            out.append(r)
        return out, take

    @staticmethod
    def swap_rates(state: ChainState) -> Tensor:
        """Acceptance rate of each neighbouring pair (β_k, β_{k+1}), in [0, 1] (NaN before any attempt)."""
        return state.extras["swap_accepted"] / state.extras["swap_attempts"]

    def to_data(self, model: nn.Module, state: ChainState) -> Tensor:
        """The β = 1 replica's visible layer: binary draws of the model."""
        return state.layers[0]


def pt_state_dict(state: ChainState | None) -> dict[str, Tensor] | None:
    """The tensors a checkpoint needs to resume PT chains (replicas, swap counts, parity)."""
    if state is None:
        return None
    return dict(state.extras) | {"accepted": state.accepted, "proposed": torch.tensor(state.proposed)}


def pt_state_from_dict(model: nn.Module, blob: dict[str, Tensor], device: torch.device | str) -> ChainState:
    extras = {k: v.to(device) for k, v in blob.items() if k not in ("accepted", "proposed")}
    top = [extras[f"replicas_{l}"][0] for l in range(len(_sizes(model)))]
    return ChainState(layers=top, energy=torch.zeros(top[0].shape[0], device=device),
                      accepted=blob["accepted"].to(device), proposed=int(blob["proposed"]), extras=extras)
