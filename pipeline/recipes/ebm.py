"""Deep EBM recipe: contrastive divergence with Langevin negatives (Du & Mordatch 2019, replay
buffer; Nijkamp et al. 2019, short-run chains from noise), an energy-magnitude regulariser and a
divergence guard that the engine drives (restore the last good checkpoint, reseed, lower the lr)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.ebm import build_energy
from models.replay_buffer import ReplayBuffer
from models.samplers.base import Sampler
from models.samplers.langevin import LangevinSampler, MALASampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.errors import TrainingDiverged
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe


@register_model_config
class EBMConfig(ModelConfig):
    family: Literal["ebm"] = "ebm"
    net: Literal["mlp", "conv"] = "mlp"
    hidden: int = Field(128, gt=0)
    layers: int = Field(3, gt=0)
    activation: Literal["swish", "leaky_relu"] = "swish"
    spectral_norm: bool = False
    langevin_steps: int = Field(60, gt=0, description="K Langevin steps per negative phase")
    step_size: float = Field(10.0, gt=0, description="s in x ← x − s∇E + σε (Du & Mordatch: λ = 10)")
    noise_std: float = Field(0.005, ge=0, description="σ; √(2s) gives proper Langevin dynamics")
    langevin_grad_clip: float | None = Field(0.01, gt=0, description="clip ∇ₓE per coordinate")
    alpha: float = Field(1.0, ge=0, description="weight of α(E(x+)² + E(x−)²)")
    buffer_size: int = Field(10_000, ge=0, description="replay buffer per worker; 0 = short-run from noise")
    buffer_reuse: float = Field(0.95, ge=0, le=1)
    data_noise: float = Field(0.005, ge=0, description="std of noise added to data (Du & Mordatch)")
    max_energy_magnitude: float = Field(1e4, gt=0, description="divergence guard threshold on |E|")
    guard_max_restarts: int = Field(3, ge=0)
    guard_lr_factor: float = Field(0.5, gt=0, lt=1)


@register_recipe
class EBMRecipe(EnergyRecipe):
    config_cls = EBMConfig
    samplers = ("langevin", "long-run", "mala")

    def build_modules(self) -> dict[str, nn.Module]:
        m = self.mcfg
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        self.base_lrs: list[float] | None = None
        lo, hi = self.data.value_range
        self.buffer = (ReplayBuffer(m.buffer_size, tuple(self.data.shape), lo, hi, m.buffer_reuse, self.gen)
                       if m.buffer_size else None)
        return {"model": build_energy(tuple(self.data.shape), m.net, m.hidden, m.layers, m.activation,
                                      m.spectral_norm)}

    def after_setup(self) -> None:
        self.gen.manual_seed(self.rank_seed())  # the replay buffer shares this generator: reseed, not replace
        self.base_lrs = [g["lr"] for opt in self.optimizers.values() for g in opt.param_groups]

    def langevin(self) -> LangevinSampler:
        m = self.mcfg
        lo, hi = self.data.value_range
        bounded = len(self.data.shape) == 3
        return LangevinSampler(tuple(self.data.shape), m.step_size, m.noise_std,
                               clamp=(lo, hi) if bounded else None, init_range=(lo, hi),
                               grad_clip=m.langevin_grad_clip)

    def positive(self, batch: Batch) -> Tensor:
        x = batch.x
        if self.mcfg.data_noise:
            x = x + self.mcfg.data_noise * torch.randn(x.shape, generator=None, device=x.device)
        return x

    def negative(self, batch: Batch) -> Tensor:
        n = batch.x.shape[0]
        sampler = self.langevin()
        if self.buffer is not None:
            starts, _ = self.buffer.starts(n, self.gen)
        else:
            starts = sampler.uniform(n, self.gen)
        model = self.modules["model"]
        state = sampler.from_points(model, starts.to(batch.x.device))
        state = sampler.step(model, state, self.mcfg.langevin_steps, self._device_gen(batch.x.device))
        if self.buffer is not None:
            self.buffer.push(state.visible)
        return state.visible.detach()

    def _device_gen(self, device: torch.device) -> torch.Generator | None:
        return self.gen if device.type == "cpu" else None

    def regularizer(self, e_pos: Tensor, e_neg: Tensor) -> Tensor | None:
        if not self.mcfg.alpha:
            return None
        return self.mcfg.alpha * ((e_pos**2).mean() + (e_neg**2).mean())

    def train_step(self, batch: Batch) -> dict[str, float]:
        metrics = super().train_step(batch)
        worst = max(abs(metrics["energy_pos"]), abs(metrics["energy_neg"]))
        if not math.isfinite(metrics["loss"]) or worst > self.mcfg.max_energy_magnitude:
            # raised after the optimiser step, so all DDP workers have finished their all-reduce
            raise TrainingDiverged(f"energy scale blew up at step {batch.step}: |E| = {worst:.3g} > "
                                   f"model.max_energy_magnitude={self.mcfg.max_energy_magnitude:g} "
                                   f"(loss {metrics['loss']:.3g})")
        return metrics

    def guard_max_restarts(self) -> int:
        return self.mcfg.guard_max_restarts

    def on_divergence_restart(self, attempt: int) -> None:
        """After the engine restored the last good checkpoint: lower the lr and reseed the chains."""
        factor = self.mcfg.guard_lr_factor ** attempt
        lrs = iter(self.base_lrs or [])
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = next(lrs, group["lr"]) * factor
        self.gen.manual_seed(self.rank_seed(stream=attempt))

    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        model = self.modules["model"]
        lo, hi = self.data.value_range
        noise = lo + (hi - lo) * torch.rand(test_x.shape, device=test_x.device)
        out = {"energy_test": model(test_x).mean().item(), "energy_noise": model(noise).mean().item()}
        if self.buffer is not None:
            out["energy_buffer"] = model(self.buffer.data[:len(test_x)].to(test_x.device)).mean().item()
        return out

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        """``None``/"langevin": the training chains' dynamics; "long-run": the same dynamics meant
        for many more steps (a diagnostic: short-run chains can look good while E is wrong);
        "mala": Metropolis-adjusted proposals with σ = √(2s)."""
        model = self.modules["model"].eval()
        if name == "mala":
            lo, hi = self.data.value_range
            return model, MALASampler(tuple(self.data.shape), self.mcfg.step_size, (lo, hi))
        return model, self.langevin()

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict() if self.buffer is not None else None,
                "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
