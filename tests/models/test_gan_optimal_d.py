"""Goodfellow et al. (2014) Prop. 1 and Thm. 1: a trained D approaches D* = p_data/(p_data + p_g)
and the value of the game at D* is −log 4 + 2·JSD(p_data ‖ p_g)."""

from __future__ import annotations

import math

import pytest
import torch

from models.gan import optimal_d
from models.gan.losses import gan_loss


def test_discrete_case_trained_d_is_d_star_and_the_value_is_jsd():
    """D is a free logit per point, trained to convergence on V(D, G)."""
    p_data = torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64)
    p_g = torch.tensor([0.25, 0.25, 0.05, 0.45], dtype=torch.float64)
    logits = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-14,
                            tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = -optimal_d.game_value(logits, p_data, p_g)
        loss.backward()
        return loss

    opt.step(closure)
    logits = logits.detach()
    assert torch.allclose(torch.sigmoid(logits), optimal_d.optimal_discriminator(p_data, p_g), atol=1e-6)
    assert float(optimal_d.game_value(logits, p_data, p_g)) == pytest.approx(
        float(optimal_d.value_at_optimum(p_data, p_g)), abs=1e-9)
    # and any other D is worse (D* maximises V)
    assert float(optimal_d.game_value(torch.zeros(4, dtype=torch.float64), p_data, p_g)) < \
        float(optimal_d.game_value(logits, p_data, p_g))


def test_value_at_optimum_endpoints():
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
    assert float(optimal_d.value_at_optimum(p, p)) == pytest.approx(-math.log(4))  # p_g = p_data: global minimum
    assert float(optimal_d.value_at_optimum(p, q)) == pytest.approx(0.0, abs=1e-12)  # disjoint: JSD = log 2


def test_gaussian_case_discriminator_trained_on_samples_approaches_d_star():
    """p_data = N(0, 1), p_g = N(1, 0.7²) (G fixed). D(x) = σ(a x² + b x + c) contains D* exactly
    (the log-ratio of two Gaussians is quadratic); trained with the GAN discriminator loss on samples."""
    data, gen = (0.0, 1.0), (1.0, 0.7)
    g = torch.Generator().manual_seed(0)
    n = 50_000
    x_real = data[0] + data[1] * torch.randn(n, generator=g, dtype=torch.float64)
    x_fake = gen[0] + gen[1] * torch.randn(n, generator=g, dtype=torch.float64)
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    logit = lambda x: theta[0] * x**2 + theta[1] * x + theta[2]  # noqa: E731
    bce = gan_loss("nonsaturating").d_loss
    opt = torch.optim.LBFGS([theta], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = bce(logit(x_real), logit(x_fake))
        loss.backward()
        return loss

    opt.step(closure)
    grid = torch.linspace(-2.0, 2.5, 91, dtype=torch.float64)
    with torch.no_grad():
        d_trained = torch.sigmoid(logit(grid))
    d_star = torch.sigmoid(optimal_d.gaussian_optimal_logit(grid, data, gen))
    assert (d_trained - d_star).abs().max() < 0.02

    # the game's value at D*, by quadrature, is −log 4 + 2·JSD (masses = densities × cell width)
    xs = torch.linspace(-10, 10, 40_001, dtype=torch.float64)
    dx = xs[1] - xs[0]
    p = torch.distributions.Normal(*data).log_prob(xs).exp() * dx
    q = torch.distributions.Normal(*gen).log_prob(xs).exp() * dx
    star_logit = optimal_d.gaussian_optimal_logit(xs, data, gen)
    assert torch.allclose(torch.sigmoid(star_logit), optimal_d.optimal_discriminator(p, q), atol=1e-9)
    value = float(optimal_d.game_value(star_logit, p, q))
    assert value == pytest.approx(float(optimal_d.value_at_optimum(p, q)), abs=1e-7)  # quadrature error ~1e-9
    # the sample estimate of V at the trained D (= −BCE) agrees with it up to sampling error
    with torch.no_grad():
        assert -float(bce(logit(x_real), logit(x_fake))) == pytest.approx(value, abs=5e-3)
    assert -math.log(4) < value < 0
