"""The sampling stage: many MCMC chains in parallel across Ray workers.

Chains are cut into fixed blocks of ``sample.chains_per_block``; block b draws all its randomness
from a generator seeded by (seed, b) and runs single-threaded, so a seed reproduces the whole
sample bit for bit on any number of workers. Each block is written to its own ``.npz`` file (atomically) by
the worker that ran it, so samples never pile up in the driver; the driver reads back only the
energy traces to compute R-hat/ESS over all chains at once. The manifest is written last: a
``samples/`` directory without one is incomplete and is not read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import diagnostics
from models.samplers.base import Sampler
from pipeline.config import SampleConfig
from pipeline.errors import UserError
from pipeline.fanout import block_generator, fan_out, single_thread
from pipeline.rundir import RunDir, SampleDir

Progress = Callable[[dict[str, Any]], None]


@dataclass
class SampleSet:
    """What the sampling stage hands on: where the sample is and what it holds."""

    path: str
    chains: int
    draws_per_chain: int
    shape: tuple[int, ...]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    sampler: str = ""

    @property
    def dir(self) -> SampleDir:
        return SampleDir(Path(self.path))

    def load(self, limit: int | None = None) -> np.ndarray:
        """The draws, last draw of every chain first (:func:`load_samples`)."""
        return load_samples(self.dir, limit)


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
        raise UserError("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(err: dict[str, Any]) -> str:
    if not err["loc"]:  # a rule across fields: its message names them
        return err["msg"].removeprefix("Value error, ")
    key = "sample." + ".".join(str(p) for p in err["loc"])
    return f"{key} = {err.get('input')!r} is invalid: {err['msg']}"  # as config errors read


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
    with single_thread(), torch.no_grad():
        state = sampler.init(model, block.n_chains, gen)
        for t in range(cfg.steps):
            state = sampler.step(model, state, 1, gen)
            energy[:, t] = state.energy.double().cpu().numpy()
            if t >= cfg.burn_in and (t - cfg.burn_in) % cfg.thin == 0:
                x = sampler.to_data(model, state).float().cpu().numpy()
                draws.append(x.reshape(block.n_chains, *data_shape))
    accepted = state.acceptance_rate()
    path = SampleDir(Path(out_dir)).write_block(  # x: (chains, draws, *data_shape)
        block.index, x=np.stack(draws, axis=1), energy=energy,
        acceptance=accepted.cpu().numpy() if accepted is not None else np.array([]))
    return str(path)


def run_chains(model: nn.Module, sampler: Sampler, cfg: SampleConfig, out_dir: str | Path,
               data_shape: tuple[int, ...], progress: Progress | None = None,
               ray_address: str | None = None) -> SampleSet:
    """Run all blocks (in-process when ``workers == 0``, else as Ray tasks) and write diagnostics.

    This is the stage without a run directory: any model with a sampler, any output directory.
    """
    validate(cfg)
    started = time.perf_counter()
    out = SampleDir(Path(out_dir))
    out.clear()
    blocks = blocks_of(cfg)
    total = cfg.chains * cfg.steps
    model = model.cpu().eval()
    shape = tuple(data_shape)
    done = 0

    def finished(i: int, _: Any) -> None:
        nonlocal done
        done += blocks[i].n_chains * cfg.steps
        if progress:
            progress({"kind": "sample", "done": done, "total": total})

    fan_out(run_block, (model, sampler), [(b, cfg, str(out.path), shape) for b in blocks], cfg.workers,
            cfg.cpus_per_worker, cfg.gpus_per_worker, ray_address, "sample.workers", finished)
    out.clear_partial()  # temporary files of workers that died while writing
    missing = [b.index for b in blocks if not out.block(b.index).exists()]
    if missing:
        raise UserError(f"sample: blocks {missing} were not written to {out.path}; re-run the stage")
    if not sampler.has_chains:
        diag = {"skipped": f"the {sampler.name} sampler draws independent samples: no chains, so no R-hat/ESS"}
        out.write_diagnostics(diag)
    else:
        diag = _diagnostics(out, blocks, cfg) if cfg.diagnostics else {}
    n_draws = len(range(cfg.burn_in, cfg.steps, cfg.thin))
    seconds = time.perf_counter() - started
    name = sampler.name
    out.write_manifest({
        "chains": cfg.chains, "steps": cfg.steps, "burn_in": cfg.burn_in, "thin": cfg.thin, "seed": cfg.seed,
        "sampler": name, "blocks": len(blocks),
        "chains_per_block": cfg.chains_per_block, "workers": cfg.workers, "shape": list(shape),
        "device": _device(cfg), "draws_per_chain": n_draws, "seconds": seconds,
        "chain_steps_per_sec": total / max(seconds, 1e-9)})
    return SampleSet(str(out.path), cfg.chains, n_draws, shape, diag, seconds, name)


def _diagnostics(out: SampleDir, blocks: list[Block], cfg: SampleConfig) -> dict[str, Any]:
    """R-hat/ESS of the post-burn-in energy traces of all chains together, plus acceptance rates."""
    traces, accept = [], []
    for b in blocks:
        arrays = out.read_block(b.index, "energy", "acceptance")
        traces.append(arrays["energy"][:, cfg.burn_in:])
        accept.append(arrays["acceptance"])
    trace = np.concatenate(traces)
    result: dict[str, Any] = {"energy": diagnostics.summarize(trace) if trace.shape[1] >= 4 else {}}
    acc = np.concatenate(accept)
    if acc.size:
        result["acceptance_rate"] = {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max())}
    out.write_diagnostics(result)
    return result


def sample(run_dir: str | Path | RunDir, cfg: SampleConfig | None = None,
           progress: Progress | None = None) -> SampleSet:
    """The stage: chains of the trained model of ``run_dir`` into its ``samples/`` (the run's own
    ``sample`` section unless ``cfg`` is given)."""
    from pipeline.trained import load_trained

    trained = load_trained(run_dir)
    cfg = cfg or trained.cfg.sample
    trained.recipe.check_sampler(cfg.sampler)
    model, sampler = trained.recipe.sampler(cfg.sampler)
    return run_chains(model, sampler, cfg, trained.run_dir.samples.path, trained.recipe.data.shape, progress,
                      trained.cfg.resources.ray_address)


def load_samples(where: str | Path | RunDir | SampleDir, limit: int | None = None) -> np.ndarray:
    """(N, *shape) samples: the last draw of every chain first, then earlier draws, up to ``limit``.

    ``where`` is a run directory (its ``samples/``) or a sample directory. Only the draws needed
    for ``limit`` are kept while reading the blocks.
    """
    if not isinstance(where, SampleDir):
        where = (where if isinstance(where, RunDir) else RunDir(Path(where))).samples
    manifest = where.read_manifest()
    keep = manifest["draws_per_chain"] if not limit else min(manifest["draws_per_chain"],
                                                             math.ceil(limit / manifest["chains"]))
    xs = [where.read_block(b, "x")["x"][:, -keep:] for b in range(manifest["blocks"])]
    x = np.concatenate(xs)  # (chains, draws, *shape)
    ordered = np.concatenate([x[:, d] for d in range(x.shape[1] - 1, -1, -1)])
    return ordered[:limit] if limit else ordered
