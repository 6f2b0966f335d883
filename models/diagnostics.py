"""MCMC convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat".

All functions take traces shaped (chains, draws) and must see *all* chains at once: R-hat and ESS
of sub-groups of chains cannot be averaged into the R-hat/ESS of the whole.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len
from scipy.special import ndtri
from scipy.stats import rankdata


def split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as separate chains (the middle draw of an odd length is dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """z-scores of the pooled fractional ranks: Φ⁻¹((r - 3/8) / (S + 1/4)) (Vehtari et al. eq. 14)."""
    ranks = rankdata(x, method="average").reshape(x.shape)
    return ndtri((ranks - 0.375) / (x.size + 0.25))


def _rhat(x: np.ndarray) -> float:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1))
    return float(np.sqrt((between / within + n - 1) / n))


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split-R̂: the larger of the bulk and the folded (tail) versions."""
    x = _check(x)
    bulk = _rhat(rank_normalize(split_chains(x)))
    folded = np.abs(x - np.median(x))
    tail = _rhat(rank_normalize(split_chains(folded)))
    return max(bulk, tail)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag, by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    m = next_fast_len(2 * n)
    f = np.fft.rfft(centred, n=m, axis=1)
    return np.fft.irfft(f * np.conjugate(f), n=m, axis=1)[:, :n] / n


def ess(x: np.ndarray) -> float:
    """Effective sample size with Geyer's initial monotone sequence over all chains (eqs. 10-12)."""
    chains, n = x.shape
    acov = _autocov(x)
    mean_var = np.mean(acov[:, 0]) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus += np.var(x.mean(axis=1), ddof=1)
    rho = np.zeros(n)
    rho_even, rho_odd = 1.0, 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[0], rho[1] = rho_even, rho_odd
    t = 1
    while t < n - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:  # make the sequence of pair sums monotone
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    total = chains * n
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1: max_t + 2])
    tau = max(tau, 1.0 / np.log10(total))
    return float(total / tau)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk ESS: ESS of the rank-normalised split chains."""
    return ess(rank_normalize(split_chains(_check(x))))


def ess_tail(x: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators on split chains."""
    x = _check(x)
    lo, hi = np.quantile(x, 0.05), np.quantile(x, 0.95)
    return min(ess(split_chains((x <= lo).astype(float))), ess(split_chains((x <= hi).astype(float))))


def summarize(x: np.ndarray) -> dict[str, float]:
    """R̂, bulk ESS and tail ESS of one traced quantity."""
    return {"rhat": rhat(x), "ess_bulk": ess_bulk(x), "ess_tail": ess_tail(x),
            "chains": int(x.shape[0]), "draws": int(x.shape[1])}


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 4:
        raise ValueError(f"diagnostics need (chains >= 2, draws >= 4) traces, got shape {x.shape}")
    return x
