"""The evaluate stage: sample quality (FID/KID/IS on named features), likelihoods (exact or AIS)
and mode coverage for the 2-D toys, all in one result format written to ``eval/metrics.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline import artifacts
from pipeline.config import EvaluateConfig
from pipeline.evaluation.extractors import Context, extract, get_extractor
from pipeline.evaluation.metrics import METRICS, Features, MetricResult, frechet_distance

if TYPE_CHECKING:
    from pipeline.data import PreparedData

RESULT_FILE = Path("eval") / "metrics.json"


@dataclass
class EvalResult:
    path: str
    results: list[dict[str, Any]]

    def value(self, metric: str) -> float | None:
        return next((r["value"] for r in self.results if r["metric"] == metric), None)


def evaluate(run_dir: str | Path, cfg: EvaluateConfig | None = None, samples: np.ndarray | None = None) -> EvalResult:
    from pipeline.trained import load_trained

    run_dir = Path(run_dir)
    trained = load_trained(run_dir)
    cfg = cfg or trained.cfg.evaluate
    shape = tuple(trained.recipe.data.shape)
    if samples is None:
        samples = _samples(run_dir, trained, cfg)
    results: list[MetricResult] = []
    if len(shape) == 1:
        results += _toy_metrics(trained, samples)
    else:
        results += _quality_metrics(trained, cfg, samples)
    if cfg.likelihood != "none" and hasattr(trained.recipe, "likelihood"):
        results.append(_likelihood(trained, cfg))
    path = artifacts.write_json(run_dir / RESULT_FILE, {
        "run": trained.cfg.run_name, "epoch": trained.epoch, "step": trained.step,
        "results": [r.as_dict() for r in results]})
    return EvalResult(str(path), [r.as_dict() for r in results])


def _samples(run_dir: Path, trained, cfg: EvaluateConfig) -> np.ndarray:
    """The sampling stage's output when present, else a fresh draw from the model's sampler."""
    from pipeline.sampling import load_samples

    if (run_dir / "samples" / "manifest.json").exists():
        return load_samples(run_dir, cfg.num_samples)
    model, sampler = trained.recipe.sampler()
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        state = sampler.init(model, cfg.num_samples, gen)
        state = sampler.step(model, state, trained.cfg.sample.steps, gen)
        x = sampler.to_data(model, state)
    return x.reshape(cfg.num_samples, *trained.recipe.data.shape).numpy()


def _quality_metrics(trained, cfg: EvaluateConfig, samples: np.ndarray) -> list[MetricResult]:
    cache_dir = Path(trained.cfg.output.root).expanduser().resolve() / "cache"
    return quality_metrics(trained.data, samples, cfg, cache_dir, trained.cfg.resources.ray_address)


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
    artifacts.save_torch(path, feats)
    return feats


def _likelihood(trained, cfg: EvaluateConfig) -> MetricResult:
    import functools

    from pipeline.data import open_split
    from pipeline.sampling import parallel_ais

    test_x, _ = open_split(trained.data.path, "test")
    x = torch.from_numpy(np.array(test_x))
    started = time.perf_counter()
    runner = functools.partial(parallel_ais, workers=cfg.workers, seed=cfg.seed,
                               address=trained.cfg.resources.ray_address)
    out = trained.recipe.likelihood(x, cfg.likelihood, cfg.ais_runs, cfg.ais_schedule, ais_runner=runner)
    if out.get("log_likelihood") is None:
        return MetricResult("log_likelihood", None, out.get("method", "—"), out.get("test_examples", 0),
                            available=False, reason=out.get("reason", ""), extra=out)
    return MetricResult("log_likelihood", out["log_likelihood"], out["method"], out["test_examples"],
                        seconds=time.perf_counter() - started, extra=out)


def _toy_metrics(trained, samples: np.ndarray) -> list[MetricResult]:
    source = trained.cfg.data.source
    if not source.startswith("toy:"):
        return []
    from models.toys.mixtures import mode_metrics

    started = time.perf_counter()
    m = mode_metrics(torch.as_tensor(samples[:2500]).float(), source.split(":", 1)[1])
    return [MetricResult(k, float(v), "mixture modes", min(len(samples), 2500),
                         seconds=time.perf_counter() - started) for k, v in m.items()]
