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
FLOOR = "fid_real_train_vs_test"


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
    origin: dict[str, Any] = {}
    long_run = None
    if samples is None:
        samples, long_run, origin = _samples(run_dir, trained, cfg)
    model_rows: list[MetricResult] = []
    if len(shape) == 1:
        sample_rows = _toy_metrics(trained, samples)
        model_rows = _toy_density(run_dir, trained)
    else:
        sample_rows = _quality_metrics(trained, cfg, samples)
        if long_run is not None:  # the same chains run on: does the learned energy hold up?
            long_rows = [_renamed(r, "_long_run") for r in _quality_metrics(trained, cfg, long_run)
                         if r.metric != FLOOR]
            for r in long_rows:
                r.extra["chain_steps"] = origin["long_run_steps"]
            sample_rows += long_rows
    for r in sample_rows:  # every sample-based row says which sampler and start produced it
        if r.metric != FLOOR:
            r.extra.update({k: v for k, v in origin.items() if k not in r.extra})
    results = sample_rows + model_rows
    if cfg.likelihood != "none" and hasattr(trained.recipe, "likelihood"):
        results.append(_likelihood(trained, cfg))
    path = artifacts.write_json(run_dir / RESULT_FILE, {
        "run": trained.cfg.run_name, "epoch": trained.epoch, "step": trained.step,
        "results": [r.as_dict() for r in results]})
    return EvalResult(str(path), [r.as_dict() for r in results])


def _samples(run_dir: Path, trained, cfg: EvaluateConfig) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(samples, long-run samples or None, where they came from).

    The sampling stage's output when present, else a fresh draw from the model's sampler. Chains
    that record a start (deep EBMs: ``sample.init``) with two or more kept draws are scored twice:
    the first kept draw (burn_in + 1 transitions from the start: short-run, as training ran them)
    and the last (the long-run row).
    """
    from pipeline.sampling import family_sampler, load_samples

    manifest_path = run_dir / "samples" / "manifest.json"
    if manifest_path.exists():
        m = artifacts.read_json(manifest_path)
        init = m.get("init")
        origin = {"sampler": m["sampler"], **({"sample_init": init} if init else {})}
        if init and m["draws_per_chain"] >= 2:
            last = m["burn_in"] + 1 + (m["draws_per_chain"] - 1) * m["thin"]
            short = load_samples(run_dir, cfg.num_samples, draw=0)
            long = load_samples(run_dir, cfg.num_samples, draw=-1)
            return short, long, {**origin, "chain_steps": m["burn_in"] + 1, "long_run_steps": last}
        return load_samples(run_dir, cfg.num_samples), None, origin
    scfg = trained.cfg.sample
    model, sampler = family_sampler(trained, scfg)
    sampler = sampler.adapt_during(scfg.burn_in)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        state = sampler.init(model, cfg.num_samples, gen)
        state = sampler.step(model, state, scfg.steps, gen)
        x = sampler.to_data(model, state)
    init = getattr(sampler, "init_kind", None)
    origin = {"sampler": getattr(sampler, "name", type(sampler).__name__), "chain_steps": scfg.steps,
              **({"sample_init": init} if init else {})}
    return x.reshape(cfg.num_samples, *trained.recipe.data.shape).numpy(), None, origin


def _renamed(r: MetricResult, suffix: str) -> MetricResult:
    r.metric += suffix
    return r


def _quality_metrics(trained, cfg: EvaluateConfig, samples: np.ndarray) -> list[MetricResult]:
    cache_dir = Path(trained.cfg.output.root).expanduser().resolve() / "cache"
    return quality_metrics(trained.data, samples, cfg, cache_dir, trained.cfg.resources.ray_address)


def quality_metrics(data: PreparedData, samples: np.ndarray, cfg: EvaluateConfig, cache_dir: Path,
                    address: str | None = None) -> list[MetricResult]:
    """``cfg.metrics`` of ``samples`` against the prepared data's test split, plus the train-vs-test floor.

    Public so that code holding samples but no run directory (the benchmarks) scores them exactly
    as the evaluate stage does, with the same cached extractor and real-image features.
    """
    from pipeline.data import open_split

    shape = tuple(data.meta.shape)
    ctx = Context(data.path, data.meta.fingerprint, shape, tuple(data.meta.value_range), cache_dir,
                  cfg.inception_weights)
    ext = get_extractor(cfg.feature, ctx)
    n = len(samples)
    if not ext.available:
        return [MetricResult(m, None, ext.label, n, available=False, reason=ext.reason) for m in cfg.metrics]
    test_x, _ = open_split(data.path, "test")
    train_x, _ = open_split(data.path, "train")
    n_real = min(len(test_x), cfg.num_samples)
    real = _cached_features(ctx, ext, "test", test_x[np.arange(n_real)], shape)
    par = dict(workers=cfg.workers, address=address)
    feats = Features(ext.label, real=real, fake=extract(ext.features, samples, shape, **par),
                     fake_logits=extract(ext.logits, samples, shape, **par) if ext.logits else None)
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


DENSITY_FILE = Path("eval") / "density.npz"


def _toy_density(run_dir: Path, trained) -> list[MetricResult]:
    """For 2-D energies: KL(p_data ‖ p_model) with the grid's exact log Z, and the density on the grid
    (``eval/density.npz``, at most 256×256 cells) for the report's heat-map."""
    recipe, source = trained.recipe, trained.cfg.data.source
    if not hasattr(recipe, "density_grid"):
        return []
    from models.quadrature import kl_data_model

    started = time.perf_counter()
    grid = recipe.density_grid()
    stride = max(1, len(grid.xs) // 256)
    with artifacts.atomic_path(run_dir / DENSITY_FILE) as tmp, tmp.open("wb") as f:
        np.savez(f, xs=grid.xs[::stride].numpy(), ys=grid.ys[::stride].numpy(),
                 log_p=grid.log_p[::stride, ::stride].numpy(), log_z=grid.log_z)
    if not source.startswith("toy:"):
        return []
    kl = kl_data_model(source.split(":", 1)[1], recipe.modules["model"].eval(), grid)
    label = f"grid quadrature ({len(grid.xs)}×{len(grid.ys)}) + Gauss–Hermite"
    return [MetricResult("kl_data_model", kl, label, 0, seconds=time.perf_counter() - started,
                         extra={"log_z": grid.log_z, "quadrature_error": grid.quadrature_error,
                                "meaning": "KL(p_data ‖ p_model), exact up to quadrature"})]
