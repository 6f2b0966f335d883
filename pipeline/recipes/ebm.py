"""Deep EBM recipe: contrastive divergence with Langevin negatives (Du & Mordatch 2019, replay
buffer; Nijkamp et al. 2019, short-run chains from noise), an energy-magnitude regulariser and a
divergence guard that the engine drives (restore the last good checkpoint, reseed, lower the lr)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from models.ais import combine_log_weights
from models.ebm import build_energy
from models.ebm_ais import GaussianBase, ais_run, linear_betas, pilot_steps
from models.quadrature import Box, GridDensity, grid_density, log_likelihood
from models.replay_buffer import ReplayBuffer
from models.samplers.base import Sampler
from models.samplers.hmc import HMCSampler
from models.samplers.langevin import LangevinSampler, MALASampler
from pipeline.config import ModelConfig, SampleConfig, register_model_config
from pipeline.errors import ConfigError
from pipeline.lr_schedule import rescale_base_lr
from pipeline.recipes.base import Batch, register_recipe
from pipeline.recipes.energy import EnergyRecipe
from pipeline.recipes.likelihood import AISRunner, LikelihoodResult, ais_report, in_process_runner


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
    mcmc_step_size: float = Field(1e-3, gt=0, description="initial step of the mala/hmc samplers (adapted "
                                  "during sample.burn_in; not the training step_size)")
    mala_target_accept: float = Field(0.574, gt=0, lt=1)
    hmc_target_accept: float = Field(0.65, gt=0, lt=1)
    hmc_leapfrog_steps: int = Field(10, gt=0)
    grid_points: int = Field(512, ge=4, multiple_of=2, description="2-D energies: n×n quadrature grid for "
                             "exact log Z, log-likelihood and KL")
    ais_betas: int = Field(500, ge=2, description="βs of EBM AIS when evaluate.ais_schedule is not linear:N")

    def check_sample(self, sample: SampleConfig) -> str | None:
        if sample.init == "buffer" and not self.buffer_size:
            return ("sample.init='buffer': this model has no replay buffer (model.buffer_size=0, short-run "
                    "training from noise); use sample.init=noise or data")
        return None


@register_recipe
class EBMRecipe(EnergyRecipe):
    config_cls = EBMConfig
    samplers = ("langevin", "long-run", "mala", "hmc")

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

    def langevin(self, starts: Tensor | None = None, init: str = "noise") -> LangevinSampler:
        m = self.mcfg
        lo, hi = self.data.value_range
        bounded = len(self.data.shape) == 3
        return LangevinSampler(tuple(self.data.shape), m.step_size, m.noise_std,
                               clamp=(lo, hi) if bounded else None, init_range=(lo, hi),
                               grad_clip=m.langevin_grad_clip, starts=starts, init_kind=init)

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

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        metrics = super().train_step(batch)
        # the guard's input, checked by the engine at its read-back (no host sync per step)
        metrics["energy_magnitude"] = torch.maximum(metrics["energy_pos"].abs(), metrics["energy_neg"].abs())
        return metrics

    def metric_limits(self) -> dict[str, tuple[float, str]]:
        """The divergence guard: |mean E| over ``model.max_energy_magnitude`` on any step stops every
        worker at the engine's next read-back (after that step's optimiser update, so DDP-safe); a
        non-finite loss is caught by the engine's own check on the same read-back."""
        return super().metric_limits() | {"energy_magnitude": (self.mcfg.max_energy_magnitude,
                                                               "model.max_energy_magnitude")}

    def guard_max_restarts(self) -> int:
        return self.mcfg.guard_max_restarts

    def on_divergence_restart(self, attempt: int) -> None:
        """After the engine restored the last good checkpoint: lower the lr and reseed the chains."""
        factor = self.mcfg.guard_lr_factor ** attempt
        lrs = iter(self.base_lrs or [])
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                rescale_base_lr(group, next(lrs, group["lr"]) * factor)
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

    def default_init(self) -> str:
        """How training started its chains: from the replay buffer when it had one, else from noise."""
        return "buffer" if self.buffer is not None else "noise"

    def sampler(self, name: str | None = None, init: str | None = None,
                data: Tensor | None = None) -> tuple[nn.Module, Sampler]:
        """``None``/"langevin": the training chains' dynamics; "long-run": the same dynamics meant
        for many more steps (a diagnostic: short-run chains can look good while E is wrong);
        "mala"/"hmc": Metropolis-adjusted samplers with their own step, adapted during burn-in.

        Chains start per ``init`` (default :meth:`default_init`): rows of the replay buffer written by
        training, uniform noise on the data range, or rows of ``data`` (training points)."""
        init = init or self.default_init()
        model = self.modules["model"].eval()
        starts = self._starts(init, data)
        m, shape, (lo, hi) = self.mcfg, tuple(self.data.shape), self.data.value_range
        if name == "mala":
            return model, MALASampler(shape, m.mcmc_step_size, (lo, hi), m.mala_target_accept, 0, starts, init)
        if name == "hmc":
            return model, HMCSampler(shape, m.mcmc_step_size, m.hmc_leapfrog_steps, (lo, hi), m.hmc_target_accept,
                                     0, starts, init)
        self.check_sampler(name)
        return model, self.langevin(starts, init)

    def _starts(self, init: str, data: Tensor | None) -> Tensor | None:
        if init == "noise":
            return None
        if init == "buffer":
            if self.buffer is None:
                raise ConfigError("sample.init='buffer': this model has no replay buffer (model.buffer_size=0); "
                                  "use sample.init=noise or data")
            return self.buffer.filled()
        if init == "data":
            if data is None or len(data) == 0:
                raise ConfigError("sample.init='data' needs training points; the sampling stage passes them")
            return data.reshape(len(data), *self.data.shape).float()
        raise ConfigError(f"sample.init={init!r} is not one of buffer, noise, data")

    # ------------------------------------------------------------------ likelihoods
    def density_grid(self) -> GridDensity:
        """exp(−E)/Z on an n×n grid over the data range grown by 25% per side (2-D data only)."""
        if tuple(self.data.shape) != (2,):
            raise ValueError(f"density_grid needs 2-D data, got shape {tuple(self.data.shape)}")
        if getattr(self, "_grid", None) is None:
            self._grid = grid_density(self.modules["model"].eval(), Box.covering(*self.data.value_range),
                                      self.mcfg.grid_points)
        return self._grid

    @torch.no_grad()
    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: AISRunner | None = None) -> LikelihoodResult:
        """Mean test log-likelihood: exact by grid quadrature for 2-D energies (``auto``/``exact``),
        else AIS from a Gaussian fitted to the test points (any normalised base keeps E[w] = Z)."""
        x = test_x.reshape(len(test_x), *self.data.shape).float()
        two_d = tuple(self.data.shape) == (2,)
        if two_d and method in ("auto", "exact"):
            return self._grid_likelihood(x)
        if method == "exact":
            return LikelihoodResult("exact", None, len(x), reason="exact log Z needs a 2-D energy (grid "
                                    "quadrature); use evaluate.likelihood=ais")
        return self._ais_likelihood(x, ais_runs, schedule, ais_runner)

    def _grid_likelihood(self, x: Tensor) -> LikelihoodResult:
        grid = self.density_grid()
        ll = log_likelihood(self.modules["model"].eval(), x, grid)
        b = grid.box
        return LikelihoodResult(f"grid quadrature ({len(grid.xs)}×{len(grid.ys)})", float(ll.mean()), len(x),
                                log_z=grid.log_z, details={
                                    "quadrature_error": grid.quadrature_error, "outside_box": int((~b.contains(x)).sum()),
                                    "note": f"log Z ± {grid.quadrature_error:.1e} on [{b.x0:.2f}, {b.x1:.2f}]²"})

    def _ais_likelihood(self, x: Tensor, runs: int, schedule: str, runner: AISRunner | None) -> LikelihoodResult:
        model = self.modules["model"].eval()
        n_betas = int(schedule.split(":", 1)[1]) if schedule.startswith("linear:") else self.mcfg.ais_betas
        betas = linear_betas(n_betas)
        base = GaussianBase.fit(x)
        two_d = tuple(self.data.shape) == (2,)
        support = self.density_grid().box.contains if two_d else None  # 2-D: the grid's Z_B
        steps = pilot_steps(model, base, betas, h0=self.mcfg.mcmc_step_size, support=support,
                            generator=torch.Generator().manual_seed(self.cfg.evaluate.seed))
        run = functools.partial(ais_run, base=base, betas=betas, steps=steps, support=support)
        res = combine_log_weights((runner or in_process_runner(self.cfg.evaluate.seed))(model, run, runs), 0.0)
        mean_log_p_star = float((-model(x).double()).mean())
        details: dict[str, Any] = {}
        if two_d:  # exact draws exist: the reverse bound and the grid beside
            grid = self.density_grid()
            rev = functools.partial(ais_run, base=base, betas=betas.flip(0), steps=steps.flip(0),
                                    start=_grid_start(grid), support=support)
            log_w = (runner or in_process_runner(self.cfg.evaluate.seed + 1))(model, rev, runs)
            log_z_rev = -combine_log_weights(log_w, 0.0).log_z
            details = {"log_z_reverse": log_z_rev, "log_likelihood_reverse": mean_log_p_star - log_z_rev,
                       "log_z_grid": grid.log_z,
                       "note": f"log Ẑ {res.log_z:.3f} (forward) ≤ {log_z_rev:.3f} (reverse); grid {grid.log_z:.3f}"}
        return ais_report(mean_log_p_star, res, n_betas, len(x), method="ais (Gaussian base, MALA transitions)",
                          **details)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict() if self.buffer is not None else None,
                "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])
        if state.get("gen") is not None:
            self.gen.set_state(state["gen"])


def _grid_start(grid: GridDensity):
    """Exact draws of the grid density as a ``start(n, generator)`` for reverse AIS runs."""
    return functools.partial(_grid_draws, grid)


def _grid_draws(grid: GridDensity, n: int, generator: torch.Generator | None) -> Tensor:
    return grid.sample(n, generator).float()
