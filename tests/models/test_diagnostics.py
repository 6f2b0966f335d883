"""R-hat and ESS agree with ArviZ (test-only dependency) on independent and AR(1) chains."""

import arviz as az
import numpy as np
import pytest

from models import diagnostics as d


def _ar1(chains: int, draws: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((chains, draws))
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=chains)
    return x


CASES = {
    "iid": lambda: np.random.default_rng(0).normal(size=(4, 500)),
    "ar1": lambda: _ar1(4, 501, 0.9, 1),
    "ar1-shifted-chain": lambda: _ar1(3, 300, 0.5, 2) + np.array([[0.0], [0.0], [1.5]]),
    "skewed": lambda: np.random.default_rng(3).exponential(size=(6, 200)),
    "ties": lambda: np.random.default_rng(6).poisson(2.0, size=(5, 300)).astype(float),  # average ranks
    "random-walk": lambda: np.cumsum(np.random.default_rng(7).normal(size=(2, 400)), axis=1),  # not mixing
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_arviz(name):
    x = CASES[name]()
    assert d.rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), abs=1e-8)
    assert d.ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), abs=1e-8)
    assert d.ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), abs=1e-8)


def test_rhat_flags_chains_stuck_in_different_places():
    x = _ar1(4, 400, 0.5, 4) + np.arange(4)[:, None] * 3
    assert d.rhat(x) > 1.5
    assert d.rhat(_ar1(4, 400, 0.5, 4)) < 1.02


def test_autocorrelation_lowers_ess():
    assert d.ess_bulk(_ar1(4, 1000, 0.9, 5)) < 0.2 * d.ess_bulk(_ar1(4, 1000, 0.0, 5))


def test_needs_two_chains():
    with pytest.raises(ValueError, match="chains >= 2"):
        d.rhat(np.zeros((1, 100)))
