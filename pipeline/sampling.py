"""The sampling stage: many MCMC chains in parallel across Ray workers.

Chains are cut into fixed blocks of ``sample.chains_per_block``; block b draws all its randomness
from a generator seeded by (seed, b) and runs single-threaded, so a seed reproduces the whole
sample bit for bit on any number of workers. Each block is written to its own ``.npz`` file (atomically) by
the worker that ran it, so samples never pile up in the driver; the driver reads back only the
energy traces to compute R-hat/ESS over all chains at once. The manifest is written last: a
``samples/`` directory without one is incomplete and is not read.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models import diagnostics
from models.samplers.base import Sampler
from pipeline import artifacts
from pipeline.config import SampleConfig
from pipeline.errors import UserError

MANIFEST = "manifest.json"
DIAGNOSTICS = "diagnostics.json"
AIS_STREAM = 0xA15  # keeps AIS streams apart from chain streams of the same seed

Progress = Callable[[dict[str, Any]], None]
RunFn = Callable[[nn.Module, int, torch.Generator], Tensor]


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


def block_path(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / f"block-{index:05d}.npz"


def block_generator(seed: int, *stream: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of one block: seeded by a SeedSequence hash of (seed, block, ...), not seed + b,
    so neighbouring seeds do not share streams."""
    state = int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def validate(cfg: SampleConfig) -> None:
    """Re-check the section's rules (``model_copy(update=...)`` skips pydantic validation)."""
    from pydantic import ValidationError

    try:
        SampleConfig.model_validate(cfg.model_dump())
    except ValidationError as exc:
        raise UserError("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(err: dict[str, Any]) -> str:
    if not err["loc"]:  # a rule across fields: its message names them
        return err["msg"].removeprefix("Value error, ")
    key = "sample." + ".".join(str(p) for p in err["loc"])
    return f"{key} = {err.get('input')!r} is invalid: {err['msg']}"  # as config errors read


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Blocks run single-threaded so results do not depend on the thread count of the process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device(cfg: SampleConfig) -> str:
    """A block runs on a GPU when the section asks for one and the worker has one (Ray sets
    CUDA_VISIBLE_DEVICES per task). GPU streams differ from CPU streams, so a seed reproduces a
    sample per device type, still for any worker count."""
    return "cuda" if cfg.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"


def run_block(model: nn.Module, sampler: Sampler, block: Block, cfg: SampleConfig, out_dir: str,
              data_shape: tuple[int, ...]) -> str:
    """Run one block of chains; write ``block-NNNNN.npz`` (x: kept draws, energy: full trace)."""
    device = _device(cfg)
    model = model.to(device)
    gen = block_generator(cfg.seed, block.index, device=device)
    energy = np.zeros((block.n_chains, cfg.steps))
    draws = []
    with _single_thread(), torch.no_grad():
        state = sampler.init(model, block.n_chains, gen)
        for t in range(cfg.steps):
            state = sampler.step(model, state, 1, gen)
            energy[:, t] = state.energy.double().cpu().numpy()
            if t >= cfg.burn_in and (t - cfg.burn_in) % cfg.thin == 0:
                x = sampler.to_data(model, state).float().cpu().numpy()
                draws.append(x.reshape(block.n_chains, *data_shape))
    accepted = state.acceptance_rate()
    steps = sampler.step_sizes(state) if hasattr(sampler, "step_sizes") else None  # MALA/HMC: adapted
    path = block_path(out_dir, block.index)
    with artifacts.atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, x=np.stack(draws, axis=1), energy=energy,  # x: (chains, draws, *data_shape)
                 acceptance=accepted.cpu().numpy() if accepted is not None else np.array([]),
                 step_size=steps.cpu().numpy() if steps is not None else np.array([]))
    return str(path)


