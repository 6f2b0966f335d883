"""Sample-quality metrics on extracted features, each a function registered by name.

The metrics are torchmetrics' FID, KID and IS fed with features that were extracted beforehand
(a pass-through module stands in for the network), so extraction can be cached and parallelised
while the statistics stay torchmetrics' own, computed in float64.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.recipes.likelihood import LikelihoodResult


@dataclass
class MetricResult:
    """One number with everything needed to read it: what, on which features, from how many samples."""

    metric: str
    value: float | None
    extractor: str
    num_samples: int
    num_real: int = 0
    seconds: float = 0.0
    available: bool = True
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    likelihood: LikelihoodResult | None = None  # the typed details of a log_likelihood result

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        ll = d.get("likelihood")
        return cls(**(d | {"likelihood": LikelihoodResult.from_dict(ll) if ll else None}))

    def note(self) -> str:
        """One line for tables: why it is unavailable, or its spread / interval / meaning."""
        if not self.available:
            return self.reason
        if self.likelihood is not None:
            return self.likelihood.note()
        if "std" in self.extra:
            return f"± {self.extra['std']:.3g}"
        if "sample_init" in self.extra:  # deep EBMs: which chains the number describes
            return f"{self.extra['sampler']} chains from {self.extra['sample_init']}, {self.extra.get('chain_steps')} steps"
        return str(self.extra.get("meaning", ""))


@dataclass
class Features:
    """Real and generated features/logits from one extractor."""

    extractor: str
    real: Tensor | None = None
    fake: Tensor | None = None
    real_logits: Tensor | None = None
    fake_logits: Tensor | None = None


METRICS: dict[str, Callable[[Features], MetricResult]] = {}


def register_metric(name: str):
    def wrap(fn: Callable[[Features], MetricResult]) -> Callable[[Features], MetricResult]:
        METRICS[name] = fn
        return fn

    return wrap


class _Passthrough(nn.Module):
    """Features are already extracted: hand them to torchmetrics unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        return x.double()


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    m = FrechetInceptionDistance(feature=_Passthrough(), input_img_size=(real.shape[1],)).set_dtype(torch.float64)
    m.update(real.double(), real=True)
    m.update(fake.double(), real=False)
    return float(m.compute())


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 50) -> tuple[float, float, int]:
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(1000, len(real), len(fake))
    m = KernelInceptionDistance(feature=_Passthrough(), subsets=subsets, subset_size=size).set_dtype(torch.float64)
    m.update(real.double(), real=True)
    m.update(fake.double(), real=False)
    mean, std = m.compute()
    return float(mean), float(std), size


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    from torchmetrics.image.inception import InceptionScore

    m = InceptionScore(feature=_Passthrough(), splits=splits).set_dtype(torch.float64)
    m.update(logits.double())
    mean, std = m.compute()
    return float(mean), float(std)


def _timed(metric: str, f: Features, n: int, n_real: int, compute: Callable[[], tuple[float, dict]]) -> MetricResult:
    started = time.perf_counter()
    value, extra = compute()
    return MetricResult(metric, value, f.extractor, n, n_real, time.perf_counter() - started, extra=extra)


@register_metric("fid")
def fid(f: Features) -> MetricResult:
    return _timed("fid", f, len(f.fake), len(f.real), lambda: (frechet_distance(f.real, f.fake), {}))


@register_metric("kid")
def kid(f: Features) -> MetricResult:
    def compute():
        mean, std, size = kernel_inception_distance(f.real, f.fake)
        return mean, {"std": std, "subset_size": size}

    return _timed("kid", f, len(f.fake), len(f.real), compute)


@register_metric("is")
def inception_score_metric(f: Features) -> MetricResult:
    if f.fake_logits is None:
        return MetricResult("is", None, f.extractor, len(f.fake), available=False,
                            reason="the extractor has no class logits")

    def compute():
        mean, std = inception_score(f.fake_logits)
        return mean, {"std": std, "splits": 10}

    return _timed("is", f, len(f.fake_logits), 0, compute)
