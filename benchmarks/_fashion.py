"""What the Fashion-MNIST sample-quality benchmarks share: the data, a training loop that stops
at a fixed CPU budget, and domain-feature FID/IS computed exactly as the evaluate stage does.

The budget is *process CPU time* (``time.process_time``: all of this process's threads), so a
number measured on a loaded machine still means the same amount of computation; wall-clock is
reported next to it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import DataConfig, EvaluateConfig, load_config  # noqa: E402
from pipeline.data import PreparedData, open_split, prepare  # noqa: E402
from pipeline.recipes.base import Batch, Recipe, recipe_class  # noqa: E402

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION = f"idx:{FASHION_DIR}"


def add_common_args(ap: argparse.ArgumentParser, cpu_seconds: float) -> None:
    """The options every Fashion-MNIST benchmark takes: budget, threads, seed, cache."""
    ap.add_argument("--cpu-seconds", type=float, default=cpu_seconds, help="process CPU time per model")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: no OpenMP spinning when benchmarks share cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("runs/bench-cache"), help="data + domain classifier cache")


def setup(args: argparse.Namespace) -> tuple[PreparedData, torch.Tensor]:
    """Check the data is installed, set the threads, prepare (cached) and load the training images."""
    ensure_fashion()
    torch.set_num_threads(args.threads)
    data = prepare_fashion(args.cache)
    return data, train_images(data)


def prepare_fashion(root: Path) -> PreparedData:
    """Fashion-MNIST in [-1, 1] (the GAN and EBM presets' scaling), prepared under ``root``."""
    return prepare(DataConfig(source=FASHION, scale="symmetric"), root / "data")


def train_images(data: PreparedData) -> torch.Tensor:
    x, _ = open_split(data.path, "train")
    return torch.from_numpy(np.array(x, dtype=np.float32)).reshape(-1, *data.meta.shape)


def recipe_for(preset: str, data: PreparedData, overrides: list[str], seed: int) -> Recipe:
    """A preset's recipe built on the CPU, in-process (no Ray, no Accelerate), ready to step."""
    cfg = load_config(preset, [f"train.seed={seed}", *overrides])
    torch.manual_seed(seed)
    recipe = recipe_class(cfg.model.family)(cfg, data.data_shape())
    recipe.optimizers = recipe.build_optimizers()
    return recipe


def train_for(step: Callable[[Batch], object], x: torch.Tensor, batch_size: int, cpu_seconds: float,
              seed: int) -> dict[str, float]:
    """Call ``step`` on shuffled minibatches until ``cpu_seconds`` of process CPU time are spent."""
    gen = torch.Generator().manual_seed(seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    steps = epoch = 0
    while True:
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            if len(idx) < batch_size:
                continue
            step(Batch(x=x[idx], y=None, weight=1.0, step=steps, epoch=epoch))
            steps += 1
            if time.process_time() - cpu0 >= cpu_seconds:
                return {"steps": steps, "epochs": steps * batch_size / len(x),
                        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
        epoch += 1


MANIFOLD = ["precision", "recall", "density", "coverage"]


def domain_scores(data: PreparedData, samples: torch.Tensor, cache_dir: Path,
                  inception: bool = False) -> dict[str, object]:
    """FID, IS, precision/recall and density/coverage of ``samples`` under the ``domain``
    extractor, plus the real train-vs-test floor; with ``inception`` also the standard-Inception
    FID (``None`` with the reason when its weights are not installed), exactly as ``boltzgan
    evaluate`` scores a run."""
    from pipeline.evaluation import quality_metrics

    cfg = EvaluateConfig(metrics=["fid", "is", *MANIFOLD], feature="domain", num_samples=len(samples))
    results = {r.metric: r for r in quality_metrics(data, samples.numpy(), cfg, cache_dir)}
    missing = [r.reason for r in results.values() if not r.available]
    if missing:
        raise SystemExit(f"domain features unavailable: {missing[0]}")
    out = {m: results[m].value for m in ["fid", "is", *MANIFOLD]}
    out |= {"floor": results["fid_real_train_vs_test"].value, "label": results["fid"].extractor, "n": len(samples)}
    if inception:
        std = EvaluateConfig(metrics=["fid"], feature="inception", num_samples=len(samples))
        fid = next(r for r in quality_metrics(data, samples.numpy(), std, cache_dir) if r.metric == "fid")
        out |= {"inception_fid": fid.value, "inception_label": fid.extractor if fid.available else fid.reason}
    return out


def ensure_fashion() -> None:
    if not FASHION_DIR.is_dir():
        raise SystemExit(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
