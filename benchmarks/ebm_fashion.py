"""Deep EBMs on Fashion-MNIST after a fixed CPU budget: domain-feature FID of short-run and
long-run Langevin samples.

Two presets train in this process (the recipe's ``train_step``, no Ray) until each has used
``--cpu-seconds`` of process CPU time: ``ebm-fashion`` (Du & Mordatch 2019: replay buffer, K = 60)
and ``ebm-shortrun-fashion`` (Nijkamp et al. 2019: chains from uniform noise every step, K = 100).
Then ``--samples`` chains start from uniform noise and run the model's own Langevin dynamics:
the *short-run* sample is the chain after the training K steps, the *long-run* sample the same
chain after ``--long-steps`` steps. Both are scored with the ``domain`` extractor exactly as
``boltzgan evaluate`` scores a run; the buffer column scores the replay buffer's latest
entries (the training chains' end points) where the model has one, and the buffer long-run
column the same entries after ``--long-steps`` more steps of the model's Langevin dynamics
(``sample.init=buffer``, the sampling stage's default for such a run). Short-run models are known to look good only at their own K
(Nijkamp et al. 2019): the long-run column shows whether the learned energy holds up.

    python benchmarks/ebm_fashion.py                            # the README table (1,800 CPU-s per model)
    python benchmarks/ebm_fashion.py --cpu-seconds 20 --samples 200 --long-steps 200   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fashion import add_common_args, domain_scores, recipe_for, setup, train_for  # noqa: E402

PRESETS = ["ebm-fashion", "ebm-shortrun-fashion"]


def chains(recipe, n: int, long_steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(short-run, long-run) samples from the same noise starts, and the sampling wall-clock.

    ``init="noise"`` is explicit: the recipe's default for a model trained with a replay buffer is
    the buffer, and these columns are meant to show the dynamics from uniform noise (before
    2026-12-08 they inherited the default and so started from buffer rows)."""
    model, sampler = recipe.sampler(init="noise")
    k = recipe.mcfg.langevin_steps
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    short, long = [], []
    for size in [min(250, n - i) for i in range(0, n, 250)]:
        state = sampler.step(model, sampler.init(model, size, gen), k, gen)
        short.append(sampler.to_data(model, state))
        state = sampler.step(model, state, long_steps - k, gen)
        long.append(sampler.to_data(model, state))
    shape = tuple(recipe.data.shape)
    return (torch.cat(short).reshape(n, *shape), torch.cat(long).reshape(n, *shape),
            time.perf_counter() - started)


def buffer_long_run(recipe, n: int, steps: int, seed: int) -> torch.Tensor:
    """The buffer column's ``n`` entries (the latest chain end points), after ``steps`` more Langevin steps."""
    model, sampler = recipe.sampler(init="buffer")
    gen = torch.Generator().manual_seed(seed)
    starts = recipe.buffer.latest(n)  # at most the buffer's capacity
    n = len(starts)
    out = []
    for i in range(0, n, 250):
        state = sampler.step(model, sampler.from_points(model, starts[i:i + 250]), steps, gen)
        out.append(sampler.to_data(model, state))
    return torch.cat(out).reshape(n, *recipe.data.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=500, help="chains (and real test images) scored")
    ap.add_argument("--long-steps", type=int, default=300, help="Langevin steps of the long-run chains")
    ap.add_argument("--only", nargs="+", default=PRESETS, choices=PRESETS)
    add_common_args(ap, cpu_seconds=1800.0)
    args = ap.parse_args()
    data, x = setup(args)
    cache = args.cache / "cache"
    rows = []
    for preset in args.only:
        recipe = recipe_for(preset, data, [], args.seed)
        if args.long_steps <= recipe.mcfg.langevin_steps:
            raise SystemExit(f"--long-steps={args.long_steps} must exceed {preset}'s K={recipe.mcfg.langevin_steps}")
        timing = train_for(recipe.train_step, x, recipe.cfg.train.batch_size, args.cpu_seconds, args.seed)
        short, long, sample_s = chains(recipe, args.samples, args.long_steps, args.seed)
        scores = {"short": domain_scores(data, short, cache), "long": domain_scores(data, long, cache)}
        pushed = timing["steps"] * recipe.cfg.train.batch_size
        if recipe.buffer is not None and pushed >= args.samples:
            scores["buffer"] = domain_scores(data, recipe.buffer.latest(args.samples), cache)
            scores["buffer_long"] = domain_scores(data, buffer_long_run(recipe, args.samples, args.long_steps,
                                                                        args.seed), cache)
        rows.append((preset, recipe.mcfg.langevin_steps, timing, sample_s, scores))
        print(f"# {preset}: " + ", ".join(f"{k} FID {v['fid']:.2f}" for k, v in scores.items()),
              file=sys.stderr, flush=True)

    s = rows[0][4]["short"]
    print(f"\nFashion-MNIST deep EBMs, {args.cpu_seconds:.0f} CPU-seconds of training per model ({args.threads} "
          f"threads), seed {args.seed}; FID on {s['n']:,} samples vs {s['n']:,} test images, features: {s['label']}; "
          f"real train-vs-test floor FID {s['floor']:.2f}; long-run = {args.long_steps} Langevin steps from noise\n")
    print("| preset | training steps | epochs | short-run FID from noise (K steps) | long-run FID from noise | "
          "replay-buffer FID | buffer long-run FID | sampling wall-clock |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for preset, k, t, sample_s, sc in rows:
        buffer = f"{sc['buffer']['fid']:.2f}" if "buffer" in sc else "—"
        buffer_long = f"{sc['buffer_long']['fid']:.2f}" if "buffer_long" in sc else "—"
        print(f"| {preset} | {t['steps']:,} | {t['epochs']:.2f} | {sc['short']['fid']:.2f} (K={k}) | "
              f"{sc['long']['fid']:.2f} | {buffer} | {buffer_long} | {sample_s:.0f} s |")


if __name__ == "__main__":
    main()
