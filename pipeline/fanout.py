"""One way to spread independent pieces of work over Ray tasks: sampling blocks, AIS runs, feature
chunks all go through :func:`fan_out`.

Work is cut by the caller into items whose results do not depend on where they run (each item
draws its randomness from its own seeded stream, :func:`block_generator`), so a result is the same
on any number of workers. Large shared arguments (a model, an extractor) are shipped once with
``ray.put``; at most ``workers`` tasks are in flight; a task whose worker dies is re-run by Ray.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

AIS_STREAM = 0xA15  # keeps AIS streams apart from chain streams of the same seed

# run_fn(model, n, generator) -> (n,) raw AIS log-weights
RunFn = Callable[[nn.Module, int, torch.Generator], Tensor]


def block_generator(seed: int, *stream: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of one block: seeded by a SeedSequence hash of (seed, block, ...), not seed + b,
    so neighbouring seeds do not share streams."""
    state = int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Blocks run single-threaded so results do not depend on the thread count of the process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fan_out(fn: Callable[..., Any], shared: Sequence[Any], items: Sequence[Sequence[Any]], workers: int,
            cpus: float = 1.0, gpus: float = 0.0, address: str | None = None, setting: str | None = None,
            on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(*shared, *item) for item in items]``, in this process when ``workers <= 0``, else as
    Ray tasks of ``cpus``/``gpus`` each with at most ``workers`` in flight. Results are in item
    order; ``on_done(i, result)`` is called as each item finishes. ``setting`` names the config
    key of the worker count in a resource error."""
    out: list[Any] = [None] * len(items)

    def done(i: int, result: Any) -> None:
        out[i] = result
        if on_done is not None:
            on_done(i, result)

    if workers <= 0:
        for i, item in enumerate(items):
            done(i, fn(*shared, *item))
        return out
    import ray

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(address)
    check_resources(workers, cpus, gpus, setting)
    task = ray.remote(fn).options(num_cpus=cpus, num_gpus=gpus, max_retries=3, retry_exceptions=False)
    refs = [ray.put(obj) for obj in shared]  # shipped once, shared by every task
    submit = [functools.partial(task.remote, *refs, *item) for item in items]
    _bounded(submit, workers, done)
    return out


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


# ------------------------------------------------------------------------------------- parallel AIS
def ais_block(model: nn.Module, run_fn: RunFn, n_runs: int, seed: int, index: int) -> Tensor:
    """Raw log-weights of block ``index`` of AIS runs, from its own seeded stream."""
    with single_thread():
        return run_fn(model, n_runs, block_generator(seed, index, AIS_STREAM))


def parallel_ais(model: nn.Module, run_fn: RunFn, n_runs: int, workers: int, seed: int,
                 address: str | None = None, runs_per_block: int = 25) -> Tensor:
    """Raw log-weights of ``n_runs`` AIS runs in seeded blocks, on ``workers`` Ray workers (0/1: here).

    ``run_fn(model, n, generator) -> (n,)`` log-weights (e.g. :func:`models.ais.rbm_ais_run` with
    its base model and schedule bound). The caller merges the weights of all blocks with one
    log-sum-exp (:func:`models.ais.combine_log_weights`): averaging per-worker log Ẑ would be biased
    low (Jensen). The weights are identical for any worker count.
    """
    sizes = [min(runs_per_block, n_runs - s) for s in range(0, n_runs, runs_per_block)]
    items = [(n, seed, i) for i, n in enumerate(sizes)]
    return torch.cat(fan_out(ais_block, (model, run_fn), items, workers if workers > 1 else 0,
                             address=address, setting="evaluate.workers"))


def parallel_ais_log_weights(model: nn.Module, base: Tensor, betas: Tensor, runs: int, workers: int, seed: int,
                             address: str | None = None, runs_per_block: int = 25) -> Tensor:
    """:func:`parallel_ais` of RBM AIS (:func:`models.ais.ais_log_weights`) from the base-rate model ``base``."""
    from models.ais import rbm_ais_run

    run_fn = functools.partial(rbm_ais_run, base=base, betas=betas)
    return parallel_ais(model, run_fn, runs, workers, seed, address, runs_per_block)
