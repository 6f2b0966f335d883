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
    storage: str | None = None  # the sample's folder in output.storage (its URI), when it has one
    key: str = ""  # what it was made from (pipeline.stage_keys); '' for a sample written outside a run
    skipped: bool = False  # True when a re-run found this sample already made from the same inputs

    @property
    def dir(self) -> SampleDir:
        from pipeline.storage import Store

        return SampleDir(Path(self.path), Store.open(self.storage) if self.storage else None)

    @classmethod
    def read(cls, where: SampleDir) -> SampleSet | None:
        """The complete sample stored in ``where`` (None when there is none)."""
        if not where.is_complete():
            return None
        m = where.read_manifest()
        return cls(str(where.path), m["chains"], m["draws_per_chain"], tuple(m["shape"]), where.read_diagnostics(),
                   m.get("seconds", 0.0), m.get("sampler", ""),
                   where.store.uri if where.store is not None else None, m.get("key", ""))

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


def run_block(model: nn.Module, sampler: Sampler, block: Block, cfg: SampleConfig, out: SampleDir,
              data_shape: tuple[int, ...]) -> str:
    """Run one block of chains; write ``block-NNNNN.npz`` (x: kept draws, energy: full trace) to
    ``out``: its storage when it has one (from whichever node runs the block), else its directory."""
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
    steps = sampler.step_sizes(state) if hasattr(sampler, "step_sizes") else None  # MALA/HMC: adapted
    path = out.write_block(  # x: (chains, draws, *data_shape)
        block.index, x=np.stack(draws, axis=1), energy=energy,
        acceptance=accepted.cpu().numpy() if accepted is not None else np.array([]),
        step_size=steps.cpu().numpy() if steps is not None else np.array([]), **_swap_counts(state))
    return path


def _swap_counts(state) -> dict[str, np.ndarray]:
    """Per-pair swap counts of a replica-exchange sampler (parallel tempering), empty otherwise."""
    ex = state.extras
    if "swap_accepted" not in ex:
        return {"swap_accepted": np.array([]), "swap_attempts": np.array([])}
    return {"swap_accepted": ex["swap_accepted"].cpu().numpy(), "swap_attempts": ex["swap_attempts"].cpu().numpy()}


def run_chains(model: nn.Module, sampler: Sampler, cfg: SampleConfig, out_dir: str | Path | SampleDir,
               data_shape: tuple[int, ...], progress: Progress | None = None,
               ray_address: str | None = None, key: str = "") -> SampleSet:
    """Run all blocks (in-process when ``workers == 0``, else as Ray tasks) and write diagnostics.

    This is the stage without a run directory: any model with a sampler, any output directory.
    """
    validate(cfg)
    sampler = sampler.adapt_during(cfg.burn_in)  # MALA/HMC tune their step in burn-in only
    started = time.perf_counter()
    out = out_dir if isinstance(out_dir, SampleDir) else SampleDir(Path(out_dir))
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

    fan_out(run_block, (model, sampler), [(b, cfg, out, shape) for b in blocks], cfg.workers,
            cfg.cpus_per_worker, cfg.gpus_per_worker, ray_address, "sample.workers", finished)
    out.clear_partial()  # temporary files of workers that died while writing
    missing = [b.index for b in blocks if not out.has_block(b.index)]
    if missing:
        raise UserError(f"sample: blocks {missing} were not written to {out.store or out.path}; re-run the stage")
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
        "sampler": name, "blocks": len(blocks), "init": getattr(sampler, "init_kind", None),
        "chains_per_block": cfg.chains_per_block, "workers": cfg.workers, "shape": list(shape),
        "device": _device(cfg), "draws_per_chain": n_draws, "seconds": seconds,
        "chain_steps_per_sec": total / max(seconds, 1e-9), "key": key})
    return SampleSet(str(out.path), cfg.chains, n_draws, shape, diag, seconds, name,
                     out.store.uri if out.store is not None else None, key)


