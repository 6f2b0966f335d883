"""The bilinear game min_x max_y xy: each dynamics against its exact per-step factor."""

from __future__ import annotations

import io

import pytest
import torch

from models.toys import bilinear

Z0 = torch.tensor([1.0, 0.5])


def _ratios(zs: torch.Tensor) -> torch.Tensor:
    norms = zs.norm(dim=1)
    return norms[1:] / norms[:-1]


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.7])
def test_simultaneous_gda_grows_by_sqrt_one_plus_eta_squared_every_step(eta):
    r = _ratios(bilinear.simultaneous(Z0, eta, 60))
    assert torch.allclose(r, torch.full_like(r, bilinear.simultaneous_rate(eta)), rtol=1e-12)
    assert bilinear.simultaneous_rate(eta) > 1


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.7])
def test_extragradient_contracts_by_its_exact_factor_every_step(eta):
    r = _ratios(bilinear.extragradient(Z0, eta, 60))
    assert torch.allclose(r, torch.full_like(r, bilinear.extragradient_rate(eta)), rtol=1e-12)
    assert bilinear.extragradient_rate(eta) < 1


@pytest.mark.parametrize("eta", [0.05, 0.2, 1.5])
def test_alternating_updates_conserve_their_quadratic_form_and_cycle(eta):
    zs = bilinear.alternating(Z0, eta, 3000)
    q = bilinear.alternating_invariant(zs, eta)
    assert torch.allclose(q, q[0].expand_as(q), rtol=1e-10)  # conserved exactly, every step
    norms = zs.norm(dim=1)
    bound = ((1 + eta / 2) / (1 - eta / 2)) ** 0.5
    assert norms.max() <= norms[0] * bound * (1 + 1e-9) and norms.min() >= norms[0] / bound * (1 - 1e-9)
    angles = torch.atan2(zs[:, 1], zs[:, 0])
    assert (angles.diff().abs() > 1e-3).all()  # it keeps rotating: a cycle, not a fixed point


@pytest.mark.parametrize("eta", [0.05, 0.2])
def test_optimistic_gd_converges_at_its_spectral_radius(eta):
    og = bilinear.optimistic(Z0, eta, 8000).norm(dim=1)
    rate = (og[-1] / og[-1001]) ** (1 / 1000)
    assert float(rate) == pytest.approx(bilinear.optimistic_rate(eta), rel=1e-6)
    assert bilinear.optimistic_rate(eta) < 1 and og[-1] < 1e-3 * og[0]


def test_trajectory_figure_has_one_panel_per_dynamics():
    fig = bilinear.plot_trajectories(eta=0.2, steps=50)
    axes = fig.get_axes()
    assert [a.get_title().split(" ")[0] for a in axes] == list(bilinear.DYNAMICS)
    path = axes[0].get_lines()[0].get_xydata()
    assert path.shape == (51, 2)
    png = io.BytesIO()
    fig.savefig(png, format="png")  # it renders
    assert png.getvalue()[:4] == b"\x89PNG"
