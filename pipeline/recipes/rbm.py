"""RBM recipe: CD-k (Hinton 2002) and persistent CD (Tieleman 2008) on the shared engine."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.rbm import RBM, GaussianRBM
from models.samplers.base import Sampler
from models.samplers.gibbs import GibbsSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from models.exact import can_enumerate
from pipeline.recipes.likelihood import AISRunner, LikelihoodResult, ais_report, rbm_log_z_ais


@register_model_config
class RBMConfig(ModelConfig):
    family: Literal["rbm"] = "rbm"
    n_hidden: int = Field(500, gt=0)
    cd_k: int = Field(1, gt=0, description="Gibbs sweeps per negative phase")
    persistent: bool = Field(False, description="persistent CD (Tieleman 2008): chains survive updates")
    persistent_chains: int | None = Field(None, gt=0, description="chains per worker; default batch share")
    negative: Literal["gibbs", "mean-field"] = Field(
        "gibbs", description="mean-field uses probabilities instead of samples (deterministic)")
    visible: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli", description="gaussian = unit-variance Gaussian visible units for real-valued data")
    init_visible_bias_from_data: bool = True
    init_std: float = Field(0.01, gt=0)


@register_recipe
class RBMRecipe(EnergyRecipe):
    config_cls = RBMConfig
    samplers = ("gibbs",)

    def build_modules(self) -> dict[str, nn.Module]:
        self.chains: Tensor | None = None
        self.data_mean: Tensor | None = None
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        cls = GaussianRBM if self.mcfg.visible == "gaussian" else RBM
        return {"model": cls(self.data.dim, self.mcfg.n_hidden, self.mcfg.init_std)}

    @property
    def rbm(self) -> RBM:
        return self.modules["model"]

    def init_from_data(self, train_x: Tensor) -> None:
        self.data_mean = train_x.float().mean(0)
        if self.mcfg.init_visible_bias_from_data:
            self.rbm.init_visible_bias(self.data_mean)

    def after_setup(self) -> None:
        self.gen = self.rank_generator()

    # --------------------------------------------------------------- the energy-based update
    def positive(self, batch: Batch) -> Tensor:
        return batch.x.reshape(batch.x.shape[0], -1)

    def negative(self, batch: Batch) -> Tensor:
        with torch.no_grad():
            if self.mcfg.persistent:
                v = self._persistent_start(batch)
            else:
                v = batch.x.reshape(batch.x.shape[0], -1)
            for _ in range(self.mcfg.cd_k):
                v = self._sweep(v)
            if self.mcfg.persistent:
                self.chains = v
        return v

    def _sweep(self, v: Tensor) -> Tensor:
        if self.mcfg.negative == "mean-field":
            return self.rbm.p_v(self.rbm.p_h(v))
        return self.rbm.gibbs_step(v, self.gen)[0]

    def _persistent_start(self, batch: Batch) -> Tensor:
        n = self.mcfg.persistent_chains or batch.x.shape[0]
        if self.chains is None or self.chains.shape[0] != n:
            self.chains = torch.bernoulli(torch.full((n, self.rbm.n_visible), 0.5, device=self.device),
                                          generator=self.gen)
        return self.chains

    # --------------------------------------------------------------- metrics, sampling, state
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        rbm = self.rbm
        f_train, f_test = rbm.free_energy(train_x).mean().item(), rbm.free_energy(test_x).mean().item()
        g = torch.Generator(device=train_x.device).manual_seed(0)
        out = {"reconstruction_error": rbm.reconstruction_error(test_x).item(),
               "free_energy_train": f_train, "free_energy_test": f_test, "free_energy_gap": f_test - f_train}
        if self.mcfg.visible == "bernoulli":  # PLL flips bits: defined for binary visible units only
            out["pseudo_log_likelihood"] = rbm.pseudo_log_likelihood(test_x, g).mean().item()
        return out

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Mean test log-likelihood in nats: exact when the smaller layer is small enough to enumerate
        (``models.exact``), else AIS (Salakhutdinov & Murray 2008) with log Ẑ ± 3σ̂ turned into an
        interval on the likelihood."""
        rbm = copy.deepcopy(self.rbm).cpu().double()
        x = test_x.reshape(test_x.shape[0], -1).double()
        n = int(x.shape[0])
        with torch.no_grad():
            mean_neg_f = float((-rbm.free_energy(x)).mean())
            if self.mcfg.visible == "gaussian":
                if not can_enumerate(rbm.n_hidden):
                    return LikelihoodResult("exact", None, n, reason="Gaussian-visible RBMs report exact "
                                            "likelihoods only (≤ 20 hidden units)")
                log_z = float(rbm.log_partition())
                return LikelihoodResult("exact", mean_neg_f - log_z, n, log_z=log_z)
            if method == "exact" or (method == "auto" and can_enumerate(min(rbm.n_visible, rbm.n_hidden))):
                log_z = float(rbm.log_partition())
                return LikelihoodResult("exact", mean_neg_f - log_z, n, log_z=log_z)
            data_mean = self.data_mean if self.data_mean is not None else x.mean(0)
            res, n_betas = rbm_log_z_ais(rbm, data_mean, ais_runs, schedule, ais_runner)
            return ais_report(mean_neg_f, res, n_betas, n)

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        mean = self.data_mean
        return self.rbm, GibbsSampler(init="data-mean" if mean is not None else "uniform", data_mean=mean)

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state(), "data_mean": self.data_mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = state["chains"].to(self.device)
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
        if state.get("data_mean") is not None:
            self.data_mean = state["data_mean"]
