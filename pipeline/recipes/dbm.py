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
from models.dbm import DBM, CenteredDBM, LayerPair
from models.samplers.base import Sampler
from models.samplers.tempering import ParallelTemperingSampler
from models.samplers.dbn_dbm import DBMGibbsSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from models.bernoulli import bernoulli
from pipeline.recipes.likelihood import (AISRunner, LikelihoodResult, ais_report, binary_data_refusal, exact_refusal,
                                         exact_report, in_process_runner, sandwich, unavailable, with_sandwich)


def _dbm_ais_run(model: DBM, n_runs: int, generator: torch.Generator | None, *, betas: Tensor) -> Tensor:
    return model.ais_log_weights(betas, n_runs, generator)


def _dbm_raise_run(model: DBM, n_runs: int, generator: torch.Generator | None, *, betas: Tensor, data: Tensor,
                   samples: int, iterations: int) -> Tensor:
    """RAISE runs from random test rows, ``samples`` reverse chains each (log-mean-exp per row), minus
    the row's mean-field bound (the control variate whose exact test mean the driver adds back)."""
    generator = ais.reverse_stream(generator)
    v = ais.pick_rows(data, n_runs, generator).double()
    log_w = model.raise_log_weights(v.repeat_interleave(samples, 0), betas, generator, iterations)
    return ais.log_mean_exp_groups(log_w, samples) - model.mean_field_bound(v, iterations)


@register_model_config
class DBMConfig(ModelConfig):
    family: Literal["dbm"] = "dbm"
    hidden: list[int] = Field(default_factory=lambda: [500, 1000], min_length=2)
    pretrain_epochs: int = Field(0, ge=0, description="greedy epochs per layer before joint training")
    pretrain_cd_k: int = Field(1, gt=0)
    mean_field_iterations: int = Field(10, gt=0)
    gibbs_steps: int = Field(5, gt=0, description="Gibbs sweeps of the persistent chains per update")
    persistent_chains: int | None = Field(None, gt=0, description="chains per worker; default: the first "
                                          "batch's share, fixed for the run")
    bound_iterations: int = Field(30, gt=0, description="mean-field iterations for the likelihood bound")
    posterior_samples: int = Field(1, gt=0, description="draws from the mean-field posterior per test point: "
                                   "importance samples of log p*(v) (forward side) and reverse chains per RAISE run")
    centering: bool = Field(False, description="centred DBM (Melchior et al. 2016) in the joint phase: offsets "
                            "= sliding means of the data and of the mean-field posteriors")
    centering_rate: float = Field(0.01, gt=0, le=1, description="sliding-average rate of the offsets")
    init_std: float = Field(0.01, gt=0)


