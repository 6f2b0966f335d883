"""GAN losses on discriminator *logits*, each a registered function (kind "gan_loss").

The minimax generator loss log(1 − D(G(z))) of Goodfellow et al. (2014) and the non-saturating
−log D(G(z)) are kept distinct: with D = σ(ℓ), the first is −softplus(ℓ) (gradient −σ(ℓ), which
vanishes when D confidently rejects fakes) and the second softplus(−ℓ) (gradient −(1 − σ(ℓ))).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.registry import lookup, register


@dataclass(frozen=True)
class GANLoss:
    """A discriminator/critic loss on (real, fake) logits and a generator loss on fake logits."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]


def bce_discriminator(real: Tensor, fake: Tensor) -> Tensor:
    """−log D(x) − log(1 − D(G(z))) = softplus(−ℓ_real) + softplus(ℓ_fake)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_generator(fake: Tensor) -> Tensor:
    """log(1 − D(G(z))) = −softplus(ℓ), minimised by G (saturates when D wins)."""
    return -F.softplus(fake).mean()


def nonsaturating_generator(fake: Tensor) -> Tensor:
    """−log D(G(z)) = softplus(−ℓ)."""
    return F.softplus(-fake).mean()


def wasserstein_critic(real: Tensor, fake: Tensor) -> Tensor:
    """−(E f(x) − E f(G(z))): the critic maximises the Kantorovich–Rubinstein dual (Arjovsky 2017)."""
    return fake.mean() - real.mean()


def wasserstein_generator(fake: Tensor) -> Tensor:
    """−E f(G(z)): also the generator loss of the hinge GAN (Miyato et al. 2018, eq. 17)."""
    return -fake.mean()


def hinge_discriminator(real: Tensor, fake: Tensor) -> Tensor:
    """max(0, 1 − ℓ_real) + max(0, 1 + ℓ_fake) (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


for _name, _d, _g in [("minimax", bce_discriminator, minimax_generator),
                      ("nonsaturating", bce_discriminator, nonsaturating_generator),
                      ("wgan", wasserstein_critic, wasserstein_generator),
                      ("wgan-gp", wasserstein_critic, wasserstein_generator),
                      ("hinge", hinge_discriminator, wasserstein_generator)]:
    register("gan_loss", _name)(GANLoss(_name, _d, _g))


def gan_loss(name: str) -> GANLoss:
    """The registered loss pair ``name`` (minimax, nonsaturating, wgan, wgan-gp, hinge)."""
    return lookup("gan_loss", name)


def interpolates(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x̂ = εx + (1 − ε)G(z), ε ~ U[0, 1] per example (Gulrajani et al. 2017, Alg. 1)."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    return (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)


def gradient_penalty(critic_out: Tensor, x_hat: Tensor, weight: float = 10.0) -> Tensor:
    """λ · E[(‖∇_x̂ f(x̂)‖₂ − 1)²] (Gulrajani et al. 2017, eq. 3), differentiable w.r.t. the critic.

    ``critic_out`` must be the per-example critic values at ``x_hat`` (a critic without batch
    statistics, so that example i's output depends on x̂_i alone).
    """
    (grad,) = torch.autograd.grad(critic_out.sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """WGAN weight clipping: every parameter into [−c, c] after each critic step."""
    for p in module.parameters():
        p.clamp_(-c, c)
