"""GAN losses against their formulas: generator gradients, stable logits, gradient penalty, clipping."""

from __future__ import annotations

import math

import pytest
import torch

from models.gan.losses import clip_weights, gan_loss, gradient_penalty, interpolates
from models.gan.networks import MLPDiscriminator
from models.registry import names


def test_every_issue_loss_is_registered_and_the_two_generator_losses_differ():
    assert set(names("gan_loss")) >= {"minimax", "nonsaturating", "wgan", "wgan-gp", "hinge"}
    assert gan_loss("minimax").g_loss is not gan_loss("nonsaturating").g_loss
    with pytest.raises(KeyError, match="did you mean 'hinge'"):
        gan_loss("hnge")


@pytest.mark.parametrize("d_value", [0.01, 0.3, 0.9])
def test_generator_losses_have_their_textbook_gradients(d_value):
    logit = torch.tensor([math.log(d_value / (1 - d_value))], dtype=torch.float64, requires_grad=True)
    (g_mm,) = torch.autograd.grad(gan_loss("minimax").g_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(gan_loss("nonsaturating").g_loss(logit), logit)
    # d/dℓ log(1 − σ(ℓ)) = −σ(ℓ) = −D ; d/dℓ −log σ(ℓ) = −(1 − D)
    assert g_mm.item() == pytest.approx(-d_value, rel=1e-12)
    assert g_ns.item() == pytest.approx(-(1 - d_value), rel=1e-12)
    # the values themselves: log(1 − D) and −log D
    assert gan_loss("minimax").g_loss(logit).item() == pytest.approx(math.log(1 - d_value), rel=1e-12)
    assert gan_loss("nonsaturating").g_loss(logit).item() == pytest.approx(-math.log(d_value), rel=1e-12)


def test_minimax_saturates_where_the_nonsaturating_loss_does_not():
    """Early in training D rejects fakes confidently (D(G(z)) ≈ 0): the minimax gradient vanishes."""
    logit = torch.tensor([-12.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(gan_loss("minimax").g_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(gan_loss("nonsaturating").g_loss(logit), logit)
    assert abs(g_mm.item()) < 1e-5 and g_ns.item() == pytest.approx(-1.0, abs=1e-5)


def test_bce_discriminator_is_finite_and_exact_at_extreme_logits():
    real, fake = torch.tensor([200.0, -200.0]), torch.tensor([-200.0, 200.0])
    loss = gan_loss("nonsaturating").d_loss(real, fake)
    # −log σ(200) ≈ 0, −log σ(−200) = 200; −log(1 − σ(−200)) ≈ 0, −log(1 − σ(200)) = 200
    assert torch.isfinite(loss) and loss.item() == pytest.approx(200.0, rel=1e-6)
    r, f = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    direct = -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())
    assert gan_loss("minimax").d_loss(r, f).item() == pytest.approx(direct.item(), rel=1e-6)


def test_critic_and_hinge_losses_by_hand():
    r, f = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.2, 1.5])
    assert gan_loss("wgan").d_loss(r, f).item() == pytest.approx(f.mean() - r.mean())
    assert gan_loss("wgan-gp").g_loss(f).item() == pytest.approx(-f.mean().item())
    # hinge: mean(max(0, 1 − r)) + mean(max(0, 1 + f)) = (0 + 0.5 + 2)/3 + (0 + 1.2 + 2.5)/3
    assert gan_loss("hinge").d_loss(r, f).item() == pytest.approx(2.5 / 3 + 3.7 / 3)


def test_gradient_penalty_of_a_linear_critic_equals_the_hand_computed_value():
    critic = torch.nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, -4.0]]))  # ∇ₓ f = w, ‖w‖ = 5 at every x̂
        critic.bias.fill_(0.7)
    real, fake = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    x_hat = interpolates(real, fake, torch.Generator().manual_seed(0))
    gp = gradient_penalty(critic(x_hat).squeeze(1), x_hat, 10.0)
    assert gp.item() == pytest.approx(10 * (5 - 1) ** 2, rel=1e-12)
    # and it is differentiable w.r.t. the critic: ∂/∂w λ(‖w‖ − 1)² = 2λ(‖w‖ − 1) w/‖w‖
    gp.backward()
    expected = 2 * 10 * (5 - 1) * torch.tensor([[3.0, -4.0]], dtype=torch.float64) / 5
    assert torch.allclose(critic.weight.grad, expected)


def test_interpolates_lie_on_the_segments_between_real_and_fake():
    real, fake = torch.zeros(500, 3), torch.ones(500, 3)
    x_hat = interpolates(real, fake, torch.Generator().manual_seed(1))
    eps = x_hat[:, 0]
    assert torch.equal(x_hat, eps[:, None].expand(-1, 3))  # one ε per example, shared by coordinates
    assert 0 <= eps.min() and eps.max() <= 1 and abs(eps.mean().item() - 0.5) < 0.05
    assert x_hat.requires_grad


def test_clipping_keeps_every_critic_weight_inside_the_box():
    critic = MLPDiscriminator((2,), hidden=16, layers=2)
    with torch.no_grad():
        for p in critic.parameters():
            p.normal_(0, 1.0)
    clip_weights(critic, 0.01)
    flat = torch.cat([p.flatten() for p in critic.parameters()])
    assert flat.abs().max() <= 0.01 and (flat.abs() == 0.01).any()
