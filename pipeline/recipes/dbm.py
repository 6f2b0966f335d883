"""Deep Boltzmann machine recipe (Salakhutdinov & Hinton 2009): optional greedy pretraining with
modified RBMs, then joint training — mean-field positive phase, persistent Gibbs negative phase —
through the shared energy-based loss mean E(v, μ) − mean E(chains)."""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models import ais
from models.dbm import DBM, LayerPair
from models.samplers.base import Sampler
from models.samplers.dbn_dbm import DBMGibbsSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from models.exact import can_enumerate
from pipeline.recipes.likelihood import AISRunner, LikelihoodResult, ais_report, in_process_runner


def _dbm_ais_run(model: DBM, n_runs: int, generator: torch.Generator | None, *, betas: Tensor) -> Tensor:
    return model.ais_log_weights(betas, n_runs, generator)


@register_model_config
class DBMConfig(ModelConfig):
    family: Literal["dbm"] = "dbm"
    hidden: list[int] = Field(default_factory=lambda: [500, 1000], min_length=2)
    pretrain_epochs: int = Field(0, ge=0, description="greedy epochs per layer before joint training")
    pretrain_cd_k: int = Field(1, gt=0)
    mean_field_iterations: int = Field(10, gt=0)
    gibbs_steps: int = Field(5, gt=0, description="Gibbs sweeps of the persistent chains per update")
    persistent_chains: int | None = Field(None, gt=0, description="chains per worker; default batch share")
    bound_iterations: int = Field(30, gt=0, description="mean-field iterations for the likelihood bound")
    init_std: float = Field(0.01, gt=0)


@register_recipe
class DBMRecipe(EnergyRecipe):
    config_cls = DBMConfig
    samplers = ("dbm-gibbs",)
    trains_layerwise = True  # pretraining phases leave the other weights without gradients

    def build_modules(self) -> dict[str, nn.Module]:
        self.chains: list[Tensor] | None = None
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return {"model": DBM([self.data.dim, *self.mcfg.hidden], self.mcfg.init_std)}

    @property
    def dbm(self) -> DBM:
        return self.modules["model"]

    def pretrain_index(self, epoch: int) -> int | None:
        """Weight matrix being pretrained in ``epoch``, or None in the joint phase."""
        per = self.mcfg.pretrain_epochs
        index = epoch // per if per else None
        return index if index is not None and index < len(self.dbm.weights) else None

    def init_from_data(self, train_x: Tensor) -> None:
        p = train_x.float().mean(0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            self.dbm.biases[0].copy_(torch.log(p / (1 - p)))

    def after_setup(self) -> None:
        self.gen = self.rank_generator()

    # ------------------------------------------------------------------ the two phases
    def positive(self, batch: Batch) -> list[Tensor] | LayerPair:
        v = batch.x.reshape(batch.x.shape[0], -1)
        index = self.pretrain_index(batch.epoch)
        if index is None:
            self._pos = self.dbm.mean_field(v, self.mcfg.mean_field_iterations)
            return self._pos
        x = v
        with torch.no_grad():
            for l in range(index):
                x = torch.bernoulli(self.dbm.pretrain_up(x, l), generator=self.gen)
            self._pos = LayerPair(index, x, self.dbm.pretrain_up(x, index))
        return self._pos

    def negative(self, batch: Batch) -> list[Tensor] | LayerPair:
        if isinstance(self._pos, LayerPair):
            return self.dbm.pretrain_negative(self._pos, self.mcfg.pretrain_cd_k, self.gen)
        n = self.mcfg.persistent_chains or batch.x.shape[0]
        if self.chains is None or self.chains[0].shape[0] != n:
            self.chains = [torch.bernoulli(torch.full((n, s), 0.5, device=self.device), generator=self.gen)
                           for s in self.dbm.sizes]
        layers = self.chains
        for _ in range(self.mcfg.gibbs_steps):
            layers = self.dbm.gibbs_step(layers, self.gen)
        self.chains = layers
        return layers

    def concat(self, pos: Any, neg: Any) -> Any:
        if isinstance(pos, LayerPair):
            return LayerPair(pos.index, torch.cat([pos.x, neg.x]), torch.cat([pos.h, neg.h]))
        return [torch.cat([p, q.detach()]) for p, q in zip(pos, neg)]

    def train_step(self, batch: Batch) -> dict[str, float]:
        index = self.pretrain_index(batch.epoch)
        return super().train_step(batch) | {"pretraining_layer": -1.0 if index is None else float(index)}

    # ------------------------------------------------------------------ metrics, likelihood, sampling
    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        v = test_x.reshape(test_x.shape[0], -1)
        mu = self.dbm.mean_field(v, self.mcfg.mean_field_iterations)
        recon = ((self.dbm.p_v(mu[1]) - v) ** 2).sum(-1).mean().item()
        return {"reconstruction_error": recon, "mean_field_bound_unnormalised": float(self.dbm.mean_field_bound(v).mean())}

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Exact test log-likelihood when the odd layers total ≤ 20 units; otherwise AIS log Ẑ (odd layers,
        even ones summed out) and the mean-field lower bound, as Salakhutdinov & Hinton report."""
        dbm = copy.deepcopy(self.dbm).cpu().double()
        v = test_x.reshape(test_x.shape[0], -1).double()
        n = int(v.shape[0])
        with torch.no_grad():
            if method != "ais" and can_enumerate(sum(dbm.odd_sizes())):
                log_z = float(dbm.log_partition())
                ll = float(dbm.log_unnormalized_visible(v).mean()) - log_z
                return LikelihoodResult("exact", ll, n, log_z=log_z)
            betas = ais.schedule(schedule)
            run = functools.partial(_dbm_ais_run, betas=betas)
            log_w = (ais_runner or in_process_runner())(dbm, run, ais_runs)
            res = ais.combine_log_weights(log_w, dbm.base_log_z())
            bound = float(dbm.mean_field_bound(v, self.mcfg.bound_iterations).mean())
        return ais_report(bound, res, len(betas), n, "ais + mean-field bound",
                          note="log_likelihood is the mean-field lower bound minus the AIS log Ẑ")

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.dbm, DBMGibbsSampler()

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = [c.to(self.device) for c in state["chains"]]
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
