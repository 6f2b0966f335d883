"""Fully visible Boltzmann machine recipe: exact maximum likelihood (n ≤ 20) or persistent Gibbs."""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models import ais
from models.bm import FullyVisibleBM
from models.samplers.base import Sampler
from models.samplers.tempering import ParallelTemperingSampler
from models.samplers.gibbs import GibbsSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from models.exact import AUTO_EXACT_UNITS, can_enumerate
from pipeline.recipes.energy import EnergyRecipe
from models.bernoulli import bernoulli
from pipeline.recipes.likelihood import (AISRunner, LikelihoodResult, ais_report, binary_data_refusal, exact_refusal,
                                         exact_report, in_process_runner, sandwich, unavailable, with_sandwich)

EXACT_LIMIT = AUTO_EXACT_UNITS


def _bm_ais_run(model: FullyVisibleBM, n_runs: int, generator: torch.Generator | None, *, base: Tensor,
                betas: Tensor) -> Tensor:
    return model.ais_log_weights(base, betas, n_runs, generator)


def _bm_raise_run(model: FullyVisibleBM, n_runs: int, generator: torch.Generator | None, *, base: Tensor,
                  betas: Tensor, data: Tensor) -> Tensor:
    generator = ais.reverse_stream(generator)
    return model.reverse_log_ratio(ais.pick_rows(data, n_runs, generator), base, betas, generator)


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
    samplers = ("gibbs", "pt")

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

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        if not self.exact:
            return super().train_step(batch)
        # mean E(data) + log Z: its gradient is exactly ⟨yyᵀ⟩_data − ⟨yyᵀ⟩_model (log Z by enumeration)
        x = batch.x.reshape(batch.x.shape[0], -1)
        loss = self.net("model")(x).mean() + self.modules["model"].log_partition()
        self.optimize("model", loss, batch)
        loss = loss.detach()
        return {"loss": loss, "nll": loss}

    def positive(self, batch: Batch) -> Tensor:
        return batch.x.reshape(batch.x.shape[0], -1)

    def negative(self, batch: Batch) -> Tensor:
        model = self.modules["model"]
        if self.chains is None:
            n = self.mcfg.persistent_chains
            self.chains = bernoulli(torch.full((n, model.n_visible), 0.5, device=self.device),
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

    def init_from_data(self, train_x: Tensor) -> None:
        self.data_mean = train_x.float().mean(0)  # the AIS base rates

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Exact by enumeration for n ≤ 20 units, else the sandwich of forward AIS from the base-rate
        model (log Ẑ ± 3σ̂ bounds) and RAISE along the same path with reversed sweeps."""
        model = copy.deepcopy(self.modules["model"]).cpu().double()
        n, units = int(test_x.shape[0]), self.data.dim
        y = test_x.reshape(n, -1).double()
        if why := binary_data_refusal(self.data, "fully visible BM"):
            return unavailable(method, n, why)
        if method == "exact" and units > EXACT_LIMIT:
            return unavailable("exact", n, exact_refusal("the BM", units, EXACT_LIMIT))
        with torch.no_grad():
            mean_neg_e = float((-model.energy(y)).mean())
            if method != "ais" and units <= EXACT_LIMIT:
                log_z = float(model.log_partition())
                return exact_report(log_z, mean_neg_e - log_z, n)
            mean = getattr(self, "data_mean", None)
            base = ais.base_rate_bias(mean if mean is not None else y.mean(0))
            betas = ais.schedule(schedule)
            runner = ais_runner or in_process_runner()
            log_w = runner(model, functools.partial(_bm_ais_run, base=base, betas=betas), ais_runs)
            res = ais.combine_log_weights(log_w, model.base_log_z(base))
            run = functools.partial(_bm_raise_run, base=base, betas=betas, data=y.to(torch.uint8))
            rev = ais.combine_reverse(runner(model, run, ais_runs))
        out = ais_report(mean_neg_e, res, len(betas), n)
        return with_sandwich(out, sandwich(out.log_likelihood, mean_neg_e, rev, res.n_runs))

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        if name == "pt":  # replica exchange over 10 evenly spaced inverse temperatures in [0, 1]
            return self.modules["model"], ParallelTemperingSampler(10)
        return self.modules["model"], GibbsSampler(output="sample")

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state(), "data_mean": getattr(self, "data_mean", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = state["chains"].to(self.device)
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
        if state.get("data_mean") is not None:
            self.data_mean = state["data_mean"]
