"""Fully visible Boltzmann machine recipe: exact maximum likelihood (n ≤ 20) or persistent Gibbs."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.bm import FullyVisibleBM
from models.samplers.base import Sampler
from models.samplers.gibbs import GibbsSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from models.exact import AUTO_EXACT_UNITS, can_enumerate
from pipeline.recipes.energy import EnergyRecipe
from pipeline.recipes.likelihood import LikelihoodResult


@register_model_config
class BMConfig(ModelConfig):
    family: Literal["bm"] = "bm"
    temperature: float = Field(1.0, gt=0)
    training: Literal["auto", "exact", "sampled"] = Field(
        "auto", description="exact = enumerate all 2^n states (n ≤ 20); sampled = persistent Gibbs chains")
    persistent_chains: int = Field(100, gt=0, description="chains per worker for sampled training")
    gibbs_sweeps: int = Field(1, gt=0, description="sweeps of the chains per update")
    init_std: float = Field(0.01, gt=0)


@register_recipe
class BMRecipe(EnergyRecipe):
    config_cls = BMConfig
    samplers = ("gibbs",)

    def build_modules(self) -> dict[str, nn.Module]:
        self.chains: Tensor | None = None
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return {"model": FullyVisibleBM(self.data.dim, self.mcfg.temperature, self.mcfg.init_std)}

    @property
    def exact(self) -> bool:
        m = self.mcfg
        return m.training == "exact" or (m.training == "auto" and can_enumerate(self.data.dim))

    def after_setup(self) -> None:
        self.gen = self.rank_generator()

    def train_step(self, batch: Batch) -> dict[str, float]:
        if not self.exact:
            return super().train_step(batch)
        # mean E(data) + log Z: its gradient is exactly ⟨yyᵀ⟩_data − ⟨yyᵀ⟩_model (log Z by enumeration)
        x = batch.x.reshape(batch.x.shape[0], -1)
        loss = self.net("model")(x).mean() + self.modules["model"].log_partition()
        self.optimize("model", loss, batch)
        return {"loss": loss.item(), "nll": loss.item()}

    def positive(self, batch: Batch) -> Tensor:
        return batch.x.reshape(batch.x.shape[0], -1)

    def negative(self, batch: Batch) -> Tensor:
        model = self.modules["model"]
        if self.chains is None:
            n = self.mcfg.persistent_chains
            self.chains = torch.bernoulli(torch.full((n, model.n_visible), 0.5, device=self.device),
                                          generator=self.gen)
        y = self.chains
        for _ in range(self.mcfg.gibbs_sweeps):
            y, _ = model.gibbs_step(y, self.gen)
        self.chains = y
        return y

    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        model = self.modules["model"]
        out = {"energy_train": model(train_x).mean().item(), "energy_test": model(test_x).mean().item()}
        if can_enumerate(self.data.dim):
            log_z = model.log_partition()
            out["log_likelihood_train"] = float(model.log_likelihood(train_x, log_z).mean())
            out["log_likelihood_test"] = float(model.log_likelihood(test_x, log_z).mean())
        return out

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: Any = None) -> LikelihoodResult:
        model = self.modules["model"].cpu()
        n = int(test_x.shape[0])
        if not can_enumerate(self.data.dim):
            return LikelihoodResult("exact", None, n, reason=f"exact enumeration needs n ≤ {AUTO_EXACT_UNITS} units "
                                    f"(n = {self.data.dim}); AIS for the fully visible BM is not implemented")
        with torch.no_grad():
            log_z = float(model.log_partition())
            ll = float(model.log_likelihood(test_x.reshape(n, -1), torch.tensor(log_z)).mean())
        return LikelihoodResult("exact", ll, n, log_z=log_z)

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.modules["model"], GibbsSampler(output="sample")

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = state["chains"].to(self.device)
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
