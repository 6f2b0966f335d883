"""RBM recipe: CD-k (Hinton 2002) and persistent CD (Tieleman 2008) on the shared engine."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from models.rbm import RBM, CenteredRBM, GaussianRBM
from models.samplers.base import ChainState, Sampler
from models.samplers.gibbs import GibbsSampler
from models.samplers.tempering import ParallelTemperingSampler, pt_state_dict, pt_state_from_dict
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from models.exact import AUTO_EXACT_UNITS, MAX_ENUMERATED_UNITS
from models.bernoulli import bernoulli
from pipeline.recipes.likelihood import (AISRunner, LikelihoodResult, ais_report, binary_data_refusal, exact_refusal,
                                         exact_report, rbm_log_z_ais, rbm_raise, sandwich, unavailable, with_sandwich)

AUTO_EXACT_LIMIT = AUTO_EXACT_UNITS  # auto enumerates up to 2^20 states; exact is asked for up to the hard limit
EXACT_LIMIT = MAX_ENUMERATED_UNITS


@register_model_config
class RBMConfig(ModelConfig):
    family: Literal["rbm"] = "rbm"
    n_hidden: int = Field(500, gt=0)
    cd_k: int = Field(1, gt=0, description="Gibbs sweeps per negative phase")
    persistent: bool = Field(False, description="persistent CD (Tieleman 2008): chains survive updates")
    persistent_chains: int | None = Field(None, gt=0, description="chains per worker; default: the first "
                                          "batch's share, fixed for the run")
    negative: Literal["gibbs", "mean-field", "pt"] = Field(
        "gibbs", description="mean-field uses probabilities instead of samples (deterministic); pt = parallel "
                             "tempering over persistent replicas (PT-PCD, Desjardins et al. 2010)")
    pt_temperatures: int = Field(10, ge=2, description="replicas per chain of negative=pt (β evenly in [0, 1]); "
                                 "also the ladder of the pt sampler")
    visible: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli", description="gaussian = unit-variance Gaussian visible units for real-valued data")
    centering: bool = Field(False, description="centred RBM (Melchior et al. 2016): offsets μ = data mean, "
                            "λ = sliding mean of p(h | v) on the data")
    centering_rate: float = Field(0.01, gt=0, le=1, description="sliding-average rate of the hidden offset λ")
    init_visible_bias_from_data: bool = True
    init_std: float = Field(0.01, gt=0)

    @model_validator(mode="after")
    def _pt_needs_binary_units(self) -> RBMConfig:
        if self.centering and self.visible == "gaussian":
            raise ValueError("model.centering=true is implemented for Bernoulli visible units; set "
                             "model.centering=false with model.visible=gaussian")
        if self.negative == "pt" and self.visible == "gaussian":
            raise ValueError("model.negative=pt is implemented for Bernoulli visible units; use model.negative=gibbs "
                             "with model.visible=gaussian")
        return self


@register_recipe
class RBMRecipe(EnergyRecipe):
    config_cls = RBMConfig
    samplers = ("gibbs", "pt")

    def build_modules(self) -> dict[str, nn.Module]:
        self.chains: Tensor | None = None
        self.pt_state: ChainState | None = None  # replicas of negative=pt
        self.data_mean: Tensor | None = None
        self.gen = torch.Generator().manual_seed(self.cfg.train.seed)
        cls = GaussianRBM if self.mcfg.visible == "gaussian" else CenteredRBM if self.mcfg.centering else RBM
        return {"model": cls(self.data.dim, self.mcfg.n_hidden, self.mcfg.init_std)}

    @property
    def rbm(self) -> RBM:
        return self.modules["model"]

    def init_from_data(self, train_x: Tensor) -> None:
        self.data_mean = train_x.float().mean(0)
        if self.mcfg.init_visible_bias_from_data:
            self.rbm.init_visible_bias(self.data_mean)
        if self.mcfg.centering:  # μ = the data mean (the same on every worker: the whole train split)
            self.rbm.move_offsets(mu=self.data_mean.to(self.rbm.W.dtype))

    def plain_rbm(self) -> RBM:
        """The model as a plain RBM (the centred one re-parameterised): what AIS, RAISE and PT read."""
        return self.rbm.uncentred() if isinstance(self.rbm, CenteredRBM) else self.rbm

    def after_setup(self) -> None:
        self.gen = self.rank_generator()

    # --------------------------------------------------------------- the energy-based update
    def positive(self, batch: Batch) -> Tensor:
        v = batch.x.reshape(batch.x.shape[0], -1)
        if self.mcfg.centering:
            self._slide_hidden_offset(v)
        return v

    @torch.no_grad()
    def _slide_hidden_offset(self, v: Tensor) -> None:
        """λ ← (1 − ν) λ + ν ⟨p(h | v)⟩_data (Melchior et al. 2016, Alg. 1), averaged over the workers
        first so that every replica re-parameterises identically; the distribution does not move."""
        mean = self.rbm.p_h(v).mean(0)
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            mean = self.accelerator.reduce(mean, reduction="mean")
        nu = self.mcfg.centering_rate
        self.rbm.move_offsets(lam=(1 - nu) * self.rbm.lam + nu * mean)

    def negative(self, batch: Batch) -> Tensor:
        if self.mcfg.negative == "pt":
            return self._tempered_negative(batch)
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

    @torch.no_grad()
    def _tempered_negative(self, batch: Batch) -> Tensor:
        """PT-PCD: persistent replicas at ``pt_temperatures`` inverse temperatures, ``cd_k`` sweeps and
        swap rounds per update; the β = 1 replicas are the negatives (Desjardins et al. 2010)."""
        sampler, model = ParallelTemperingSampler(self.mcfg.pt_temperatures), self.plain_rbm()
        if self.pt_state is None:  # sized once, like the persistent chains
            self.pt_state = sampler.init(model, self.mcfg.persistent_chains or batch.x.shape[0], self.gen)
        self.pt_state = sampler.step(model, self.pt_state, self.mcfg.cd_k, self.gen)
        self.chains = self.pt_state.layers[0]
        return self.chains

    # --------------------------------------------------------------- the CD gradient in closed form
    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        """For a plain Bernoulli RBM the gradient of mean F(v+) − mean F(v−) is known in closed form
        (−⟨v hᵀ⟩_data + ⟨v hᵀ⟩_model with h replaced by p(h | v)), so no autograd graph is built and
        p(h | v+) is computed once, for both the positive statistics and CD's first sweep: the five
        GEMMs of a hand-written CD loop. Other variants (centred, Gaussian visible units, gradient
        accumulation) take the generic autograd path of :class:`EnergyRecipe`, which has the same
        gradient (tests/pipeline/test_rbm_closed_form.py checks the two agree)."""
        if type(self.rbm) is not RBM or not self.closed_form_allowed():
            return super().train_step(batch)
        rbm = self.rbm
        gW, gb, gc = self.gradient_views("model", [rbm.W, rbm.b, rbm.c])
        with torch.no_grad():
            v0 = batch.x.reshape(batch.x.shape[0], -1)
            a0 = torch.addmm(rbm.c, v0, rbm.W)  # pre-activations of p(h | v+)
            ph0 = torch.sigmoid(a0)
            v1 = self._closed_form_negative(batch, ph0)
            a1 = torch.addmm(rbm.c, v1, rbm.W)
            ph1 = torch.sigmoid(a1)
            n0, n1 = v0.shape[0], v1.shape[0]
            # −⟨v hᵀ⟩_data + ⟨v hᵀ⟩_model written in place: GEMM's own β scales the first product
            torch.mm(v1.T, ph1, out=gW).addmm_(v0.T, ph0, beta=1.0 / n1, alpha=-1.0 / n0)
            torch.sub(v1.mean(0), v0.mean(0), out=gb)
            torch.sub(ph1.mean(0), ph0.mean(0), out=gc)
            # the free energies are diagnostics the update does not need: logging steps only, so
            # their epoch means are means over those steps (every log_every-th and the epoch's last)
            metrics: dict[str, Tensor | float] = {}
            if batch.log:
                e_pos = (-(v0 @ rbm.b) - F.softplus(a0).sum(-1)).mean()
                e_neg = (-(v1 @ rbm.b) - F.softplus(a1).sum(-1)).mean()
                metrics = {"loss": e_pos - e_neg, "energy_pos": e_pos, "energy_neg": e_neg}
        self.apply_gradients("model", batch)
        return metrics

    def _closed_form_negative(self, batch: Batch, ph0: Tensor) -> Tensor:
        """The negative states; plain CD-k's first sweep starts from the p(h | v+) already computed."""
        if self.mcfg.persistent or self.mcfg.negative != "gibbs":
            return self.negative(batch)
        v = bernoulli(self.rbm.p_v(bernoulli(ph0, generator=self.gen)), generator=self.gen)
        for _ in range(self.mcfg.cd_k - 1):
            v = self._sweep(v)
        return v

    def _sweep(self, v: Tensor) -> Tensor:
        if self.mcfg.negative == "mean-field":
            return self.rbm.p_v(self.rbm.p_h(v))
        return self.rbm.gibbs_step(v, self.gen)[0]

    def _persistent_start(self, batch: Batch) -> Tensor:
        """The persistent chains, sized once (``persistent_chains`` or the first batch's share) and
        never re-initialised: a short last batch must not reset them (Tieleman 2008 keeps them
        across the whole run). The loss averages F over the chains, so their count need not match
        the batch."""
        if self.chains is None:
            n = self.mcfg.persistent_chains or batch.x.shape[0]
            self.chains = bernoulli(torch.full((n, self.rbm.n_visible), 0.5, device=self.device),
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
        if self.pt_state is not None:  # swap acceptance of the PT negative phase, over the run so far
            rates = ParallelTemperingSampler.swap_rates(self.pt_state)
            out |= {"pt_swap_rate_min": float(rates.min()), "pt_swap_rate_mean": float(rates.mean())}
        return out

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Mean test log-likelihood in nats: exact when the smaller layer has ≤ 20 units (``auto``) or
        ≤ 25 (``exact``), else the sandwich of forward AIS (Salakhutdinov & Murray 2008; log Ẑ ± 3σ̂
        turned into bounds) and RAISE (Burda et al. 2015) along the same path."""
        rbm = copy.deepcopy(self.plain_rbm()).cpu().double()
        x = test_x.reshape(test_x.shape[0], -1).double()
        n, small = int(x.shape[0]), min(rbm.n_visible, rbm.n_hidden)
        if self.mcfg.visible == "bernoulli" and (why := binary_data_refusal(self.data, "Bernoulli RBM")):
            return unavailable(method, n, why)
        with torch.no_grad():
            mean_neg_f = float((-rbm.free_energy(x)).mean())
            if self.mcfg.visible == "gaussian":
                if rbm.n_hidden > 20:
                    return unavailable("exact", n, "Gaussian-visible RBMs report exact likelihoods only "
                                                   "(≤ 20 hidden units)")
                log_z = float(rbm.log_partition())
                return exact_report(log_z, mean_neg_f - log_z, n)
            if method == "exact" and small > EXACT_LIMIT:
                return unavailable("exact", n, exact_refusal("the smaller RBM layer", small, EXACT_LIMIT))
            if method == "exact" or (method == "auto" and small <= AUTO_EXACT_LIMIT):
                log_z = float(rbm.log_partition())
                return exact_report(log_z, mean_neg_f - log_z, n)
            data_mean = self.data_mean if self.data_mean is not None else x.mean(0)
            res, n_betas = rbm_log_z_ais(rbm, data_mean, ais_runs, schedule, ais_runner)
            out = ais_report(mean_neg_f, res, n_betas, n)
            rev = rbm_raise(rbm, data_mean, x, ais_runs, schedule, ais_runner)
        return with_sandwich(out, sandwich(out.log_likelihood, mean_neg_f, rev, res.n_runs))

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        if name == "pt":
            if self.mcfg.visible == "gaussian":
                raise ValueError("sample.sampler=pt is implemented for Bernoulli RBMs; use sample.sampler=gibbs")
            return self.plain_rbm(), ParallelTemperingSampler(self.mcfg.pt_temperatures)
        mean = self.data_mean
        # Samples in the data's space: binary draws for Bernoulli visible units, as the (binary) test
        # images are (their p(v | h) would be grey images no real example looks like: demo FID 263 ->
        # 148 vs a floor of 44, measured); the mean for Gaussian visible units.
        output = "sample" if self.mcfg.visible == "bernoulli" else "mean"
        return self.plain_rbm(), GibbsSampler(init="data-mean" if mean is not None else "uniform", data_mean=mean,
                                              output=output)

    def state_dict(self) -> dict[str, Any]:
        return {"chains": self.chains, "gen": self.gen.get_state(),
                "data_mean": self.data_mean, "pt": pt_state_dict(self.pt_state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("chains") is not None:
            self.chains = state["chains"].to(self.device)
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])
        if state.get("data_mean") is not None:
            self.data_mean = state["data_mean"]
        if state.get("pt") is not None:
            self.pt_state = pt_state_from_dict(self.rbm, state["pt"], self.device)
