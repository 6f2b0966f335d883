"""What the Boltzmann-family recipes share to report likelihoods in one format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from models.ais import AISResult

# ais_runner(model, run_fn, n_runs) -> raw log-weights; run_fn(model, n, generator) -> (n,) log-weights.
AISRunner = Callable[[nn.Module, Callable[..., Tensor], int], Tensor]


def in_process_runner(seed: int = 0) -> AISRunner:
    """Seeded blocks of runs in this process (the evaluation stage passes a Ray-parallel one)."""
    from pipeline.sampling import parallel_ais

    return functools.partial(parallel_ais, workers=0, seed=seed)


def ais_report(mean_log_p_star: float, res: AISResult, n_betas: int, what: str = "log_likelihood") -> dict[str, Any]:
    """Test log-likelihood mean(log p*(v)) − log Ẑ with the bounds implied by log(Ẑ ± 3σ̂)."""
    return {"method": "ais", **res.as_dict(), what: mean_log_p_star - res.log_z,
            f"{what}_lower": mean_log_p_star - res.log_z_upper,
            f"{what}_upper": mean_log_p_star - res.log_z_lower, "ais_betas": n_betas}
