"""Deep belief net recipe: greedy layer-wise CD training of a stack of RBMs (Hinton et al. 2006).

The engine's epochs are split into one phase per RBM (``model.epochs_per_layer`` each, the last
phase taking what is left); in phase l the data are propagated up through the trained RBMs below
as sampled binary states and RBM l is trained by CD-k. Parameters of the other RBMs get no
gradient in that phase, so the engine asks DDP to look for unused parameters.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.dbn import DBN, LayerInput
from models.samplers.base import Sampler
from models.samplers.dbn_dbm import DBNSampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from models.exact import DBN_EXACT_H1_UNITS, can_enumerate
from pipeline.recipes.likelihood import AISRunner, LikelihoodResult, ais_report, rbm_log_z_ais


@register_model_config
class DBNConfig(ModelConfig):
    family: Literal["dbn"] = "dbn"
    hidden: list[int] = Field(default_factory=lambda: [500, 1000], min_length=2,
                              description="hidden layer sizes, bottom to top")
    cd_k: int = Field(1, gt=0)
    epochs_per_layer: int | None = Field(None, gt=0, description="default: train.epochs split evenly")
    bound_samples: int = Field(10, gt=0, description="Monte Carlo samples of Q per layer for the bound")
    init_std: float = Field(0.01, gt=0)


@register_recipe
class DBNRecipe(EnergyRecipe):
    config_cls = DBNConfig
    samplers = ("dbn-ancestral",)
    trains_layerwise = True

    def build_modules(self) -> dict[str, nn.Module]:
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return {"model": DBN([self.data.dim, *self.mcfg.hidden], self.mcfg.init_std)}

    @property
    def dbn(self) -> DBN:
        return self.modules["model"]

    def layer_of(self, epoch: int) -> int:
        n = len(self.dbn.rbms)
        per = self.mcfg.epochs_per_layer or max(1, math.ceil(self.cfg.train.epochs / n))
        return min(epoch // per, n - 1)

    def init_from_data(self, train_x: Tensor) -> None:
        self.data_mean = train_x.float().mean(0)
        self.dbn.rbms[0].init_visible_bias(self.data_mean)

    def after_setup(self) -> None:
        self.gen = self.rank_generator()

    def positive(self, batch: Batch) -> LayerInput:
        layer = self.layer_of(batch.epoch)
        self._pos = LayerInput(layer, self.dbn.up(batch.x.reshape(batch.x.shape[0], -1), layer, self.gen))
        return self._pos

    def negative(self, batch: Batch) -> LayerInput:
        """CD-k chains of the current RBM, started at the positive states (``positive`` runs first)."""
        x = self._pos.x
        with torch.no_grad():
            for _ in range(self.mcfg.cd_k):
                x, _ = self.dbn.rbms[self._pos.index].gibbs_step(x, self.gen)
        return LayerInput(self._pos.index, x)

    def concat(self, pos: LayerInput, neg: LayerInput) -> LayerInput:
        return LayerInput(pos.index, torch.cat([pos.x, neg.x.detach()]))

    def train_step(self, batch: Batch) -> dict[str, float]:
        return super().train_step(batch) | {"layer": float(self.layer_of(batch.epoch))}

    @torch.no_grad()
    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        x = test_x.reshape(test_x.shape[0], -1)
        out = {}
        for l, rbm in enumerate(self.dbn.rbms):
            out[f"reconstruction_error_{l}"] = rbm.reconstruction_error(x).item()
            x = rbm.p_h(x)
        return out

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """The variational lower bound on test log p(v) (S&M 2008), top log Z exact or (``method="ais"``
        or a large top RBM) by AIS, whose log(Ẑ ± 3σ̂) interval becomes the bound's interval;
        exact log p(v) for two hidden layers when h1 and the top RBM are small enough to enumerate."""
        dbn = copy.deepcopy(self.dbn).cpu()
        x = test_x.reshape(test_x.shape[0], -1).float()
        top = dbn.top
        with torch.no_grad():
            top_input = dbn.up(x, len(dbn.rbms) - 1, torch.Generator().manual_seed(0))
            res = None
            if method != "ais" and can_enumerate(min(top.n_visible, top.n_hidden)):
                log_z = float(copy.deepcopy(top).double().log_partition())
            else:
                res, n_betas = rbm_log_z_ais(copy.deepcopy(top).double(), top_input.mean(0), ais_runs, schedule,
                                             ais_runner)
                log_z = res.log_z
            n = int(x.shape[0])
            if len(dbn.rbms) == 2 and can_enumerate(dbn.rbms[0].n_hidden, DBN_EXACT_H1_UNITS) and res is None:
                ll = float(dbn.exact_log_p(x, log_z).mean())
                return LikelihoodResult("exact", ll, n, log_z=log_z)
            gen = torch.Generator().manual_seed(0)
            bound = float(dbn.log_p_lower(x, 0, log_z, self.mcfg.bound_samples, gen).mean())
        method_name, note = "variational bound (S&M 2008)", "a lower bound on the test log-likelihood"
        if res is None:
            return LikelihoodResult(method_name, bound, n, log_z=log_z,
                                    details={"top_log_z_method": "exact", "note": note})
        # the bound moves with the top log Ẑ: its log(Ẑ ± 3σ̂) interval becomes the bound's interval
        return ais_report(bound + log_z, res, n_betas, n, method_name, top_log_z_method="ais", note=note)

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.dbn, DBNSampler()

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
