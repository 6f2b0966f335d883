"""What the Boltzmann-family recipes share to report likelihoods in one typed format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from models import ais
from models.ais import AISResult, ReverseResult

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
        if self.details.get("reverse_runs"):  # the sandwich: forward AIS beside RAISE (Burda et al. 2015)
            d = self.details
            parts.append(f"forward AIS {float(d['forward_log_likelihood']):.2f}, RAISE "
                         f"{float(d['reverse_log_likelihood']):.2f}, gap {float(d['gap']):.2f} "
                         f"({d['forward_runs']} + {d['reverse_runs']} runs)")
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


def unavailable(method: str, n: int, reason: str) -> LikelihoodResult:
    """A likelihood that cannot be computed, with why (the report shows the reason)."""
    return LikelihoodResult(method, None, n, reason=reason)


def binary_data_refusal(data: Any, family: str) -> str | None:
    """Why a Bernoulli-family likelihood is refused for this data (None when the data are binary):
    the probability of a real-valued image under a model over {0,1} is not a likelihood."""
    if getattr(data, "binary", True):
        return None
    return (f"a {family} models binary {{0,1}} data, but this dataset was prepared with data.binarize=none; "
            f"prepare it with data.binarize=threshold (or stochastic) to report a likelihood")


def exact_refusal(what: str, units: int, limit: int) -> str:
    return (f"evaluate.likelihood=exact needs {what} of at most {limit} units to enumerate (here {units}); "
            f"use evaluate.likelihood=auto or ais")


def exact_report(log_z: float, log_likelihood: float, n: int) -> LikelihoodResult:
    """An exact likelihood, with both sides of the sandwich equal to it (no runs)."""
    return LikelihoodResult("exact", log_likelihood, n, log_z=log_z,
                            details={"forward_log_likelihood": log_likelihood,
                                     "reverse_log_likelihood": log_likelihood, "gap": 0.0,
                                     "forward_runs": 0, "reverse_runs": 0})


def sandwich(forward_ll: float, mean_control: float, rev: ReverseResult, forward_runs: int) -> dict[str, Any]:
    """Both sides of a likelihood, for ``LikelihoodResult.details``: forward AIS (optimistic in
    expectation) and RAISE (conservative in expectation, Burda et al. 2015); ``mean_control`` is the
    exact mean over all test points of the control variate the reverse runs subtracted (e.g. log p*(v)
    for an RBM)."""
    reverse_ll = mean_control + rev.mean
    return {"forward_log_likelihood": forward_ll, "reverse_log_likelihood": reverse_ll,
            "reverse_log_likelihood_se": rev.se, "gap": forward_ll - reverse_ll,
            "forward_runs": forward_runs, "reverse_runs": rev.n_runs}


def with_sandwich(res: LikelihoodResult, sides: dict[str, Any]) -> LikelihoodResult:
    res.details.update(sides)
    return res


def rbm_raise(rbm: nn.Module, data_mean: Tensor, starts: Tensor, runs: int, schedule: str,
              ais_runner: AISRunner | None = None) -> ReverseResult:
    """RAISE runs of a Bernoulli RBM from rows of ``starts`` along the same base-rate path and βs as
    :func:`rbm_log_z_ais`; the per-run values are log w − log p*(v) (merge by plain mean)."""
    base = ais.base_rate_bias(data_mean)
    run = functools.partial(ais.rbm_raise_run, base=base, betas=ais.schedule(schedule),
                            data=starts.reshape(starts.shape[0], -1).to(torch.uint8))
    return ais.combine_reverse((ais_runner or in_process_runner())(rbm, run, runs))
