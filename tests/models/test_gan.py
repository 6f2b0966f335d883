"""GAN oracles: loss gradients from their formulas, the gradient penalty, clipping, D*, the bilinear game."""

from __future__ import annotations

import math

import pytest
import torch

from models.gan import optimal_d
from models.gan.losses import gan_loss, gradient_penalty, interpolates
from models.toys import bilinear
from pipeline.config import load_config
from pipeline.recipes.base import Batch, DataShape
from pipeline.recipes.gan import GANRecipe


@pytest.mark.parametrize("d_value", [0.01, 0.3, 0.9])
def test_generator_losses_have_their_textbook_gradients(d_value):
    logit = torch.tensor([math.log(d_value / (1 - d_value))], requires_grad=True)
    (g_mm,) = torch.autograd.grad(gan_loss("minimax").g_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(gan_loss("nonsaturating").g_loss(logit), logit)
    # d/dℓ log(1 − σ(ℓ)) = −σ(ℓ) = −D ; d/dℓ −log σ(ℓ) = −(1 − D)
    assert g_mm.item() == pytest.approx(-d_value, rel=1e-6)
    assert g_ns.item() == pytest.approx(-(1 - d_value), rel=1e-6)
    # the minimax loss saturates when D confidently rejects fakes; the non-saturating one does not
    if d_value == 0.01:
        assert abs(g_mm.item()) < 0.02 < abs(g_ns.item())


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, -4.0])  # ‖w‖ = 5 everywhere, so GP = λ (5 − 1)²
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    x_hat = interpolates(real, fake)
    assert gradient_penalty(x_hat @ w + 1.0, x_hat, 10.0).item() == pytest.approx(10 * 16.0)


def _recipe(*overrides: str, shape=(2,)) -> GANRecipe:
    cfg = load_config(None, ["model.family=gan", "train.optimizer=adam", "train.lr=0.001", *overrides])
    return GANRecipe(cfg, DataShape(shape=shape, value_range=(-1.0, 1.0), binary=False))


def _setup(recipe: GANRecipe) -> GANRecipe:
    recipe.optimizers = recipe.build_optimizers()
    return recipe


def test_wgan_clipping_keeps_every_critic_weight_in_range():
    r = _setup(_recipe("model.loss=wgan", "model.clip=0.01", "train.optimizer=rmsprop", "train.lr=0.5"))
    for step in range(3):
        r.train_step(Batch(torch.randn(32, 2) * 3, None, 1.0, step, 0))
    for p in r.modules["D"].parameters():
        assert p.abs().max() <= 0.01 + 1e-12


def test_n_critic_counts_discriminator_steps():
    r = _setup(_recipe("model.loss=wgan-gp", "model.n_critic=3"))
    seen = [("g_loss" in r.train_step(Batch(torch.randn(8, 2), None, 1.0, s, 0))) for s in range(6)]
    assert seen == [False, False, True, False, False, True]
    assert r.state_dict()["d_steps"] == 6


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_dcgan_step_runs_on_image_shapes(shape):
    r = _setup(_recipe("model.net=dcgan", "model.hidden=8", "model.latent_dim=16", shape=shape))
    metrics = r.train_step(Batch(torch.rand(4, *shape) * 2 - 1, None, 1.0, 0, 0))
    assert set(metrics) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    assert r.fixed_samples(5).shape == (5, *shape)


def test_trained_discriminator_approaches_d_star_and_the_value_is_jsd():
    """Discrete case: D is a free logit per point, trained by the discriminator's BCE to convergence."""
    p_data = torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64)
    p_g = torch.tensor([0.25, 0.25, 0.05, 0.45], dtype=torch.float64)
    logits = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-14,
                            tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = -optimal_d.game_value(torch.sigmoid(logits), p_data, p_g)
        loss.backward()
        return loss

    opt.step(closure)
    d = torch.sigmoid(logits).detach()
    assert torch.allclose(d, optimal_d.optimal_discriminator(p_data, p_g), atol=1e-6)
    assert float(optimal_d.game_value(d, p_data, p_g)) == pytest.approx(
        float(optimal_d.value_at_optimum(p_data, p_g)), abs=1e-9)


@pytest.mark.parametrize("eta", [0.05, 0.2])
def test_bilinear_dynamics_match_their_analytic_rates(eta):
    z0 = torch.tensor([1.0, 0.5])
    norms = lambda zs: zs.norm(dim=1)  # noqa: E731
    sim = norms(bilinear.simultaneous(z0, eta, 50))
    assert torch.allclose(sim[1:] / sim[:-1], torch.full((50,), bilinear.simultaneous_rate(eta),
                                                         dtype=torch.float64))
    eg = norms(bilinear.extragradient(z0, eta, 50))
    assert torch.allclose(eg[1:] / eg[:-1], torch.full((50,), bilinear.extragradient_rate(eta),
                                                       dtype=torch.float64))
    alt = norms(bilinear.alternating(z0, eta, 2000))
    assert alt.max() < 2 * alt[0] and alt.min() > 0.5 * alt[0]  # bounded cycle, no growth or decay
    og = norms(bilinear.optimistic(z0, eta, 2000))
    rate = (og[-1] / og[-501]) ** (1 / 500)
    assert float(rate) == pytest.approx(bilinear.optimistic_rate(eta), rel=1e-3)
    assert bilinear.optimistic_rate(eta) < 1
