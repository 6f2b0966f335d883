"""MALA and HMC with their own step sizes, adapted during burn-in: exact moments on a correlated
Gaussian and a double well, acceptance near the target, and the pathological image-scale start
(step 10 on a 784-D target of pixel scale) tamed by adaptation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models.samplers.adaptation import DualAveraging, accept_probability
from models.samplers.hmc import HMCSampler
from models.samplers.langevin import MALASampler
from tests.models.energies import MU, P, SIGMA, DoubleWell, Gaussian


class PixelGaussian(nn.Module):
    """A 784-D diagonal Gaussian with per-pixel std between 0.1 and 0.2, in float32 like images."""

    def __init__(self):
        super().__init__()
        self.std = nn.Parameter(torch.linspace(0.1, 0.2, 784).view(1, 1, 28, 28), requires_grad=False)

    def forward(self, x):
        return 0.5 * ((x / self.std) ** 2).flatten(1).sum(1)


SAMPLERS = {
    "mala": lambda shape, step, adapt: MALASampler(shape, step, adapt_steps=adapt),
    "hmc": lambda shape, step, adapt: HMCSampler(shape, step, leapfrog_steps=5, adapt_steps=adapt),
}


def _run(sampler, model, n, steps, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    state = sampler.init(model, n, g)
    state.layers[0] = state.layers[0].double() * scale
    for _ in range(steps):  # one transition per call, as the sampling stage does
        state = sampler.step(model, state, 1, g)
    return state


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_adapted_sampler_has_the_gaussian_moments_and_target_acceptance(kind):
    n, adapt, kept = 1000, 150, 100
    sampler = SAMPLERS[kind]((2,), 0.5, adapt)  # a deliberately poor starting step
    state = _run(sampler, Gaussian(), n, adapt + kept)
    x = state.visible.numpy()
    se_mean = np.sqrt(np.diag(SIGMA.numpy()) / n)
    assert np.all(np.abs(x.mean(0) - MU.numpy()) < 5 * se_mean)
    s = SIGMA.numpy()
    se_cov = np.sqrt((s**2 + np.outer(np.diag(s), np.diag(s))) / n)
    assert np.all(np.abs(np.cov(x, rowvar=False) - s) < 5 * se_cov)
    acc = state.acceptance_rate()
    assert acc.shape == (n,) and state.proposed == kept  # per chain, counted after adaptation only
    # dual averaging settles near the target; its averaged iterate accepts a little more often
    # (HMC: 0.78 after 150 adaptation steps, 0.67 after 400, target 0.65) — the 0.65–0.8 band
    assert sampler.target_accept - 0.08 < float(acc.mean()) < sampler.target_accept + 0.17


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_adapted_sampler_is_exact_on_a_double_well(kind):
    n = 2000
    state = _run(SAMPLERS[kind]((1,), 0.01, 100), DoubleWell(), n, 200, scale=4.0)
    x = state.visible[:, 0].numpy()
    assert abs((x > 0).mean() - 0.5) < 5 * np.sqrt(0.25 / n)  # symmetric starts, negligible hopping
    # no discretisation allowance: the MH correction makes the within-mode law exact
    assert abs((x**2).mean() - 4.25) < 5 * np.sqrt(np.var(x**2) / n)


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_adaptation_tames_an_image_scale_step_and_then_freezes(kind):
    """Step 10 on pixel-scale targets (the training Langevin step) accepted nothing useful before."""
    torch.manual_seed(0)
    model, n = PixelGaussian(), 64
    sampler = SAMPLERS[kind]((1, 28, 28), 10.0, 200)
    g = torch.Generator().manual_seed(1)
    state = sampler.init(model, n, g)  # uniform on [-1, 1]: far out in the tails
    for _ in range(200):
        state = sampler.step(model, state, 1, g)
    frozen = state.extras["log_step_bar"].clone()
    for _ in range(100):
        state = sampler.step(model, state, 1, g)
    assert torch.equal(state.extras["log_step_bar"], frozen)  # no adaptation after burn-in
    assert float(sampler.step_sizes(state).max()) < 0.1  # from 10 down to the target's scale
    assert abs(float(state.acceptance_rate().mean()) - sampler.target_accept) < 0.15
    std = model.std.flatten()
    z = state.visible.flatten(1) / std  # standardised: N(0, 1) per pixel at stationarity
    assert abs(float((z**2).mean()) - 1.0) < 0.1 and float(state.visible.abs().max()) < 2.0


def test_without_adaptation_the_step_is_the_given_one_and_every_step_counts():
    sampler = MALASampler((2,), 0.05)
    state = _run(sampler, Gaussian(), 10, 7)
    assert state.proposed == 7
    assert torch.allclose(sampler.step_sizes(state), torch.full((10,), 0.05, dtype=torch.float64))
    assert sampler.adapt_during(5).adapt_steps == 5 and sampler.adapt_steps == 0  # a copy, not a mutation


def test_dual_averaging_moves_the_pooled_step_towards_the_target():
    da = DualAveraging(target=0.6)
    final = []
    for acc in ([0.0, 0.2], [0.6, 0.6], [1.0, 0.8]):
        st = da.start(1.0, 2)
        for _ in range(20):
            st = da.update(st, torch.tensor(acc, dtype=torch.float64))
        assert st["log_step"][0] == st["log_step"][1]  # chains of a block share one step
        final.append(float(st["log_step"][0]))
    down, _, up = final
    assert down < math.log(1.0) < up  # too few acceptances shrink the step, too many grow it
    assert accept_probability(torch.tensor([float("nan"), 1.0, -math.log(4)])).tolist() == pytest.approx([0, 1, 0.25])


def test_hmc_with_one_leapfrog_step_is_mala():
    """HMC with L = 1 and ε = √(2h) proposes exactly MALA's x − h∇E + √(2h)ε, with the same MH ratio."""
    model, h = Gaussian(), 0.05
    mala, hmc = MALASampler((2,), h), HMCSampler((2,), math.sqrt(2 * h), leapfrog_steps=1, jitter=0.0)
    x = torch.tensor([[0.3, 0.2], [2.0, -1.0]], dtype=torch.float64)
    from models.samplers.langevin import energy_and_grad

    e, g = energy_and_grad(model, x)
    hm = torch.full((2,), h, dtype=torch.float64)
    out_m = mala.propose(model, x, e, g, hm, torch.Generator().manual_seed(3))
    out_h = hmc.propose(model, x, e, g, hm.mul(2).sqrt(), torch.Generator().manual_seed(3))
    assert torch.allclose(out_m[0], out_h[0]) and torch.allclose(out_m[3], out_h[3])
