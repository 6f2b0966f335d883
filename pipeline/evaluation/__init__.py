"""The evaluate stage: sample quality (FID/KID/IS on named features), likelihoods (exact or AIS)
and mode coverage for the 2-D toys, all in one result format written to ``eval/metrics.json``.

Evaluation never draws samples itself: it scores the sampling stage's output (the ``SampleSet``
it is handed, or the run's complete ``samples/``), and when there is none it asks the sampling
stage to run with the run's own ``sample`` settings (burn-in, thinning, workers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline import atomic
from pipeline.config import EvaluateConfig, RunConfig
from pipeline.errors import UserError
from pipeline.evaluation.extractors import Context, extract, get_extractor
from pipeline.evaluation.metrics import METRICS, Features, MetricResult, frechet_distance
from pipeline.recipes.likelihood import LikelihoodResult
from pipeline.rundir import RunDir, cache_dir

if TYPE_CHECKING:
    from pipeline.data import PreparedData
    from pipeline.sampling import SampleSet
    from pipeline.trained import TrainedModel


@dataclass
class EvalResult:
    """What the evaluate stage hands on: the typed results and where they were written."""

    path: str
    results: list[MetricResult] = field(default_factory=list)
    run: str = ""
    epoch: int = 0
    step: int = 0

    def get(self, metric: str) -> MetricResult | None:
        return next((r for r in self.results if r.metric == metric), None)

    def value(self, metric: str) -> float | None:
        r = self.get(metric)
        return r.value if r is not None else None

    @property
    def likelihood(self) -> LikelihoodResult | None:
        r = self.get("log_likelihood")
        return r.likelihood if r is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "epoch": self.epoch, "step": self.step, "results": [r.as_dict() for r in self.results]}

    @classmethod
    def read(cls, run_dir: RunDir) -> EvalResult | None:
        """The evaluation stored in ``run_dir`` (None when it was not evaluated)."""
        body = run_dir.read_evaluation()
        if body is None:
            return None
        return cls(str(run_dir.eval_path), [MetricResult.from_dict(r) for r in body["results"]],
                   body.get("run", ""), body.get("epoch", 0), body.get("step", 0))


def check_before_training(cfg: RunConfig) -> None:
    """What the config cannot check but a pipeline run can before it trains: files the
    evaluation will read (a TorchScript extractor)."""
    from pipeline.evaluation.extractors import missing_file

    for name in cfg.evaluate.feature:
        problem = missing_file(name)
        if problem:
            raise UserError(problem)


def evaluate(run_dir: str | Path | RunDir, cfg: EvaluateConfig | None = None,
             samples: SampleSet | None = None) -> EvalResult:
    """Score the trained run: ``samples`` (the sampling stage's output) or the run's own sample."""
    from pipeline.trained import load_trained

    trained = load_trained(run_dir)
    cfg = cfg or trained.cfg.evaluate
    x = _samples(trained, samples, cfg.num_samples)
    results: list[MetricResult] = []
    if len(trained.recipe.data.shape) == 1:
        results += _toy_metrics(trained, x)
    else:
        results += _quality_metrics(trained, cfg, x)
    if cfg.likelihood != "none":
        found = _likelihood(trained, cfg)
        if found is not None:
            results.append(found)
    out = EvalResult(str(trained.run_dir.eval_path), results, trained.cfg.run_name, trained.epoch, trained.step)
    trained.run_dir.write_evaluation(out.as_dict())
    return out


def _samples(trained: TrainedModel, samples: SampleSet | None, limit: int) -> np.ndarray:
    """The given sample, else the run's complete sample, else one drawn by the sampling stage."""
    from pipeline.sampling import load_samples, sample

    if samples is not None:
        return samples.load(limit)
    if not trained.run_dir.samples.is_complete():
        sample(trained.run_dir, trained.cfg.sample)
    return load_samples(trained.run_dir, limit)


def _quality_metrics(trained: TrainedModel, cfg: EvaluateConfig, samples: np.ndarray) -> list[MetricResult]:
    return quality_metrics(trained.data, samples, cfg, cache_dir(trained.cfg), trained.cfg.resources.ray_address)


def quality_metrics(data: PreparedData, samples: np.ndarray, cfg: EvaluateConfig, cache_dir: Path,
                    address: str | None = None) -> list[MetricResult]:
    """``cfg.metrics`` of ``samples`` against the prepared data's test split on every extractor of
    ``cfg.feature`` (default: the standard Inception tier, then the domain tier), each with its
    train-vs-test floor. An unavailable extractor gives rows that say why instead of numbers.

    Public so that code holding samples but no run directory (the benchmarks) scores them exactly
    as the evaluate stage does, with the same cached extractor and real-image features.
    """
    shape = tuple(data.meta.shape)
    ctx = Context(data.path, data.meta.fingerprint, shape, tuple(data.meta.value_range), cache_dir,
                  cfg.inception_weights)
    results: list[MetricResult] = []
    for name in cfg.feature:
        results += _tier_metrics(get_extractor(name, ctx), ctx, data, samples, cfg, address)
    return results


def _tier_metrics(ext, ctx: Context, data: PreparedData, samples: np.ndarray, cfg: EvaluateConfig,
                  address: str | None) -> list[MetricResult]:
    """One extractor's rows: the configured metrics plus the real train-vs-test floor."""
    from pipeline.data import open_split

    shape = ctx.shape
    n = len(samples)
    if not ext.available:
        return [MetricResult(m, None, ext.label, n, available=False, reason=ext.reason)
                for m in [*cfg.metrics, "fid_real_train_vs_test"]]
    test_x, _ = open_split(data.path, "test")
    train_x, _ = open_split(data.path, "train")
    n_real = min(len(test_x), cfg.num_samples)
    real = _cached_features(ctx, ext, "test", test_x[np.arange(n_real)], shape)
    par = dict(workers=cfg.workers, address=address)
    feats = Features(ext.label, real=real, fake=extract(ext.features, samples, shape, **par),
                     fake_logits=extract(ext.logits, samples, shape, **par) if ext.logits else None,
                     logits_reason=ext.logits_reason)
    results = [METRICS[m](feats) for m in cfg.metrics]
    n_floor = min(len(train_x), n_real)
    started = time.perf_counter()
    floor_train = _cached_features(ctx, ext, "train", train_x[np.arange(n_floor)], shape)
    results.append(MetricResult("fid_real_train_vs_test", frechet_distance(real, floor_train), ext.label, n_floor,
                                n_real, time.perf_counter() - started,
                                extra={"meaning": "floor: FID between real train and test images"}))
    return results


def _cached_features(ctx: Context, ext, split: str, x: np.ndarray, shape) -> torch.Tensor:
    """Real-image features, computed once per (dataset fingerprint, extractor, split, count)."""
    path = ctx.cache_dir / "features" / f"{ctx.fingerprint}-{ext.id.replace(':', '_')}-{split}-{len(x)}.pt"
    if path.exists():
        return torch.load(path)
    feats = extract(ext.features, x, shape)
    atomic.save_torch(path, feats)
    return feats


def _likelihood(trained: TrainedModel, cfg: EvaluateConfig) -> MetricResult | None:
    """The family's likelihood as a metric (None when the family has none)."""
    import functools

    from pipeline.data import open_split
    from pipeline.fanout import parallel_ais

    test_x, _ = open_split(trained.data.path, "test")
    x = torch.from_numpy(np.array(test_x))
    started = time.perf_counter()
    runner = functools.partial(parallel_ais, workers=cfg.workers, seed=cfg.seed,
                               address=trained.cfg.resources.ray_address)
    out = trained.recipe.likelihood(x, cfg.likelihood, cfg.ais_runs, cfg.ais_schedule, ais_runner=runner)
    if out is None:
        return None
    return MetricResult("log_likelihood", out.log_likelihood, out.method, out.test_examples,
                        seconds=time.perf_counter() - started, available=out.log_likelihood is not None,
                        reason=out.reason, likelihood=out)


def _toy_metrics(trained: TrainedModel, samples: np.ndarray) -> list[MetricResult]:
    source = trained.cfg.data.source
    if not source.startswith("toy:"):
        return []
    from models.toys.mixtures import mode_metrics

    started = time.perf_counter()
    m = mode_metrics(torch.as_tensor(samples[:2500]).float(), source.split(":", 1)[1])
    return [MetricResult(k, float(v), "mixture modes", min(len(samples), 2500),
                         seconds=time.perf_counter() - started) for k, v in m.items()]
