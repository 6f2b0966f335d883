"""Grid quadrature of 2-D energies against closed forms: Gaussian log Z, the toy mixtures' own
energy (log Z, KL = 0, exact log-likelihoods) and KL between mixtures of different widths."""

from __future__ import annotations

import math

import pytest
import torch

from models.quadrature import Box, grid_density, kl_data_model, log_likelihood
from models.toys.mixtures import SIGMA, expectation, log_density, mode_centres, sample_mixture

MU = torch.tensor([0.3, -0.2], dtype=torch.float64)
SIGMA2 = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)


def gaussian_energy(x):
    d = x.double() - MU
    return 0.5 * ((d @ torch.linalg.inv(SIGMA2)) * d).sum(1) + 1.7  # the constant shifts log Z by −1.7


def mixture_energy(toy, sigma):
    centres = mode_centres(toy).double()

    def energy(x):
        d2 = torch.cdist(x.double(), centres) ** 2
        log_comp = -d2 / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
        return -(torch.logsumexp(log_comp, 1) - math.log(len(centres)))

    return energy


def test_gaussian_grid_log_z_equals_the_closed_form():
    grid = grid_density(gaussian_energy, Box(-5, 5, -5, 5), n=256)
    closed = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(SIGMA2))) - 1.7
    assert grid.log_z == pytest.approx(closed, abs=1e-9)
    assert grid.quadrature_error < 1e-6
    cell = (10 / 256) ** 2
    assert float(torch.logsumexp(grid.log_p.flatten(), 0)) + math.log(cell) == pytest.approx(0, abs=1e-12)


def test_grid_draws_have_the_gaussian_moments():
    grid = grid_density(gaussian_energy, Box(-5, 5, -5, 5), n=256)
    n = 20000
    x = grid.sample(n, torch.Generator().manual_seed(0))
    se = (torch.diag(SIGMA2) / n).sqrt()
    assert torch.all((x.mean(0) - MU).abs() < 5 * se)
    assert torch.allclose(torch.cov(x.T), SIGMA2, atol=5 * math.sqrt(2 * 0.25 / n) + (10 / 256) ** 2 / 12)


@pytest.mark.parametrize("toy", ["ring8", "grid25"])
def test_the_data_energy_itself_has_log_z_zero_kl_zero_and_exact_likelihoods(toy):
    box = Box.covering(-1.03, 1.03) if toy == "ring8" else Box.covering(-4.2, 4.2)
    n = 1024 if toy == "ring8" else 512  # cells of 0.3σ (ring) and 0.5σ (grid)
    energy = mixture_energy(toy, SIGMA[toy])
    grid = grid_density(energy, box, n)
    assert grid.log_z == pytest.approx(0.0, abs=1e-6)
    assert abs(kl_data_model(toy, energy, grid)) < 1e-6
    x, _ = sample_mixture(toy, 500, torch.Generator().manual_seed(0))
    assert torch.allclose(log_likelihood(energy, x, grid), log_density(toy, x), atol=1e-6)


def test_kl_between_mixtures_of_different_widths():
    """Modes 20σ′ apart: KL(mix σ ‖ mix 2σ) = KL(N(0, σ²I) ‖ N(0, 4σ²I)) = 2(log 2 + 1/8 − 1/2)."""
    energy = mixture_energy("grid25", 2 * SIGMA["grid25"])
    grid = grid_density(energy, Box.covering(-4.2, 4.2), 512)
    assert kl_data_model("grid25", energy, grid) == pytest.approx(2 * (math.log(2) + 1 / 8 - 1 / 2), abs=1e-6)


def test_points_outside_the_box_have_no_density_and_make_kl_infinite():
    energy = mixture_energy("ring8", SIGMA["ring8"])
    small = Box(-0.5, 1.5, -1.5, 1.5)  # cuts off the modes at x = −1 and x ≈ −0.71
    grid = grid_density(energy, small, 256)
    assert log_likelihood(energy, torch.tensor([[-1.0, 0.0]]), grid).item() == -math.inf
    assert kl_data_model("ring8", energy, grid) == math.inf


def test_gauss_hermite_expectation_is_exact_for_moments():
    m = mode_centres("ring8").double()
    second = expectation("ring8", lambda x: x**2)
    assert torch.allclose(second, (m**2).mean(0) + SIGMA["ring8"] ** 2, atol=1e-12)