@register_recipe
class DBMRecipe(EnergyRecipe):
    config_cls = DBMConfig
    samplers = ("dbm-gibbs", "pt")
    trains_layerwise = True  # pretraining phases leave the other weights without gradients

    def build_modules(self) -> dict[str, nn.Module]:
        self.chains: list[Tensor] | None = None
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        cls = CenteredDBM if self.mcfg.centering else DBM
        return {"model": cls([self.data.dim, *self.mcfg.hidden], self.mcfg.init_std)}

    @property
    def dbm(self) -> DBM:
        return self.modules["model"]

    def plain_dbm(self) -> DBM:
        """The model as a plain DBM (a centred one re-parameterised): what AIS, RAISE and PT read."""
        return self.dbm.uncentred() if isinstance(self.dbm, CenteredDBM) else self.dbm

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
            if self.mcfg.centering:
                self._slide_offsets(self._pos)
            return self._pos
        x = v
        with torch.no_grad():
            for l in range(index):
                x = bernoulli(self.dbm.pretrain_up(x, l), generator=self.gen)
            self._pos = LayerPair(index, x, self.dbm.pretrain_up(x, index))
        return self._pos

    @torch.no_grad()
    def _slide_offsets(self, mean_field: list[Tensor]) -> None:
        """μ_l ← (1 − ν) μ_l + ν ⟨x_l⟩ over the batch's data and mean-field posteriors (Melchior et al.
        2016), averaged over the workers first so that every replica re-parameterises identically.
        The offsets are zero through greedy pretraining; the first joint step sets them outright.
        Moving them leaves the distribution (and the mean-field fixed point) unchanged."""
        means = [m.mean(0) for m in mean_field]
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            means = [self.accelerator.reduce(m, reduction="mean") for m in means]
        offsets = [self.dbm.offset(l) for l in range(len(means))]
        nu = self.mcfg.centering_rate if any(bool(o.any()) for o in offsets) else 1.0
        self.dbm.move_offsets([(1 - nu) * o + nu * m for o, m in zip(offsets, means)])

    def negative(self, batch: Batch) -> list[Tensor] | LayerPair:
        if isinstance(self._pos, LayerPair):
            return self.dbm.pretrain_negative(self._pos, self.mcfg.pretrain_cd_k, self.gen)
        if self.chains is None:  # sized once, never reset by a short batch (as the RBM's chains)
            n = self.mcfg.persistent_chains or batch.x.shape[0]
            self.chains = [bernoulli(torch.full((n, s), 0.5, device=self.device), generator=self.gen)
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

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        index = self.pretrain_index(batch.epoch)
        return super().train_step(batch) | {"pretraining_layer": -1.0 if index is None else float(index)}

    # ------------------------------------------------------------------ metrics, likelihood, sampling
    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        v = test_x.reshape(test_x.shape[0], -1)
        mu = self.dbm.mean_field(v, self.mcfg.mean_field_iterations)
        recon = ((self.dbm.p_v(mu[1]) - v) ** 2).sum(-1).mean().item()
        bound = float(self.plain_dbm().mean_field_bound(v).mean())  # plain: a centred E is shifted by a constant
        return {"reconstruction_error": recon, "mean_field_bound_unnormalised": bound}

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Exact test log-likelihood when the odd layers total ≤ 20 units; otherwise the mean-field lower
        bound minus the AIS log Ẑ (odd layers, even ones summed out), as Salakhutdinov & Hinton report,
        beside a sandwich that shares one proposal Q(odd | v) (mean field): forward = importance-sampled
        log p*(v) − AIS log Ẑ, reverse = RAISE from Q's draws (Burda et al. 2015)."""
        dbm = copy.deepcopy(self.plain_dbm()).cpu().double()
        v = test_x.reshape(test_x.shape[0], -1).double()
        n, odd_units = int(v.shape[0]), sum(dbm.odd_sizes())
        if why := binary_data_refusal(self.data, "DBM"):
            return unavailable(method, n, why)
        if method == "exact" and odd_units > 20:
            return unavailable("exact", n, exact_refusal("the odd layers", odd_units, 20))
        m, iters = self.mcfg.posterior_samples, self.mcfg.bound_iterations
        with torch.no_grad():
            if method != "ais" and odd_units <= 20:
                log_z = float(dbm.log_partition())
                return exact_report(log_z, float(dbm.log_unnormalized_visible(v).mean()) - log_z, n)
            betas = ais.schedule(schedule)
            runner = ais_runner or in_process_runner()
            res = ais.combine_log_weights(runner(dbm, functools.partial(_dbm_ais_run, betas=betas), ais_runs),
                                          dbm.base_log_z())
            bound = float(dbm.mean_field_bound(v, iters).mean())
            is_log_f = float(dbm.importance_log_f(v, m, torch.Generator().manual_seed(0), iters).mean())
            run = functools.partial(_dbm_raise_run, betas=betas, data=v.to(torch.uint8), samples=m, iterations=iters)
            rev = ais.combine_reverse(runner(dbm, run, ais_runs))
        out = ais_report(bound, res, len(betas), n, "ais + mean-field bound", posterior_samples=m,
                         note="log_likelihood is the mean-field lower bound minus the AIS log Ẑ; forward/reverse "
                              "share the mean-field proposal over the odd layers")
        return with_sandwich(out, sandwich(is_log_f - res.log_z, bound, rev, res.n_runs))

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        if name == "pt":  # replica exchange over 10 evenly spaced inverse temperatures in [0, 1]
            return self.plain_dbm(), ParallelTemperingSampler(10)
        return self.plain_dbm(), DBMGibbsSampler()

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = [c.to(self.device) for c in state["chains"]]
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