def run_chains(model: nn.Module, sampler: Sampler, cfg: SampleConfig, out_dir: str | Path,
               data_shape: tuple[int, ...], progress: Progress | None = None,
               ray_address: str | None = None) -> SampleSet:
    """Run all blocks (in-process when ``workers == 0``, else as Ray tasks) and write diagnostics.

    This is the stage without a run directory: any model with a sampler, any output directory.
    """
    validate(cfg)
    sampler = sampler.adapt_during(cfg.burn_in)  # MALA/HMC tune their step in burn-in only
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _clear(out_dir)
    blocks = blocks_of(cfg)
    total = cfg.chains * cfg.steps
    model = model.cpu().eval()
    shape = tuple(data_shape)
    done = 0

    def finished(block: Block) -> None:
        nonlocal done
        done += block.n_chains * cfg.steps
        if progress:
            progress({"kind": "sample", "done": done, "total": total})

    if cfg.workers == 0:
        for block in blocks:
            run_block(model, sampler, block, cfg, str(out_dir), shape)
            finished(block)
    else:
        _run_on_ray(model, sampler, blocks, cfg, out_dir, shape, finished, ray_address)
    _clear_partial(out_dir)  # temporary files of workers that died while writing
    missing = [b.index for b in blocks if not block_path(out_dir, b.index).exists()]
    if missing:
        raise UserError(f"sample: blocks {missing} were not written to {out_dir}; re-run the stage")
    diag = _diagnostics(out_dir, blocks, cfg) if cfg.diagnostics else {}
    n_draws = len(range(cfg.burn_in, cfg.steps, cfg.thin))
    seconds = time.perf_counter() - started
    artifacts.write_json(out_dir / MANIFEST, {
        "chains": cfg.chains, "steps": cfg.steps, "burn_in": cfg.burn_in, "thin": cfg.thin, "seed": cfg.seed,
        "sampler": getattr(sampler, "name", type(sampler).__name__), "blocks": len(blocks),
        "init": getattr(sampler, "init_kind", None),
        "chains_per_block": cfg.chains_per_block, "workers": cfg.workers, "shape": list(shape),
        "device": _device(cfg), "draws_per_chain": n_draws, "seconds": seconds,
        "chain_steps_per_sec": total / max(seconds, 1e-9)})
    return SampleSet(str(out_dir), cfg.chains, n_draws, shape, diag, seconds)


