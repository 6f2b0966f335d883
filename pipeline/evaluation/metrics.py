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
        return str(self.extra.get("meaning", ""))


@dataclass
class Features:
    """Real and generated features/logits from one extractor."""

    extractor: str
    real: Tensor | None = None
    fake: Tensor | None = None
    real_logits: Tensor | None = None
    fake_logits: Tensor | None = None
    logits_reason: str = "the extractor has no class logits"


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


def kid_subset_size(n_real: int, n_fake: int) -> int:
    """Subsets of 1,000 (Bińkowski et al. 2018's default), but never more than half the smaller set:
    subsets as large as the set are all the same set, and the reported spread would be 0."""
    return max(2, min(1000, min(n_real, n_fake) // 2))


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 50) -> tuple[float, float, int]:
    """Unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = kid_subset_size(len(real), len(fake))
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
        return MetricResult("is", None, f.extractor, len(f.fake), available=False, reason=f.logits_reason)

    def compute():
        mean, std = inception_score(f.fake_logits)
        return mean, {"std": std, "splits": 10}

    return _timed("is", f, len(f.fake_logits), 0, compute)


# ------------------------------------------------------------------ manifold metrics (k-NN balls)

def _knn_radii(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row (the k-NN ball's radius)."""
    if len(x) <= k:
        raise ValueError(f"k-NN radii need more than k={k} points; got {len(x)}")
    out = []
    for part in x.split(chunk):
        d = torch.cdist(part, x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # k + 1: the point itself is at distance 0
    return torch.cat(out)


def _inside_counts(centres: Tensor, radii: Tensor, points: Tensor, chunk: int = 2048) -> Tensor:
    """For every point, how many balls B(centre_i, radius_i) contain it (closed balls)."""
    counts = torch.zeros(len(points), dtype=torch.long)
    for start in range(0, len(centres), chunk):
        c, r = centres[start:start + chunk], radii[start:start + chunk]
        counts += (torch.cdist(c, points) <= r[:, None]).sum(0)
    return counts


def _nearest_distance(points: Tensor, to: Tensor, chunk: int = 2048) -> Tensor:
    """Distance from each row of ``points`` to its nearest row of ``to``."""
    return torch.cat([torch.cdist(part, to).min(dim=1).values for part in points.split(chunk)])


def manifold_share(support: Tensor, points: Tensor, k: int = 3) -> float:
    """Share of ``points`` inside the manifold of ``support``: the union of every support point's
    closed k-NN ball (Kynkäänniemi et al. 2019, eq. 1-2)."""
    support, points = support.double(), points.double()
    return float((_inside_counts(support, _knn_radii(support, k), points) > 0).double().mean())


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes inside the real manifold) and recall (reals inside the fake
    manifold), Kynkäänniemi et al. 2019 with k = 3 as in the paper."""
    return manifold_share(real, fake, k), manifold_share(fake, real, k)


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, eq. 5-6), both on the *real* k-NN balls only:
    density = mean number of real balls a fake sample falls in, divided by k (1 on average when the
    two distributions are equal; above 1 when fakes crowd dense regions); coverage = share of real
    points whose ball holds at least one fake sample."""
    real, fake = real.double(), fake.double()
    radii = _knn_radii(real, k)
    density = _inside_counts(real, radii, fake).double().mean() / k
    coverage = (_nearest_distance(real, fake) <= radii).double().mean()
    return float(density), float(coverage)


def _manifold(name: str, f: Features, k: int, compute: Callable[[Tensor, Tensor], float]) -> MetricResult:
    return _timed(name, f, len(f.fake), len(f.real), lambda: (compute(f.real, f.fake), {"k": k}))


@register_metric("precision")
def precision_metric(f: Features) -> MetricResult:
    return _manifold("precision", f, 3, lambda r, g: manifold_share(r, g, 3))


@register_metric("recall")
def recall_metric(f: Features) -> MetricResult:
    return _manifold("recall", f, 3, lambda r, g: manifold_share(g, r, 3))


@register_metric("density")
def density_metric(f: Features) -> MetricResult:
    return _manifold("density", f, 5, lambda r, g: density_coverage(r, g, 5)[0])


@register_metric("coverage")
def coverage_metric(f: Features) -> MetricResult:
    return _manifold("coverage", f, 5, lambda r, g: density_coverage(r, g, 5)[1])
