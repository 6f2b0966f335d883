"""What the Boltzmann-family recipes share to report likelihoods in one format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from models import ais
from models.ais import AISResult

# ais_runner(model, run_fn, n_runs) -> raw log-weights; run_fn(model, n, generator) -> (n,) log-weights.
AISRunner = Callable[[nn.Module, Callable[..., Tensor], int], Tensor]


def in_process_runner(seed: int = 0) -> AISRunner:
    """Seeded blocks of runs in this process (the evaluation stage passes a Ray-parallel one)."""
    from pipeline.sampling import parallel_ais

    return functools.partial(parallel_ais, workers=0, seed=seed)


def ais_report(mean_log_p_star: float, res: AISResult, n_betas: int) -> dict[str, Any]:
    """Test log-likelihood mean(log p*(v)) − log Ẑ with the bounds implied by log(Ẑ ± 3σ̂)."""
    return {"method": "ais", **res.as_dict(), "log_likelihood": mean_log_p_star - res.log_z,
            "log_likelihood_lower": mean_log_p_star - res.log_z_upper,
            "log_likelihood_upper": mean_log_p_star - res.log_z_lower, "ais_betas": n_betas}


def rbm_log_z_ais(rbm: nn.Module, data_mean: Tensor, ais_runs: int, schedule: str,
                  ais_runner: AISRunner | None = None) -> tuple[AISResult, int]:
    """AIS log Ẑ of a Bernoulli RBM (Salakhutdinov & Murray 2008): the base-rate model fitted to the
    data's marginals, ``schedule``'s βs, ``ais_runs`` runs; returns the result and the number of βs."""
    base = ais.base_rate_bias(data_mean)
    betas = ais.schedule(schedule)
    run = functools.partial(ais.rbm_ais_run, base=base, betas=betas)
    log_w = (ais_runner or in_process_runner())(rbm, run, ais_runs)
    return ais.combine_log_weights(log_w, ais.base_log_z(base, rbm.n_hidden)), len(betas)
