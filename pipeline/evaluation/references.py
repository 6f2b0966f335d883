"""Reference numbers that give a metric its meaning, computed in the same units as the metric.

FID has its floor (real train vs real test images, :func:`pipeline.evaluation.quality_metrics`);
a likelihood needs a baseline: here the independent-pixel (base-rate) model whose pixel
probabilities are the training marginals — the same model AIS starts from (Salakhutdinov & Murray
2008, §4) — scored on the same test images in nats per example. A trained Boltzmann machine that
does not beat it has learnt no dependency between pixels.
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.metrics import MetricResult

BASELINE = "log_likelihood_baseline"
EPS = 1e-3  # keeps log p finite for pixels that are constant in the training split


def independent_pixel_log_likelihood(train: np.ndarray, test: np.ndarray) -> float:
    """Mean test log-likelihood (nats) of {0,1} data under independent Bernoullis fitted to ``train``."""
    p = np.clip(train.reshape(len(train), -1).mean(0), EPS, 1 - EPS)
    x = test.reshape(len(test), -1)
    return float((x @ np.log(p) + (1 - x) @ np.log1p(-p)).mean())


def likelihood_baseline(data_path: str) -> MetricResult:
    """The base-rate baseline of the prepared data's test split (unavailable for non-binary data)."""
    from pipeline.data import open_split

    train, _ = open_split(data_path, "train")
    test, _ = open_split(data_path, "test")
    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    method = "independent pixels (train marginals)"
    if not (np.isin(train, (0.0, 1.0)).all() and np.isin(test, (0.0, 1.0)).all()):
        return MetricResult(BASELINE, None, method, len(test), available=False,
                            reason="the data is not binary; no independent-Bernoulli baseline")
    return MetricResult(BASELINE, independent_pixel_log_likelihood(train, test), method, len(test),
                        extra={"meaning": "baseline: test log-likelihood of independent pixels"})
