"""AIS for continuous EBMs against exact log Z: a Gaussian mixture (closed form) and a random MLP
energy (grid quadrature); forward runs bound log Z from below, reverse runs from exact draws from
above, and the two meet."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.ais import combine_log_weights
from models.ebm_ais import GaussianBase, ais_run, linear_betas, pilot_steps
from models.quadrature import Box, grid_density

CENTRES = torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]], dtype=torch.float64)
S = 0.3


class Mixture(nn.Module):
    """E = −log Σ_k ⅓ N(x; μ_k, S²I) − 2.5, so log Z = 2.5 exactly."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        d2 = torch.cdist(x, CENTRES) ** 2
        return -(torch.logsumexp(-d2 / (2 * S**2), 1) - math.log(3 * 2 * math.pi * S**2)) - 2.5

    def sample(self, n, generator=None):
        k = torch.randint(0, 3, (n,), generator=generator)
        return CENTRES[k] + S * torch.randn(n, 2, generator=generator, dtype=torch.float64)


class ConfinedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(2, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 1)).double()
        with torch.no_grad():
            self.net[-1].weight.mul_(8)  # a bumpy, multi-modal energy

    def forward(self, x):
        return self.net(x).squeeze(1) + 0.25 * (x**2).sum(1)


def _sandwich(model, base, start, runs=200, n_betas=300, seed=0):
    betas = linear_betas(n_betas)
    steps = pilot_steps(model, base, betas, generator=torch.Generator().manual_seed(seed + 100))
    g = torch.Generator().manual_seed(seed)
    fwd = combine_log_weights(ais_run(model, runs, g, base=base, betas=betas, steps=steps), 0.0)
    rev_w = ais_run(model, runs, g, base=base, betas=betas.flip(0), steps=steps.flip(0), start=start)
    rev = combine_log_weights(rev_w, 0.0)
    return fwd.log_z, -rev.log_z


def test_ais_sandwiches_the_closed_form_log_z_of_a_mixture():
    model = Mixture()
    base = GaussianBase.fit(model.sample(5000, torch.Generator().manual_seed(1)))
    fwd, rev = _sandwich(model, base, model.sample)
    assert fwd < 2.5 + 0.02 and rev > 2.5 - 0.02  # stochastic lower / upper bounds
    assert abs(fwd - 2.5) < 0.1 and abs(rev - 2.5) < 0.1


def test_ais_matches_the_grid_on_a_random_mlp_energy():
    model = ConfinedMLP()
    grid = grid_density(model, Box(-8, 8, -8, 8), 512)
    assert grid.quadrature_error < 1e-4
    base = GaussianBase.fit(grid.sample(5000, torch.Generator().manual_seed(1)))
    fwd, rev = _sandwich(model, base, grid.sample)
    assert fwd < grid.log_z + 0.05 and rev > grid.log_z - 0.05
    assert abs(fwd - grid.log_z) < 0.15 and abs(rev - grid.log_z) < 0.15


def test_gaussian_base_is_normalised():
    base = GaussianBase(torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.3, 1.0], dtype=torch.float64))
    grid = grid_density(lambda x: -base.log_prob(x), Box(-10, 10, -10, 10), 512)
    assert abs(grid.log_z) < 1e-8
