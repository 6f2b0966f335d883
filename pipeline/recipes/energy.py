"""The one training pattern of every energy-based family (BM, RBM, DBM, deep EBM).

For p(x) = exp(-F(x)) / Z the log-likelihood gradient is -∇F(x+) + E_model[∇F(x-)], so the
surrogate loss  mean F(x+) - mean F(x-)  with negatives x- drawn by a sampler (and detached) has
exactly that gradient. Because it is an ordinary loss, DDP averages it across workers like any
other, and the engine needs no special case for MCMC-trained models.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor

from pipeline.recipes.base import Batch, Recipe


class EnergyRecipe(Recipe):
    """Subclasses provide ``positive`` (data-side states), ``negative`` (sampled states) and may add
    a ``regularizer``; the module named ``energy_module`` returns per-example energies from forward."""

    energy_module: str = "model"
    # Divergence guard: no healthy energy model has a parameter this large. For binary units a
    # pre-activation past ~40 already saturates the sigmoid to 1e-17, so one weight of 1e4 makes a
    # unit deterministic whatever its other inputs; an unstable learning rate gets there in a step.
    max_parameter_magnitude: float = 1e4

    @classmethod
    def ddp_static_graph(cls, cfg: Any) -> bool:
        """One forward of the wrapped energy per backward, every step (samplers use the unwrapped
        module); the engine ignores this for the layer-wise families (DBN, DBM pretraining)."""
        return True

    @abstractmethod
    def positive(self, batch: Batch) -> Any:
        """The data-side input of the energy (x itself, or x with mean-field hidden states)."""

    @abstractmethod
    def negative(self, batch: Batch) -> Any:
        """Negative samples from the model (persistent chains, CD chains, Langevin...), detached."""

    def concat(self, pos: Any, neg: Any) -> Any:
        """Join positive and negative inputs for a single forward pass (tensors by default)."""
        return torch.cat([pos, neg.detach()], dim=0)

    def regularizer(self, e_pos: Tensor, e_neg: Tensor) -> Tensor | None:
        """Optional extra term (e.g. the deep-EBM energy-magnitude penalty α(E+² + E-²))."""
        return None

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        pos = self.positive(batch)
        neg = self.negative(batch)
        n_pos = batch.x.shape[0]
        energies = self.net(self.energy_module)(self.concat(pos, neg))
        e_pos, e_neg = energies[:n_pos], energies[n_pos:]
        loss = e_pos.mean() - e_neg.mean()
        reg = self.regularizer(e_pos, e_neg)
        total = loss if reg is None else loss + reg
        self.optimize(self.energy_module, total, batch)
        metrics = {"loss": total.detach(), "energy_pos": e_pos.detach().mean(), "energy_neg": e_neg.detach().mean()}
        if reg is not None:
            metrics["regularizer"] = reg.detach()
        return metrics

    def guard_metrics(self, batch: Batch) -> dict[str, Tensor]:
        """The largest |θ| of the energy, on the device: checked against ``metric_limits`` at the
        engine's read-back, so a learning rate that blows the parameters up stops (or restores) the
        run even when every loss stays finite (an RBM at train.lr=1e6 otherwise exits 0)."""
        params = [p.detach() for p in self.modules[self.energy_module].parameters()]
        if not params:
            return {}
        return {"parameter_magnitude": torch.stack([p.abs().max() for p in params]).max()}

    def metric_limits(self) -> dict[str, tuple[float, str]]:
        bound = float(getattr(self.mcfg, "max_parameter_magnitude", None) or self.max_parameter_magnitude)
        return {"parameter_magnitude": (bound, "max |θ| of an energy model's parameters; lower train.lr")}
