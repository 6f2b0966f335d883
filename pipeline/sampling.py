"""The sampling stage: many MCMC chains in parallel across Ray workers.

Chains are cut into fixed blocks of ``sample.chains_per_block``; block b draws all its randomness
from a generator seeded by (seed, b) and runs single-threaded, so a seed reproduces the whole
sample bit for bit on any number of workers. Each block is written to its own ``.npz`` file (atomically) by
the worker that ran it, so samples never pile up in the driver; the driver reads back only the
energy traces to compute R-hat/ESS over all chains at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import diagnostics
from models.samplers.base import Sampler
from pipeline import artifacts
from pipeline.config import SampleConfig
from pipeline.errors import UserError

MANIFEST = "manifest.json"
DIAGNOSTICS = "diagnostics.json"


@dataclass
class SampleSet:
    path: str
    chains: int
    draws_per_chain: int
    shape: tuple[int, ...]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Block:
    index: int
    first_chain: int
    n_chains: int


def blocks_of(cfg: SampleConfig) -> list[Block]:
    per = cfg.chains_per_block
    return [Block(i, s, min(per, cfg.chains - s)) for i, s in enumerate(range(0, cfg.chains, per))]


def validate(cfg: SampleConfig) -> None:
    """Re-check the section's rules (``model_copy(update=...)`` skips pydantic validation)."""
    from pydantic import ValidationError

    try:
        SampleConfig.model_validate(cfg.model_dump())
    except ValidationError as exc:
        raise UserError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Blocks run single-threaded so results do not depend on the thread count of the process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_block(model: nn.Module, sampler: Sampler, block: Block, cfg: SampleConfig, out_dir: str,
              data_shape: tuple[int, ...]) -> str:
    """Run one block of chains; write ``block-NNNNN.npz`` (x: kept draws, energy: full trace)."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, block.index]).generate_state(1)[0]))
    keep = [t for t in range(cfg.burn_in, cfg.steps) if (t - cfg.burn_in) % cfg.thin == 0]
    energy = np.zeros((block.n_chains, cfg.steps))
    draws = []
    with _single_thread(), torch.no_grad():
        state = sampler.init(model, block.n_chains, gen)
        for t in range(cfg.steps):
            state = sampler.step(model, state, 1, gen)
            energy[:, t] = state.energy.double().cpu().numpy()
            if t in keep:
                draws.append(sampler.to_data(model, state).float().cpu().numpy().reshape(block.n_chains, *data_shape))
    x = np.stack(draws, axis=1)  # (chains, draws, *data_shape)
    accepted = state.acceptance_rate()
    path = Path(out_dir) / f"block-{block.index:05d}.npz"
    with artifacts.atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            np.savez(f, x=x, energy=energy,
                     acceptance=accepted.cpu().numpy() if accepted is not None else np.array([]))
    return str(path)


def run_chains(model: nn.Module, sampler: Sampler, cfg: SampleConfig, out_dir: str | Path,
               data_shape: tuple[int, ...], progress: Callable[[dict[str, Any]], None] | None = None,
               ray_address: str | None = None) -> SampleSet:
    """Run all blocks (in-process when ``workers == 0``, else as Ray tasks) and write diagnostics."""
    validate(cfg)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("block-*.npz"):
        stale.unlink()
    blocks = blocks_of(cfg)
    total = cfg.chains * cfg.steps
    model = model.cpu().eval()
    runner = _run_in_process if cfg.workers == 0 else _run_on_ray
    runner(model, sampler, blocks, cfg, out_dir, tuple(data_shape), lambda done: progress and progress(
        {"kind": "sample", "done": done, "total": total}), ray_address)
    missing = [b.index for b in blocks if not (out_dir / f"block-{b.index:05d}.npz").exists()]
    if missing:
        raise UserError(f"sample: blocks {missing} were not written to {out_dir}; re-run the stage")
    diag = _diagnostics(out_dir, blocks, cfg) if cfg.diagnostics else {}
    n_draws = len(range(cfg.burn_in, cfg.steps, cfg.thin))
    seconds = time.perf_counter() - started
    artifacts.write_json(out_dir / MANIFEST, {
        "chains": cfg.chains, "steps": cfg.steps, "burn_in": cfg.burn_in, "thin": cfg.thin, "seed": cfg.seed,
        "sampler": getattr(sampler, "name", type(sampler).__name__), "blocks": len(blocks),
        "chains_per_block": cfg.chains_per_block, "workers": cfg.workers, "shape": list(data_shape),
        "draws_per_chain": n_draws, "seconds": seconds, "chain_steps_per_sec": total / max(seconds, 1e-9)})
    return SampleSet(str(out_dir), cfg.chains, n_draws, tuple(data_shape), diag, seconds)


def _run_in_process(model, sampler, blocks, cfg, out_dir, shape, tick, _address) -> None:
    for i, block in enumerate(blocks):
        run_block(model, sampler, block, cfg, str(out_dir), shape)
        tick(sum(b.n_chains for b in blocks[: i + 1]) * cfg.steps)


def _run_on_ray(model, sampler, blocks, cfg, out_dir, shape, tick, address) -> None:
    """Blocks as Ray tasks, at most ``workers`` at a time; a task whose worker dies is retried."""
    import ray

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(address)
    check_resources(cfg.workers, cfg.cpus_per_worker, cfg.gpus_per_worker)
    task = ray.remote(run_block).options(num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker,
                                         max_retries=3, retry_exceptions=False)
    model_ref, sampler_ref = ray.put(model), ray.put(sampler)
    pending, queue, done = {}, list(blocks), 0
    while queue or pending:
        while queue and len(pending) < cfg.workers:
            block = queue.pop(0)
            pending[task.remote(model_ref, sampler_ref, block, cfg, str(out_dir), shape)] = block
        ready, _ = ray.wait(list(pending), num_returns=1)
        block = pending.pop(ready[0])
        ray.get(ready[0])
        done += block.n_chains * cfg.steps
        tick(done)


def _diagnostics(out_dir: Path, blocks: list[Block], cfg: SampleConfig) -> dict[str, Any]:
    """R-hat/ESS of the post-burn-in energy traces of all chains together, plus acceptance rates."""
    traces, accept = [], []
    for b in blocks:
        with np.load(out_dir / f"block-{b.index:05d}.npz") as f:
            traces.append(f["energy"][:, cfg.burn_in:])
            accept.append(f["acceptance"])
    trace = np.concatenate(traces)
    out: dict[str, Any] = {"energy": diagnostics.summarize(trace) if trace.shape[1] >= 4 else {}}
    acc = np.concatenate(accept)
    if acc.size:
        out["acceptance_rate"] = {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max())}
    artifacts.write_json(out_dir / DIAGNOSTICS, out)
    return out


def sample(run_dir: str | Path, cfg: SampleConfig | None = None,
           progress: Callable[[dict[str, Any]], None] | None = None) -> SampleSet:
    """The stage: chains of the trained model of ``run_dir`` into ``run_dir/samples``."""
    from pipeline.trained import load_trained

    trained = load_trained(run_dir)
    cfg = cfg or trained.cfg.sample
    model, sampler = trained.recipe.sampler(cfg.sampler)
    return run_chains(model, sampler, cfg, Path(run_dir) / "samples", trained.recipe.data.shape, progress,
                      trained.cfg.resources.ray_address)


def load_samples(run_dir: str | Path, limit: int | None = None) -> np.ndarray:
    """(N, *shape) samples: the last draw of every chain first, then earlier draws, up to ``limit``."""
    out_dir = Path(run_dir) / "samples"
    files = sorted(out_dir.glob("block-*.npz"))
    if not files:
        raise UserError(f"sample: no samples in {out_dir}; run `boltzgan sample {run_dir}` first")
    xs = []
    for path in files:
        with np.load(path) as f:
            xs.append(f["x"])
    x = np.concatenate(xs)  # (chains, draws, *shape)
    ordered = np.concatenate([x[:, d] for d in range(x.shape[1] - 1, -1, -1)])
    return ordered[:limit] if limit else ordered


def _ais_block(model: nn.Module, base: torch.Tensor, betas: torch.Tensor, runs: int, seed: int,
               index: int) -> torch.Tensor:
    from models.ais import ais_log_weights

    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index, 0xA15]).generate_state(1)[0]))
    with _single_thread():
        return ais_log_weights(model, base, betas, runs, gen)


def parallel_ais_log_weights(model: nn.Module, base: torch.Tensor, betas: torch.Tensor, runs: int,
                             workers: int, seed: int, address: str | None = None,
                             runs_per_block: int = 25) -> torch.Tensor:
    """Raw AIS log-weights of ``runs`` runs in seeded blocks, on ``workers`` Ray workers (0/1: here).

    The driver merges them with one log-sum-exp (:func:`models.ais.combine_log_weights`); the
    result is identical for any worker count.
    """
    sizes = [min(runs_per_block, runs - s) for s in range(0, runs, runs_per_block)]
    if workers <= 1:
        return torch.cat([_ais_block(model, base, betas, n, seed, i) for i, n in enumerate(sizes)])
    import ray

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(address)
    check_resources(workers, 1.0)
    task = ray.remote(_ais_block).options(num_cpus=1, max_retries=3)
    refs = [ray.put(model), ray.put(base), ray.put(betas)]
    futures = [task.remote(*refs, n, seed, i) for i, n in enumerate(sizes)]
    return torch.cat(ray.get(futures))
