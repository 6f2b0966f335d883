"""GAN recipe: alternating discriminator (critic) and generator steps on the engine.

Each ``train_step`` is one discriminator step on the batch; every ``n_critic``-th one is followed by
a generator step (Arjovsky et al. 2017 and Gulrajani et al. 2017 use n_critic = 5; Goodfellow et al.
2014 and Radford et al. 2015 use 1). The count lives in ``state_dict`` so a resumed run continues
the cycle where it stopped. G and D have separate optimisers (per-network overrides of the
``train`` section); both are modules, so the engine's Accelerate state checkpoints them. An EMA of
the generator's weights (Yazıcı et al. 2019) is optional and kept in the recipe state.

Losses come from the registry (``models.gan.losses``): minimax, nonsaturating, wgan (weight
clipping), wgan-gp, hinge. The paper defaults of each (optimiser, lr, betas, clip, λ, n_critic)
are set in the presets, not here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from models.gan.augment import diff_augment
from models.gan.losses import clip_weights, gan_loss, gradient_penalty, interpolates
from models.gan.regularizers import LeCam, r1_penalty
from models.gan.networks import build_networks, sample_latent
from models.samplers.ancestral import AncestralSampler
from models.samplers.base import Sampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.errors import ConfigError
from pipeline.recipes.base import Batch, Recipe, make_optimizer, register_recipe

FIXED_NOISE_SEED = 1234  # the latent batch behind fixed_samples(): the same z every epoch and run
MODE_METRIC_SAMPLES = 2500  # PacGAN §5 evaluates mode coverage on 2,500 samples
CRITIC_LOSSES = ("wgan", "wgan-gp")  # a critic's mean difference estimates W1 (up to its Lipschitz constant)
BCE_LOSSES = ("minimax", "nonsaturating")  # D = σ(logit) is a probability

Optimizer = Literal["sgd", "adam", "rmsprop"]


@register_model_config
class GANConfig(ModelConfig):
    family: Literal["gan"] = "gan"
    loss: Literal["minimax", "nonsaturating", "wgan", "wgan-gp", "hinge"] = Field(
        "nonsaturating", description="minimax = log(1 − D(G(z))) (saturating); nonsaturating = −log D(G(z))")
    net: Literal["mlp", "dcgan"] = "mlp"
    latent_dim: int = Field(64, gt=0, description="z ~ N(0, I) of this size")
    hidden: int = Field(128, gt=0, description="MLP width, or DCGAN base channels")
    layers: int = Field(3, gt=0, description="hidden layers of the MLPs")
    n_critic: int = Field(1, gt=0, description="discriminator steps per generator step")
    clip: float | None = Field(None, gt=0, description="WGAN weight clipping c (Arjovsky 2017: 0.01)")
    gp_lambda: float = Field(10.0, ge=0, description="WGAN-GP penalty weight λ (Gulrajani 2017: 10)")
    spectral_norm: bool = Field(False, description="spectral normalisation of every D layer (Miyato 2018)")
    ema: float | None = Field(None, gt=0, lt=1, description="EMA decay of generator weights (e.g. 0.999)")
    lr_g: float | None = Field(None, gt=0, description="generator lr (default train.lr)")
    lr_d: float | None = Field(None, gt=0, description="discriminator lr (default train.lr)")
    betas_g: tuple[float, float] | None = Field(None, description="generator Adam betas (default train.betas)")
    betas_d: tuple[float, float] | None = Field(None, description="discriminator Adam betas (default train.betas)")
    optimizer_g: Optimizer | None = Field(None, description="generator optimiser (default train.optimizer)")
    optimizer_d: Optimizer | None = Field(None, description="discriminator optimiser (default train.optimizer)")
    augment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment policies (Zhao et al. 2020) on real and fake images, "
                                          "in D and G steps; e.g. [color, translation, cutout]")
    r1_gamma: float = Field(0.0, ge=0, description="R1 penalty γ/2·E‖∇D(x)‖² on real data (Mescheder et al. "
                                                   "2018); 0 = off")
    lecam_lambda: float = Field(0.0, ge=0, description="LeCam regularisation weight (Tseng et al. 2021); 0 = off")
    lecam_decay: float = Field(0.99, gt=0, lt=1, description="EMA decay of LeCam's D-output anchors")
    d_batch_norm: bool = Field(False, description="batch norm in the DCGAN discriminator (Radford et al. 2015); "
                                                  "D then sees real and fake in separate forwards")

    @model_validator(mode="after")
    def _batch_norm_without_penalties(self) -> GANConfig:
        if self.d_batch_norm and (self.loss == "wgan-gp" or self.r1_gamma > 0):
            raise ValueError("model.d_batch_norm=true couples the examples of a batch, which per-example gradient "
                             "penalties (wgan-gp, model.r1_gamma) assume independent; turn one of them off")
        return self

    @model_validator(mode="after")
    def _lipschitz(self) -> GANConfig:
        if self.loss == "wgan" and self.clip is None and not self.spectral_norm:
            raise ValueError("model.loss=wgan needs a Lipschitz constraint on the critic: set model.clip=0.01 "
                             "(Arjovsky et al. 2017) or model.spectral_norm=true, or use model.loss=wgan-gp")
        if self.clip is not None and self.loss != "wgan":
            raise ValueError(f"model.clip={self.clip} is WGAN weight clipping and model.loss={self.loss!r} does not "
                             f"use it; remove model.clip or set model.loss=wgan")
        return self


@register_recipe
class GANRecipe(Recipe):
    config_cls = GANConfig
    samplers = ("ancestral",)

    def build_modules(self) -> dict[str, nn.Module]:
        m = self.mcfg
        if self.cfg.train.grad_accum_steps != 1:
            raise ConfigError(f"train.grad_accum_steps={self.cfg.train.grad_accum_steps}: the GAN family alternates "
                              f"D and G steps per batch and does not accumulate gradients; use 1 and raise "
                              f"train.batch_size instead")
        bounded = len(self.data.shape) == 3  # images live in a bounded range (tanh); toy points do not
        try:
            G, D = build_networks(m.net, m.latent_dim, tuple(self.data.shape), m.hidden, m.layers,
                                  m.spectral_norm, bounded, m.d_batch_norm)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if m.augment and not bounded:
            raise ConfigError(f"model.augment={m.augment}: DiffAugment transforms images; the data has shape "
                              f"{tuple(self.data.shape)}. Use model.augment=[] for non-image data")
        self.lecam = LeCam(m.lecam_decay) if m.lecam_lambda > 0 else None
        self.loss = gan_loss(m.loss)
        self.d_steps = 0
        self.last_g: dict[str, float] = {}
        self.ema_G = copy.deepcopy(G).requires_grad_(False) if m.ema else None
        return {"G": G, "D": D}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        m, t = self.mcfg, self.cfg.train
        return {"G": make_optimizer(self.modules["G"].parameters(), t, lr=m.lr_g, kind=m.optimizer_g, betas=m.betas_g),
                "D": make_optimizer(self.modules["D"].parameters(), t, lr=m.lr_d, kind=m.optimizer_d, betas=m.betas_d)}

    def after_setup(self) -> None:
        if self.ema_G is not None:
            self.ema_G.to(self.device)

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One D step; a G step after every ``n_critic``-th D step.

        The generator's metrics are those of its latest step, repeated on the D-only steps in
        between, so the engine's per-epoch means are means over G steps rather than diluted by
        n_critic. ``g_step`` is 1 on the batches where G stepped (its epoch mean is 1/n_critic).
        """
        metrics = self._critic_step(batch)
        self.d_steps += 1
        stepped = self.d_steps % self.mcfg.n_critic == 0
        if stepped:
            self.last_g = self._generator_step(batch)
        return metrics | self.last_g | {"g_step": float(stepped)}

    def _critic_step(self, batch: Batch) -> dict[str, float]:
        """One D step on (augmented) real and fake images plus the configured penalties.

        Without batch norm in D, one forward over [real, fake(, interpolates)] so DDP sees one
        forward per backward; with it, real and fake go through D separately (batch statistics
        of one kind each, as in Radford et al. 2015).
        """
        m = self.mcfg
        n = batch.x.shape[0]
        with torch.no_grad():
            fake = self.net("G")(sample_latent(n, m.latent_dim, device=batch.x.device))
        real, fake = self._augment(batch.x), self._augment(fake)
        if m.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        gp = m.loss == "wgan-gp"
        if m.d_batch_norm:
            r, f = self.net("D")(real), self.net("D")(fake)
            extra = None
        else:
            parts = [real, fake] + ([interpolates(real.detach(), fake)] if gp else [])
            logits = self.net("D")(torch.cat(parts))
            r, f, extra = logits[:n], logits[n:2 * n], logits[2 * n:]
        d_loss = self.loss.d_loss(r, f)
        penalties: dict[str, Tensor] = {}
        # the penalties' gradients w.r.t. the inputs need create_graph=True (inside each function)
        if gp:
            penalties["gradient_penalty"] = gradient_penalty(extra, parts[2], m.gp_lambda)
        if m.r1_gamma > 0:
            penalties["r1_penalty"] = r1_penalty(r, real, m.r1_gamma)
        if self.lecam is not None:
            penalties["lecam_penalty"] = m.lecam_lambda * self.lecam.penalty(r, f)
        self.optimize("D", d_loss + sum(penalties.values()), batch)
        if m.clip is not None:
            clip_weights(self.modules["D"], m.clip)
        out = {"d_loss": d_loss.item(), "grad_norm_d": _grad_norm(self.modules["D"])}
        out |= _discriminator_outputs(m.loss, r.detach(), f.detach())
        out |= {k: v.item() for k, v in penalties.items()}
        return out

    def _augment(self, x: Tensor) -> Tensor:
        """DiffAugment with the configured policies (identity when none)."""
        return diff_augment(x, self.mcfg.augment) if self.mcfg.augment else x

    def _generator_step(self, batch: Batch) -> dict[str, float]:
        n = batch.x.shape[0]
        fake = self.net("G")(sample_latent(n, self.mcfg.latent_dim, device=batch.x.device))
        # D is called unwrapped with its parameters frozen: this backward neither computes nor
        # synchronises D's gradients; only G's (DDP-wrapped) gradients are all-reduced and stepped.
        with _frozen(self.modules["D"]):
            g_loss = self.loss.g_loss(self.modules["D"](self._augment(fake)))
        self.optimize("G", g_loss, batch)
        if self.ema_G is not None:
            _ema_update(self.ema_G, self.modules["G"], self.mcfg.ema)
        return {"g_loss": g_loss.item(), "grad_norm_g": _grad_norm(self.modules["G"])}

    # ------------------------------------------------------------------ samples and metrics
    def generator(self) -> nn.Module:
        """The generator used for samples: the EMA copy when ``model.ema`` is set."""
        return self.ema_G if self.ema_G is not None else self.modules["G"]

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples G(z) in eval mode (batch-norm running statistics), training mode restored."""
        G = self.generator()
        with _eval_mode(G):
            return G(sample_latent(n, self.mcfg.latent_dim, generator, device=_device_of(G)))

    def fixed_samples(self, n: int = 64) -> Tensor:
        """n samples from the same fixed latent batch every call (a per-epoch progress grid)."""
        return self.generate(n, torch.Generator().manual_seed(FIXED_NOISE_SEED))

    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        """D's outputs on held-out data and fresh fakes; mode metrics on toy mixtures."""
        D = self.modules["D"]
        with _eval_mode(D):
            r = D(test_x)
            f = D(self.generate(len(test_x)))
        out = {f"{k}_test": v for k, v in _discriminator_outputs(self.mcfg.loss, r, f).items()}
        source = self.cfg.data.source
        if source.startswith("toy:"):
            from models.toys.mixtures import mode_metrics

            samples = self.generate(MODE_METRIC_SAMPLES, torch.Generator().manual_seed(0))
            out |= mode_metrics(samples.cpu(), source.split(":", 1)[1])
        return out

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        """(G or EMA-G in eval mode, AncestralSampler): a draw is G(z) for a fresh z ~ N(0, I)."""
        return self.generator().eval(), AncestralSampler(self.mcfg.latent_dim)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"d_steps": self.d_steps, "last_g": dict(self.last_g),
                "ema_G": self.ema_G.state_dict() if self.ema_G is not None else None,
                "lecam": self.lecam.state_dict() if self.lecam is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_steps = state.get("d_steps", 0)
        self.last_g = dict(state.get("last_g", {}))
        if self.ema_G is not None and state.get("ema_G") is not None:
            self.ema_G.load_state_dict(state["ema_G"])
        if self.lecam is not None and state.get("lecam") is not None:
            self.lecam.load_state_dict(state["lecam"])


def _discriminator_outputs(loss: str, real: Tensor, fake: Tensor) -> dict[str, float]:
    """D(x) and D(G(z)) as probabilities for the BCE losses; raw critic means otherwise, plus the
    Wasserstein estimate E f(x) − E f(G(z)) for the WGAN critics."""
    if loss in BCE_LOSSES:
        return {"d_x": torch.sigmoid(real).mean().item(), "d_g_z": torch.sigmoid(fake).mean().item()}
    out = {"critic_real": real.mean().item(), "critic_fake": fake.mean().item()}
    if loss in CRITIC_LOSSES:
        out["wasserstein_estimate"] = out["critic_real"] - out["critic_fake"]
    return out


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ; buffers (batch-norm statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach().to(e.device), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