def _diagnostics(out: SampleDir, blocks: list[Block], cfg: SampleConfig) -> dict[str, Any]:
    """R-hat/ESS of the post-burn-in energy traces of all chains together, plus acceptance rates."""
    traces, accept, steps, swaps = [], [], [], []
    for b in blocks:
        arrays = out.read_block(b.index, "energy", "acceptance", "step_size", "swap_accepted", "swap_attempts")
        traces.append(arrays["energy"][:, cfg.burn_in:])
        accept.append(arrays["acceptance"])
        steps.append(arrays["step_size"])
        if arrays["swap_attempts"].size:
            swaps.append((arrays["swap_accepted"], arrays["swap_attempts"]))
    trace = np.concatenate(traces)
    result: dict[str, Any] = {"energy": diagnostics.summarize(trace) if trace.shape[1] >= 4 else {}}
    acc = np.concatenate(accept)
    if acc.size:
        result["acceptance_rate"] = {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max())}
    if swaps:  # parallel tempering: acceptance of each neighbouring pair of temperatures, all blocks pooled
        result["swap_acceptance_rate"] = (sum(a for a, _ in swaps) / sum(t for _, t in swaps)).tolist()
    step = np.concatenate(steps)
    if step.size:  # the step each chain kept after burn-in adaptation
        result["step_size"] = {"mean": float(step.mean()), "min": float(step.min()), "max": float(step.max())}
    out.write_diagnostics(result)
    return result


def sample(run_dir: str | Path | RunDir, cfg: SampleConfig | None = None,
           progress: Progress | None = None, reuse: bool = False) -> SampleSet:
    """The stage: chains of the trained model of ``run_dir`` into its ``samples/`` (the run's own
    ``sample`` section unless ``cfg`` is given). With ``reuse``, a stored sample made from the same
    model and settings is returned as it is (``skipped``): a re-run of a finished pipeline."""
    from pipeline.stage_keys import stage_key
    from pipeline.trained import load_trained

    run = RunDir.at(run_dir)
    trained = None if cfg is not None else load_trained(run_dir)
    cfg = cfg or trained.cfg.sample
    key = stage_key(run, cfg)
    stored = SampleSet.read(run.samples) if reuse else None
    if stored is not None and stored.key == key:
        stored.skipped = True
        return stored
    trained = trained or load_trained(run_dir)
    model, sampler = family_sampler(trained, cfg)
    return run_chains(model, sampler, cfg, trained.run_dir.samples, trained.recipe.data.shape, progress,
                      trained.cfg.resources.ray_address, key)


def family_sampler(trained, cfg: SampleConfig) -> tuple[nn.Module, Sampler]:
    """The recipe's sampler for ``cfg``: ``sample.init`` (deep EBMs only, checked against the family)
    picks where chains start; ``init=data`` passes up to 10,000 training points, drawn by ``cfg.seed``."""
    trained.recipe.check_sampler(cfg.sampler)
    problem = trained.cfg.model.check_sample(cfg)
    if problem:
        raise UserError(problem)
    if cfg.init is None:
        return trained.recipe.sampler(cfg.sampler)
    data = _data_pool(trained, cfg.seed) if cfg.init == "data" else None
    return trained.recipe.sampler(cfg.sampler, init=cfg.init, data=data)


def _data_pool(trained, seed: int, limit: int = 10_000) -> torch.Tensor:
    from pipeline.data import open_split

    if trained.data is None:
        raise UserError("sample.init=data: the run records no prepared data; use sample.init=buffer or noise")
    x, _ = open_split(trained.data.path, "train")
    rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
    return torch.from_numpy(np.array(x[rows], dtype=np.float32))


def sample_dir_of(where: str | Path | RunDir | SampleDir) -> SampleDir:
    if isinstance(where, SampleDir):
        return where
    return RunDir.at(where).samples


def load_samples(where: str | Path | RunDir | SampleDir, limit: int | None = None,
                 draw: int | None = None) -> np.ndarray:
    """(N, *shape) samples: the last draw of every chain first, then earlier draws, up to ``limit``.

    ``where`` is a run directory (its ``samples/``) or a sample directory. With ``draw`` (an index
    into the kept draws: 0 the first, −1 the last) only that draw of every chain. Only the draws
    needed for ``limit`` are kept while reading the blocks.
    """
    where = sample_dir_of(where)
    manifest = where.read_manifest()
    if draw is not None:
        x = np.concatenate([where.read_block(b, "x")["x"][:, draw] for b in range(manifest["blocks"])])
        return x[:limit] if limit else x
    keep = manifest["draws_per_chain"] if not limit else min(manifest["draws_per_chain"],
                                                             math.ceil(limit / manifest["chains"]))
    xs = [where.read_block(b, "x")["x"][:, -keep:] for b in range(manifest["blocks"])]
    x = np.concatenate(xs)  # (chains, draws, *shape)
    ordered = np.concatenate([x[:, d] for d in range(x.shape[1] - 1, -1, -1)])
    return ordered[:limit] if limit else ordered