def _clear(out_dir: Path) -> None:
    """Remove an earlier sample: the manifest first, so a crash mid-run never looks complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST, DIAGNOSTICS):
        (out_dir / name).unlink(missing_ok=True)
    for stale in out_dir.glob("block-*.npz"):
        stale.unlink()
    _clear_partial(out_dir)


def _clear_partial(out_dir: Path) -> None:
    for tmp in out_dir.glob(".block-*.tmp"):
        tmp.unlink(missing_ok=True)


def _run_on_ray(model: nn.Module, sampler: Sampler, blocks: list[Block], cfg: SampleConfig, out_dir: Path,
                shape: tuple[int, ...], finished: Callable[[Block], None], address: str | None) -> None:
    """Blocks as Ray tasks, at most ``workers`` at a time; a task whose worker dies is re-run."""
    import ray

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(address)
    check_resources(cfg.workers, cfg.cpus_per_worker, cfg.gpus_per_worker, "sample.workers")
    task = ray.remote(run_block).options(num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker,
                                         max_retries=3, retry_exceptions=False)
    model_ref, sampler_ref = ray.put(model), ray.put(sampler)  # shipped once, shared by every task
    submit = [functools.partial(task.remote, model_ref, sampler_ref, b, cfg, str(out_dir), shape) for b in blocks]
    _bounded(submit, cfg.workers, lambda i, _: finished(blocks[i]))


def _bounded(submit: Sequence[Callable[[], Any]], limit: int, on_done: Callable[[int, Any], None]) -> None:
    """Launch Ray tasks keeping at most ``limit`` in flight; ``on_done(i, result)`` as each finishes."""
    import ray

    pending: dict[Any, int] = {}
    queue = list(range(len(submit)))
    while queue or pending:
        while queue and len(pending) < limit:
            i = queue.pop(0)
            pending[submit[i]()] = i
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        on_done(i, ray.get(ready[0]))


def _diagnostics(out_dir: Path, blocks: list[Block], cfg: SampleConfig) -> dict[str, Any]:
    """R-hat/ESS of the post-burn-in energy traces of all chains together, plus acceptance rates."""
    traces, accept, steps = [], [], []
    for b in blocks:
        with np.load(block_path(out_dir, b.index)) as f:
            traces.append(f["energy"][:, cfg.burn_in:])
            accept.append(f["acceptance"])
            steps.append(f["step_size"] if "step_size" in f else np.array([]))
    trace = np.concatenate(traces)
    out: dict[str, Any] = {"energy": diagnostics.summarize(trace) if trace.shape[1] >= 4 else {}}
    acc = np.concatenate(accept)
    if acc.size:
        out["acceptance_rate"] = {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max())}
    step = np.concatenate(steps)
    if step.size:  # the step each chain kept after burn-in adaptation
        out["step_size"] = {"mean": float(step.mean()), "min": float(step.min()), "max": float(step.max())}
    artifacts.write_json(out_dir / DIAGNOSTICS, out)
    return out


def sample(run_dir: str | Path, cfg: SampleConfig | None = None, progress: Progress | None = None) -> SampleSet:
    """The stage: chains of the trained model of ``run_dir`` into ``run_dir/samples``."""
    from pipeline.trained import load_trained

    trained = load_trained(run_dir)
    cfg = cfg or trained.cfg.sample
    model, sampler = family_sampler(trained, cfg)
    return run_chains(model, sampler, cfg, Path(run_dir) / "samples", trained.recipe.data.shape, progress,
                      trained.cfg.resources.ray_address)


def family_sampler(trained, cfg: SampleConfig) -> tuple[nn.Module, Sampler]:
    """The recipe's sampler for ``cfg``: ``sample.init`` (deep EBMs only, checked against the family)
    picks where chains start; ``init=data`` passes up to 10,000 training points, drawn by ``cfg.seed``."""
    problem = trained.cfg.model.check_sample(cfg)
    if problem:
        raise UserError(problem)
    if cfg.init is None:
        return trained.recipe.sampler(cfg.sampler)
    data = _data_pool(trained, cfg.seed) if cfg.init == "data" else None
    return trained.recipe.sampler(cfg.sampler, init=cfg.init, data=data)


def _data_pool(trained, seed: int, limit: int = 10_000) -> Tensor:
    from pipeline.data import open_split

    if trained.data is None:
        raise UserError("sample.init=data: the run records no prepared data (data.json); use buffer or noise")
    x, _ = open_split(trained.data.path, "train")
    rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
    return torch.from_numpy(np.array(x[rows], dtype=np.float32))


def load_samples(run_dir: str | Path, limit: int | None = None, draw: int | None = None) -> np.ndarray:
    """(N, *shape) samples: the last draw of every chain first, then earlier draws, up to ``limit``.

    With ``draw`` (an index into the kept draws, e.g. 0 for the first, −1 for the last) only that
    draw of every chain. Only the draws needed are kept while reading the blocks.
    """
    out_dir = Path(run_dir) / "samples"
    if not (out_dir / MANIFEST).exists():
        raise UserError(f"sample: no complete sample in {out_dir} (no {MANIFEST}); "
                        f"run `boltzgan sample {run_dir}` first")
    manifest = artifacts.read_json(out_dir / MANIFEST)
    keep = manifest["draws_per_chain"] if not limit else min(manifest["draws_per_chain"],
                                                             math.ceil(limit / manifest["chains"]))
    xs = []
    for b in range(manifest["blocks"]):
        with np.load(block_path(out_dir, b)) as f:
            if draw is not None:
                xs.append(f["x"][:, draw].copy())
            else:
                xs.append(f["x"][:, -keep:].copy())  # not a view: the full block is freed
    if draw is not None:
        x = np.concatenate(xs)
        return x[:limit] if limit else x
    x = np.concatenate(xs)  # (chains, draws, *shape)
    ordered = np.concatenate([x[:, d] for d in range(x.shape[1] - 1, -1, -1)])
    return ordered[:limit] if limit else ordered


# ------------------------------------------------------------------------------------- parallel AIS
def ais_block(model: nn.Module, run_fn: RunFn, n_runs: int, seed: int, index: int) -> Tensor:
    """Raw log-weights of block ``index`` of AIS runs, from its own seeded stream."""
    with _single_thread():
        return run_fn(model, n_runs, block_generator(seed, index, AIS_STREAM))


def parallel_ais(model: nn.Module, run_fn: RunFn, n_runs: int, workers: int, seed: int,
                 address: str | None = None, runs_per_block: int = 25) -> Tensor:
    """Raw log-weights of ``n_runs`` AIS runs in seeded blocks, on ``workers`` Ray workers (0/1: here).

    ``run_fn(model, n, generator) -> (n,)`` log-weights (e.g. :func:`models.ais.ais_log_weights` with
    its base model and schedule bound). The caller merges the weights of all blocks with one
    log-sum-exp (:func:`models.ais.combine_log_weights`): averaging per-worker log Ẑ would be biased
    low (Jensen). The weights are identical for any worker count.
    """
    sizes = [min(runs_per_block, n_runs - s) for s in range(0, n_runs, runs_per_block)]
    if workers <= 1:
        return torch.cat([ais_block(model, run_fn, n, seed, i) for i, n in enumerate(sizes)])
    import ray

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(address)
    check_resources(workers, 1.0)
    task = ray.remote(ais_block).options(num_cpus=1, max_retries=3, retry_exceptions=False)
    model_ref, fn_ref = ray.put(model), ray.put(run_fn)
    submit = [functools.partial(task.remote, model_ref, fn_ref, n, seed, i) for i, n in enumerate(sizes)]
    out: list[Tensor | None] = [None] * len(sizes)
    _bounded(submit, workers, out.__setitem__)
    return torch.cat(out)


def parallel_ais_log_weights(model: nn.Module, base: Tensor, betas: Tensor, runs: int, workers: int, seed: int,
                             address: str | None = None, runs_per_block: int = 25) -> Tensor:
    """:func:`parallel_ais` of RBM AIS (:func:`models.ais.ais_log_weights`) from the base-rate model ``base``."""
    from models.ais import rbm_ais_run

    run_fn = functools.partial(rbm_ais_run, base=base, betas=betas)
    return parallel_ais(model, run_fn, runs, workers, seed, address, runs_per_block)
