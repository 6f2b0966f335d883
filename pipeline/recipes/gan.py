"""GAN recipe: alternating critic/generator steps with n_critic, separate optimisers, optional EMA
generator; minimax, non-saturating, WGAN (clipping), WGAN-GP and hinge losses."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.gan.losses import clip_weights, gan_loss, gradient_penalty, interpolates
from models.gan.networks import build_networks, sample_latent
from models.samplers.ancestral import AncestralSampler
from models.samplers.base import Sampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, Recipe, make_optimizer, register_recipe


@register_model_config("gan")
class GANConfig(ModelConfig):
    family: Literal["gan"] = "gan"
    loss: Literal["minimax", "nonsaturating", "wgan", "wgan-gp", "hinge"] = "nonsaturating"
    net: Literal["mlp", "dcgan"] = "mlp"
    latent_dim: int = Field(64, gt=0)
    hidden: int = Field(128, gt=0, description="MLP width, or DCGAN base channels")
    layers: int = Field(3, gt=0, description="hidden layers of the MLPs")
    n_critic: int = Field(1, gt=0, description="discriminator steps per generator step")
    clip: float | None = Field(None, gt=0, description="WGAN weight clipping c (Arjovsky 2017: 0.01)")
    gp_lambda: float = Field(10.0, ge=0, description="WGAN-GP penalty weight (Gulrajani 2017: 10)")
    spectral_norm: bool = False
    ema: float | None = Field(None, gt=0, lt=1, description="EMA decay of generator weights (e.g. 0.999)")
    lr_g: float | None = Field(None, gt=0, description="generator lr (default train.lr)")
    lr_d: float | None = Field(None, gt=0, description="discriminator lr (default train.lr)")


@register_recipe
class GANRecipe(Recipe):
    family = "gan"
    config_cls = GANConfig

    def build_modules(self) -> dict[str, nn.Module]:
        m = self.mcfg
        bounded = len(self.data.shape) == 3  # images live in a bounded range; toy points do not
        G, D = build_networks(m.net, m.latent_dim, tuple(self.data.shape), m.hidden, m.layers,
                              m.spectral_norm, bounded)
        self.loss = gan_loss(m.loss)
        self.d_steps = 0
        self.ema_G = copy.deepcopy(G).requires_grad_(False) if m.ema else None
        return {"G": G, "D": D}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.cfg.train
        return {"G": make_optimizer(self.modules["G"].parameters(), t, lr=self.mcfg.lr_g),
                "D": make_optimizer(self.modules["D"].parameters(), t, lr=self.mcfg.lr_d)}

    def train_step(self, batch: Batch) -> dict[str, float]:
        metrics = self._critic_step(batch)
        self.d_steps += 1
        if self.d_steps % self.mcfg.n_critic == 0:
            metrics |= self._generator_step(batch)
        return metrics

    def _critic_step(self, batch: Batch) -> dict[str, float]:
        real = batch.x
        n = real.shape[0]
        with torch.no_grad():
            fake = self.net("G")(sample_latent(n, self.mcfg.latent_dim, device=real.device))
        gp = self.mcfg.loss == "wgan-gp"
        parts = [real, fake] + ([interpolates(real, fake)] if gp else [])
        logits = self.net("D")(torch.cat(parts))
        r, f = logits[:n], logits[n:2 * n]
        d_loss = self.loss.d_loss(r, f)
        penalty = gradient_penalty(logits[2 * n:], parts[2], self.mcfg.gp_lambda) if gp else None
        self.optimize("D", d_loss if penalty is None else d_loss + penalty, batch)
        if self.mcfg.clip is not None:
            clip_weights(self.modules["D"], self.mcfg.clip)
        out = {"d_loss": d_loss.item(), "d_real": r.mean().item(), "d_fake": f.mean().item(),
               "grad_norm_d": _grad_norm(self.modules["D"])}
        if self.mcfg.loss in ("wgan", "wgan-gp"):
            out["wasserstein_estimate"] = (r.mean() - f.mean()).item()
        if penalty is not None:
            out["gradient_penalty"] = penalty.item()
        return out

    def _generator_step(self, batch: Batch) -> dict[str, float]:
        n = batch.x.shape[0]
        fake = self.net("G")(sample_latent(n, self.mcfg.latent_dim, device=batch.x.device))
        # D is called unwrapped: only G's gradients are synchronised and stepped here.
        g_loss = self.loss.g_loss(self.modules["D"](fake))
        self.optimize("G", g_loss, batch)
        if self.ema_G is not None:
            _ema_update(self.ema_G, self.modules["G"], self.mcfg.ema)
        return {"g_loss": g_loss.item(), "grad_norm_g": _grad_norm(self.modules["G"])}

    def after_setup(self) -> None:
        if self.ema_G is not None:
            self.ema_G.to(self.device)

    def generator(self) -> nn.Module:
        return self.ema_G if self.ema_G is not None else self.modules["G"]

    @torch.no_grad()
    def fixed_samples(self, n: int = 64) -> Tensor:
        z = sample_latent(n, self.mcfg.latent_dim, torch.Generator().manual_seed(1234))
        G = self.generator()
        was_training = G.training
        G.eval()
        out = G(z.to(next(G.parameters()).device))
        G.train(was_training)
        return out

    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        D, G = self.modules["D"], self.generator()
        out = {"d_real_test": D(test_x).mean().item()}
        fake = G(sample_latent(len(test_x), self.mcfg.latent_dim, device=test_x.device))
        out["d_fake_test"] = D(fake).mean().item()
        source = self.cfg.data.source
        if source.startswith("toy:"):
            from models.toys.mixtures import mode_metrics

            z = sample_latent(2500, self.mcfg.latent_dim, torch.Generator().manual_seed(0)).to(test_x.device)
            out |= mode_metrics(G(z).cpu(), source.split(":", 1)[1])
        return out

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.generator().eval(), AncestralSampler(self.mcfg.latent_dim)

    def state_dict(self) -> dict[str, Any]:
        return {"d_steps": self.d_steps, "ema_G": self.ema_G.state_dict() if self.ema_G is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_steps = state.get("d_steps", 0)
        if self.ema_G is not None and state.get("ema_G") is not None:
            self.ema_G.load_state_dict(state["ema_G"])


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach().to(e.device), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
