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

FLOOR = "fid_real_train_vs_test"
KID_FLOOR = "kid_real_train_vs_test"

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
    key: str = ""  # what it was computed from (pipeline.stage_keys)
    skipped: bool = False  # True when a re-run found it already computed from the same inputs

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
        return {"run": self.run, "epoch": self.epoch, "step": self.step, "key": self.key,
                "results": [r.as_dict() for r in self.results]}

    @classmethod
    def read(cls, run_dir: RunDir) -> EvalResult | None:
        """The evaluation stored in ``run_dir`` (None when it was not evaluated)."""
        body = run_dir.read_evaluation()
        if body is None:
            return None
        return cls(str(run_dir.eval_path), [MetricResult.from_dict(r) for r in body["results"]],
                   body.get("run", ""), body.get("epoch", 0), body.get("step", 0), body.get("key", ""))


def check_before_training(cfg: RunConfig) -> None:
    """What the config cannot check but a pipeline run can before it trains: files the
    evaluation will read (a TorchScript extractor)."""
    from pipeline.evaluation.extractors import missing_file

    for name in cfg.evaluate.feature:
        problem = missing_file(name)
        if problem:
            raise UserError(problem)


def evaluate(run_dir: str | Path | RunDir, cfg: EvaluateConfig | None = None,
             samples: SampleSet | None = None, reuse: bool = False) -> EvalResult:
    """Score the trained run: ``samples`` (the sampling stage's output) or the run's own sample.
    With ``reuse``, a stored evaluation of the same model, settings and sample is returned as it is
    (``skipped``): a re-run of a finished pipeline."""
    from pipeline.sampling import SampleSet
    from pipeline.stage_keys import stage_key
    from pipeline.trained import load_trained

    run = RunDir.at(run_dir)
    trained = None if cfg is not None else load_trained(run_dir)
    cfg = cfg or trained.cfg.evaluate
    if reuse:
        used = samples if samples is not None else SampleSet.read(run.samples)
        stored = EvalResult.read(run)
        if used is not None and stored is not None and stored.key == stage_key(run, cfg, used.key):
            stored.skipped = True
            return stored
    trained = trained or load_trained(run_dir)
    x, long_run, origin = _samples(trained, samples, cfg.num_samples)
    model_rows: list[MetricResult] = []
    if len(trained.recipe.data.shape) == 1:
        sample_rows = _toy_metrics(trained, x)
        model_rows = _toy_density(trained)
    else:
        sample_rows = _quality_metrics(trained, cfg, x)
        if long_run is not None:  # the same chains run on: does the learned energy hold up?
            long_rows = [_renamed(r, "_long_run") for r in _quality_metrics(trained, cfg, long_run)
                         if r.metric not in (FLOOR, KID_FLOOR)]
            for r in long_rows:
                r.extra["chain_steps"] = origin["long_run_steps"]
            sample_rows += long_rows
    for r in sample_rows:  # every sample-based row says which sampler and start produced it
        if r.metric not in (FLOOR, KID_FLOOR):
            r.extra.update({k: v for k, v in origin.items()
                            if k not in r.extra and k not in ("long_run_steps", "sample_key")})
    results = sample_rows + model_rows
    if cfg.likelihood != "none":
        found = _likelihood(trained, cfg)
        if found is not None:
            results.append(found)
            if found.available:  # the number that gives it a meaning, in the same units
                from pipeline.evaluation.references import likelihood_baseline

                results.append(likelihood_baseline(trained.data.path))
    key = stage_key(run, cfg, origin["sample_key"])
    out = EvalResult(str(trained.run_dir.eval_path), results, trained.cfg.run_name, trained.epoch, trained.step, key)
    trained.run_dir.write_evaluation(out.as_dict())
    return out


def _samples(trained: TrainedModel, samples: SampleSet | None,
             limit: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(samples, long-run samples or None, where they came from): the given sample, else the run's
    complete sample, else one drawn by the sampling stage.

    Chains that record a start (deep EBMs: ``sample.init``) with two or more kept draws are scored
    twice: the first kept draw (burn_in + 1 transitions from the start: short-run, as training ran
    them) for the main rows, and the last for the ``*_long_run`` rows.
    """
    from pipeline.sampling import load_samples, sample

    if samples is not None:
        where = samples.dir
    else:
        if not trained.run_dir.samples.is_complete():
            sample(trained.run_dir, trained.cfg.sample)
        where = trained.run_dir.samples
    m = where.read_manifest()
    init = m.get("init")
    origin: dict[str, Any] = {"sampler": m["sampler"], "sample_key": m.get("key", ""),
                              **({"sample_init": init} if init else {})}
    if init and m["draws_per_chain"] >= 2:
        last = m["burn_in"] + 1 + (m["draws_per_chain"] - 1) * m["thin"]
        origin.update(chain_steps=m["burn_in"] + 1, long_run_steps=last)
        return load_samples(where, limit, draw=0), load_samples(where, limit, draw=-1), origin
    return load_samples(where, limit), None, origin


def _renamed(r: MetricResult, suffix: str) -> MetricResult:
    r.metric += suffix
    return r


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
                for m in [*cfg.metrics, FLOOR, *([KID_FLOOR] if "kid" in cfg.metrics else [])]]
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
    if "kid" in cfg.metrics:  # KID's floor: how much it varies between two real sets of these sizes
        from pipeline.evaluation.metrics import kernel_inception_distance

        started = time.perf_counter()
        mean, std, size = kernel_inception_distance(real, floor_train)
        results.append(MetricResult(KID_FLOOR, mean, ext.label, n_floor, n_real, time.perf_counter() - started,
                                    extra={"std": std, "subset_size": size,
                                           "meaning": "floor: KID between real train and test images"}))
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


def _toy_density(trained: TrainedModel) -> list[MetricResult]:
    """For 2-D energies: KL(p_data ‖ p_model) with the grid's exact log Z, and the density on the grid
    (``eval/density.npz``, at most 256×256 cells) for the report's heat-map."""
    recipe, source = trained.recipe, trained.cfg.data.source
    if not hasattr(recipe, "density_grid"):
        return []
    from models.quadrature import kl_data_model

    started = time.perf_counter()
    grid = recipe.density_grid()
    stride = max(1, len(grid.xs) // 256)
    with atomic.atomic_path(density_path(trained.run_dir)) as tmp, tmp.open("wb") as f:
        np.savez(f, xs=grid.xs[::stride].numpy(), ys=grid.ys[::stride].numpy(),
                 log_p=grid.log_p[::stride, ::stride].numpy(), log_z=grid.log_z)
    trained.run_dir.publish(density_path(trained.run_dir))  # to output.storage, when the run has one
    if not source.startswith("toy:"):
        return []
    kl = kl_data_model(source.split(":", 1)[1], recipe.modules["model"].eval(), grid)
    label = f"grid quadrature ({len(grid.xs)}×{len(grid.ys)}) + Gauss–Hermite"
    return [MetricResult("kl_data_model", kl, label, 0, seconds=time.perf_counter() - started,
                         extra={"log_z": grid.log_z, "quadrature_error": grid.quadrature_error,
                                "meaning": "KL(p_data ‖ p_model), exact up to quadrature"})]


def density_path(run_dir: RunDir) -> Path:
    """``eval/density.npz``: the 2-D model density the report draws as a heat-map."""
    return Path(run_dir.eval_path).parent / "density.npz"
