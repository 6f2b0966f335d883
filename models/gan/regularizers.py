"""Discriminator regularisers beside the WGAN-GP penalty (``models.gan.losses``).

* R1 (Mescheder, Geiger & Nowozin 2018, eq. 9): γ/2 · E_real ‖∇_x D(x)‖², a zero-centred gradient
  penalty on real data only; it makes the Dirac-GAN's equilibrium locally convergent.
* LeCam (Tseng et al. 2021, eq. 3): ‖D(x) − α_F‖² + ‖D(G(z)) − α_R‖² with α_R, α_F exponential
  moving averages of D's mean outputs on real and fake data; the released code keeps only the
  one-sided parts (relu), which is what is implemented here. It bounds the LeCam divergence and
  keeps D's predictions from drifting apart under limited data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def r1_penalty(real_logits: Tensor, real: Tensor, gamma: float) -> Tensor:
    """γ/2 · mean over the batch of ‖∂D(x)/∂x‖² (``real`` must require grad; graph kept for backward)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


class LeCam:
    """The LeCam regulariser with its two EMAs (decay 0.99 in the paper's code)."""

    def __init__(self, decay: float = 0.99):
        self.decay = decay
        self.ema_real: Tensor | None = None
        self.ema_fake: Tensor | None = None

    def update(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        r, f = real_logits.detach().mean().float(), fake_logits.detach().mean().float()
        if self.ema_real is None:
            self.ema_real, self.ema_fake = r, f
        else:
            self.ema_real = self.decay * self.ema_real + (1 - self.decay) * r
            self.ema_fake = self.decay * self.ema_fake + (1 - self.decay) * f

    def penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """mean relu(D(x) − α_F)² + mean relu(α_R − D(G(z)))², after updating the EMAs."""
        self.update(real_logits, fake_logits)
        return (F.relu(real_logits - self.ema_fake).pow(2).mean()
                + F.relu(self.ema_real - fake_logits).pow(2).mean())

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"ema_real": self.ema_real, "ema_fake": self.ema_fake}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        self.ema_real, self.ema_fake = state.get("ema_real"), state.get("ema_fake")
