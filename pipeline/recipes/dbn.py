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
from pipeline.recipes.likelihood import (AISRunner, LikelihoodResult, ais_report, binary_data_refusal, exact_report,
                                         rbm_log_z_ais, rbm_raise, sandwich, unavailable, with_sandwich)


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

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
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
        """Exact log p(v) for two hidden layers when h1 (≤ 16) and the top RBM are small enough to
        enumerate; otherwise the variational lower bound on test log p(v) (S&M 2008) with the top log Z
        exact (small top RBM) or, for ``method="ais"`` or a large top, as a sandwich: forward AIS of the
        top log Z (log(Ẑ ± 3σ̂) becomes the bound's interval) beside RAISE of the top RBM from the
        test data's top-level states (Burda et al. 2015)."""
        dbn = copy.deepcopy(self.dbn).cpu()
        x = test_x.reshape(test_x.shape[0], -1).float()
        top, n = dbn.top, int(x.shape[0])
        if why := binary_data_refusal(self.data, "DBN"):
            return unavailable(method, n, why)
        top_small = min(top.n_visible, top.n_hidden) <= 20
        exact_ok = len(dbn.rbms) == 2 and dbn.rbms[0].n_hidden <= 16 and top_small
        if method == "exact" and not exact_ok:
            return unavailable("exact", n, "evaluate.likelihood=exact needs a DBN with two hidden layers, h1 of "
                                           "at most 16 units and a top RBM whose smaller layer has at most 20; "
                                           "use evaluate.likelihood=auto or ais")
        with torch.no_grad():
            top_input = dbn.up(x, len(dbn.rbms) - 1, torch.Generator().manual_seed(0))
            res = None
            if method != "ais" and top_small:
                log_z = float(copy.deepcopy(top).double().log_partition())
            else:
                res, n_betas = rbm_log_z_ais(copy.deepcopy(top).double(), top_input.mean(0), ais_runs, schedule,
                                             ais_runner)
                log_z = res.log_z
            if exact_ok and res is None:
                return exact_report(log_z, float(dbn.exact_log_p(x, log_z).mean()), n)
            gen = torch.Generator().manual_seed(0)
            bound = float(dbn.log_p_lower(x, 0, log_z, self.mcfg.bound_samples, gen).mean())
            if res is not None:
                rev = rbm_raise(copy.deepcopy(top).double(), top_input.mean(0), top_input, ais_runs, schedule,
                                ais_runner)
        method_name, note = "variational bound (S&M 2008)", "a lower bound on the test log-likelihood"
        if res is None:  # exact top log Z: nothing to anneal, both sides are the bound
            return LikelihoodResult(method_name, bound, n, log_z=log_z,
                                    details={"top_log_z_method": "exact", "note": note,
                                             "forward_log_likelihood": bound, "reverse_log_likelihood": bound,
                                             "gap": 0.0, "forward_runs": 0, "reverse_runs": 0})
        # the bound moves with the top log Ẑ: its log(Ẑ ± 3σ̂) interval becomes the bound's interval;
        # the reverse side replaces −F(h) − log Ẑ by the top RBM's RAISE estimate of log p(h)
        out = ais_report(bound + log_z, res, n_betas, n, method_name, top_log_z_method="ais", note=note)
        return with_sandwich(out, sandwich(bound, bound + log_z, rev, res.n_runs))

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.dbn, DBNSampler()

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
