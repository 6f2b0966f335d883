"""Parallel tempering oracles: the β = 1 replicas of a tiny RBM, BM and DBM match the exact
distribution (enumeration) within sampling error; swap acceptance rates are rates."""

from __future__ import annotations

import pytest
import torch

from models.bm import FullyVisibleBM
from models.dbm import DBM
from models.rbm import RBM, all_binary_states
from models.samplers.tempering import ParallelTemperingSampler, ladder


pytestmark = pytest.mark.usefixtures("one_thread")


def _tv_to_exact(x: torch.Tensor, log_p_star: torch.Tensor) -> float:
    n_units = x.shape[1]
    codes = (x.long() * (1 << torch.arange(n_units))).sum(1)
    empirical = torch.bincount(codes, minlength=2**n_units).double() / len(x)
    return 0.5 * float((empirical - torch.softmax(log_p_star, 0)).abs().sum())


def _run(model, chains: int = 4000, steps: int = 40, temperatures: int = 4):
    sampler = ParallelTemperingSampler(temperatures)
    g = torch.Generator().manual_seed(0)
    state = sampler.step(model, sampler.init(model, chains, g), steps, g)
    return sampler, state


def _check(sampler, state, log_p_star, chains: int = 4000):
    x = sampler.to_data(None, state)
    n_states = len(log_p_star)
    # independent chains: E[TV] <= 1/2 sqrt(K / N); the bound is the test's tolerance
    assert _tv_to_exact(x, log_p_star) < 0.5 * (n_states / chains) ** 0.5
    rates = sampler.swap_rates(state)
    assert rates.shape == (sampler.temperatures - 1,)
    assert torch.all((rates > 0) & (rates <= 1))  # every pair swaps sometimes: the ladder is connected
    per_chain = state.acceptance_rate()
    assert torch.all((per_chain >= 0) & (per_chain <= 1))


def test_pt_on_a_tiny_rbm_matches_the_exact_visible_distribution():
    g = torch.Generator().manual_seed(1)
    rbm = RBM(6, 4, init_std=1.5, generator=g).double().requires_grad_(False)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(6, generator=g, dtype=torch.float64))
    sampler, state = _run(rbm)
    _check(sampler, state, -rbm.free_energy(all_binary_states(6)))


def test_pt_on_a_tiny_bm_matches_the_exact_distribution():
    g = torch.Generator().manual_seed(2)
    bm = FullyVisibleBM(6, init_std=1.5, generator=g).double().requires_grad_(False)
    sampler, state = _run(bm)
    _check(sampler, state, -bm.energy(all_binary_states(6)))


def test_pt_on_a_tiny_dbm_matches_the_exact_visible_distribution():
    g = torch.Generator().manual_seed(3)
    dbm = DBM([4, 3, 3], init_std=1.5, generator=g).double().requires_grad_(False)
    sampler, state = _run(dbm)
    _check(sampler, state, dbm.log_unnormalized_visible(all_binary_states(4)))


def test_swaps_are_all_accepted_between_identical_temperatures_and_ladders_are_checked():
    g = torch.Generator().manual_seed(4)
    rbm = RBM(5, 3, init_std=1.0, generator=g).double().requires_grad_(False)
    sampler = ParallelTemperingSampler(3, beta_min=0.0)
    sampler.betas = torch.ones(3, dtype=torch.float64)  # f_βk = f_βk+1: the Metropolis ratio is exactly 1
    state = sampler.step(rbm, sampler.init(rbm, 10, g), 4, g)
    assert torch.all(sampler.swap_rates(state) == 1)
    with pytest.raises(ValueError, match="at least 2"):
        ladder(1)

