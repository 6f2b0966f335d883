"""What the Boltzmann-family recipes share to report likelihoods in one typed format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor, nn

from models import ais
from models.ais import AISResult

# ais_runner(model, run_fn, n_runs) -> raw log-weights; run_fn(model, n, generator) -> (n,) log-weights.
AISRunner = Callable[[nn.Module, Callable[..., Tensor], int], Tensor]


@dataclass
class LikelihoodResult:
    """A mean test log-likelihood in nats and how it was obtained.

    ``method`` names the estimator (exact, ais, a bound...); ``log_likelihood`` is None when the
    family or size has none (``reason`` says why). ``lower``/``upper`` bound the likelihood (for
    AIS: from log(Ẑ ± 3σ̂), Salakhutdinov & Murray 2008), ``runs`` counts AIS runs, ``details``
    holds further numbers or notes a report may show (ESS, number of βs, ...).
    """

    method: str
    log_likelihood: float | None
    test_examples: int
    log_z: float | None = None
    lower: float | None = None
    upper: float | None = None
    runs: int | None = None
    reason: str = ""
    details: dict[str, float | int | str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LikelihoodResult:
        return cls(**d)

    def note(self) -> str:
        """One line for tables: the interval and log Z, or why there is no number."""
        if self.log_likelihood is None:
            return self.reason
        parts = []
        if self.lower is not None and self.upper is not None:
            parts.append(f"interval [{self.lower:.2f}, {self.upper:.2f}]")
        if self.log_z is not None:
            parts.append(f"log Z {self.log_z:.2f}")
        if self.runs:
            parts.append(f"{self.runs} AIS runs")
        if "note" in self.details:
            parts.append(str(self.details["note"]))
        return ", ".join(parts)


def in_process_runner(seed: int = 0) -> AISRunner:
    """Seeded blocks of runs in this process (the evaluation stage passes a Ray-parallel one)."""
    from pipeline.fanout import parallel_ais

    return functools.partial(parallel_ais, workers=0, seed=seed)


def ais_report(mean_log_p_star: float, res: AISResult, n_betas: int, test_examples: int,
               method: str = "ais", **details: float | int | str) -> LikelihoodResult:
    """Test log-likelihood mean(log p*(v)) − log Ẑ with the interval implied by log(Ẑ ± 3σ̂)."""
    return LikelihoodResult(method, mean_log_p_star - res.log_z, test_examples, log_z=res.log_z,
                            lower=mean_log_p_star - res.log_z_upper, upper=mean_log_p_star - res.log_z_lower,
                            runs=res.n_runs, details={"ais_betas": n_betas, "ais_weight_ess": res.ess,
                                                      "log_z_lower": res.log_z_lower,
                                                      "log_z_upper": res.log_z_upper, **details})


def rbm_log_z_ais(rbm: nn.Module, data_mean: Tensor, ais_runs: int, schedule: str,
                  ais_runner: AISRunner | None = None) -> tuple[AISResult, int]:
    """AIS log Ẑ of a Bernoulli RBM (Salakhutdinov & Murray 2008): the base-rate model fitted to the
    data's marginals, ``schedule``'s βs, ``ais_runs`` runs; returns the result and the number of βs."""
    base = ais.base_rate_bias(data_mean)
    betas = ais.schedule(schedule)
    run = functools.partial(ais.rbm_ais_run, base=base, betas=betas)
    log_w = (ais_runner or in_process_runner())(rbm, run, ais_runs)
    return ais.combine_log_weights(log_w, ais.base_log_z(base, rbm.n_hidden)), len(betas)
