"""Langevin and MALA on known energies; the replay buffer's mixing proportions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from models.replay_buffer import ReplayBuffer
from models.samplers.langevin import LangevinSampler, MALASampler
from tests.models.energies import MU, P, SIGMA, DoubleWell, Gaussian


def _run(sampler, model, n, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = sampler.init(model, n, g)
    state.layers[0] = state.layers[0].double() * 3
    return sampler.step(model, state, steps, g)


def test_langevin_reproduces_the_stationary_moments_of_its_discretisation():
    s, n = 0.02, 4000
    sampler = LangevinSampler((2,), step_size=s, init_range=(-1, 1))
    x = _run(sampler, Gaussian(), n, 250).visible.numpy()
    # Unadjusted Langevin on a Gaussian is the AR(1) x' = (I - sP)x + sPμ + √(2s)ε: mean μ exactly,
    # covariance C = A C Aᵀ + 2s I (O(s) away from Σ). Tolerance: 5 standard errors at n chains.
    a = (torch.eye(2, dtype=torch.float64) - s * P).numpy()
    c = scipy.linalg.solve_discrete_lyapunov(a, 2 * s * np.eye(2))
    se_mean = np.sqrt(np.diag(c) / n)
    assert np.all(np.abs(x.mean(0) - MU.numpy()) < 5 * se_mean)
    emp = np.cov(x, rowvar=False)
    se_cov = np.sqrt((c**2 + np.outer(np.diag(c), np.diag(c))) / n)  # Var of a sample covariance entry
    assert np.all(np.abs(emp - c) < 5 * se_cov)


def test_langevin_on_a_two_mode_mixture():
    n = 4000
    x = _run(LangevinSampler((1,), step_size=0.01, init_range=(-1, 1)), DoubleWell(), n, 200).visible[:, 0].numpy()
    right = (x > 0).mean()
    assert abs(right - 0.5) < 5 * np.sqrt(0.25 / n)  # symmetric starts, negligible hopping
    # E[x²] = 4 + 0.25 for the mixture; the O(s) discretisation bias is ~ s·p/2 ≈ 2% of the 0.25
    assert abs((x**2).mean() - 4.25) < 5 * np.sqrt(np.var(x**2) / n) + 0.02


def test_mala_is_exact_and_its_acceptance_falls_with_the_step():
    n = 2000
    rates = []
    for s in (0.001, 0.05, 0.5):
        state = _run(MALASampler((2,), step_size=s, init_range=(-1, 1)), Gaussian(), n, 200)
        rates.append(float(state.acceptance_rate().mean()))
        if s == 0.05:
            x = state.visible.numpy()
            se = np.sqrt(np.diag(SIGMA.numpy()) / n)
            assert np.all(np.abs(x.mean(0) - MU.numpy()) < 5 * se)
            assert np.allclose(np.cov(x, rowvar=False), SIGMA.numpy(), atol=5 * np.sqrt(2 / n))
    assert rates[0] > 0.99 and rates[0] > rates[1] > rates[2]


def test_replay_buffer_mixing_proportions():
    buf = ReplayBuffer(1000, (3,), -1.0, 1.0, reuse=0.95, generator=torch.Generator().manual_seed(0))
    buf.push(torch.full((1000, 3), 5.0))  # make buffer entries recognisable
    x, from_buffer = buf.starts(20000, torch.Generator().manual_seed(1))
    frac = float(from_buffer.float().mean())
    assert abs(frac - 0.95) < 5 * np.sqrt(0.95 * 0.05 / 20000)
    assert torch.all((x[from_buffer] == 5.0)) and torch.all(x[~from_buffer].abs() <= 1.0)


def test_replay_buffer_push_overwrites_oldest_first():
    buf = ReplayBuffer(4, (1,), 0.0, 1.0)
    buf.push(torch.tensor([[10.0], [11.0], [12.0]]))
    buf.push(torch.tensor([[13.0], [14.0]]))
    assert buf.data[:, 0].tolist() == [14.0, 11.0, 12.0, 13.0]
    assert buf.latest(3)[:, 0].tolist() == [14.0, 13.0, 12.0]  # newest first, across the wrap
