"""8×8 digits at a fixed CPU budget per model: domain-feature FID of the deep EBM (replay-buffer
samples and long-run chains from the buffer), the DCGAN preset and the RBM preset.

Each preset trains in this process (its recipe's ``train_step``, no Ray) until it has used
``--cpu-seconds`` of process CPU time at ``--threads`` threads. Samples:

* EBM, buffer: the replay buffer's newest ``--samples`` entries (the training chains' end points);
* EBM, long-run: chains started from the buffer run ``--long-steps`` more steps of the model's own
  Langevin dynamics (does the learned energy hold up beyond the training K?);
* DCGAN: G(z) for fresh z;
* RBM: ``--gibbs-steps`` of block Gibbs from the sampler's start, visible probabilities.

Every sample is mapped linearly onto [−1, 1] and scored against the digits test split in [−1, 1]
with the ``domain`` extractor, as ``boltzgan evaluate`` scores a run, so all rows share one feature
space (the RBM trains on binarised digits and is scored against grey ones: that is its handicap).

    python benchmarks/digits_budget.py                                     # the README table
    python benchmarks/digits_budget.py --cpu-seconds 10 --samples 100 --long-steps 20 --gibbs-steps 20  # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fashion import domain_scores, recipe_for, train_for, train_images  # noqa: E402

from pipeline.config import DataConfig, load_config  # noqa: E402
from pipeline.data import prepare  # noqa: E402

PRESETS = {"ebm": "ebm-digits", "dcgan": "gan-digits", "rbm": "rbm-digits"}


def data_dir(cache: Path, cfg: DataConfig) -> Path:
    """One prepared directory per digits variant (scale, binarisation)."""
    return cache / f"digits-{cfg.scale}-{cfg.binarize}"


def to_symmetric(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    return ((x - lo) / (hi - lo) * 2 - 1).float()


def run_chains(recipe, n: int, steps: int, seed: int, **kw) -> torch.Tensor:
    model, sampler = recipe.sampler(**kw)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = sampler.step(model, sampler.init(model, n, gen), steps, gen)
        return sampler.to_data(model, state).reshape(n, *recipe.data.shape)


def samples_of(kind: str, recipe, args) -> dict[str, torch.Tensor]:
    n = args.samples
    if kind == "ebm":
        out = {"buffer": recipe.buffer.latest(n)}
        out["long-run"] = run_chains(recipe, n, args.long_steps, args.seed, init="buffer")
        return out
    if kind == "dcgan":
        return {"G(z)": run_chains(recipe, n, 1, args.seed)}
    return {"Gibbs": run_chains(recipe, n, args.gibbs_steps, args.seed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-seconds", type=float, default=600.0, help="process CPU time per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=350, help="samples (and real test images) scored")
    ap.add_argument("--long-steps", type=int, default=500, help="EBM Langevin steps of the long-run chains")
    ap.add_argument("--gibbs-steps", type=int, default=1000, help="RBM Gibbs steps per chain")
    ap.add_argument("--only", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KIND:KEY=VALUE",
                    help="override a preset value, e.g. ebm:model.langevin_steps=10")
    ap.add_argument("--cache", type=Path, default=Path("runs/bench-cache"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = prepare(DataConfig(source="digits", scale="symmetric"), data_dir(args.cache, DataConfig(scale="symmetric")))
    rows = []
    for kind in args.only:
        preset = PRESETS[kind]
        overrides = [o.split(":", 1)[1] for o in args.overrides if o.startswith(f"{kind}:")]
        dcfg = load_config(preset, overrides).data
        data = prepare(dcfg, data_dir(args.cache, dcfg))
        recipe = recipe_for(preset, data, overrides, args.seed)
        recipe.after_setup()
        x = train_images(data)
        timing = train_for(recipe.train_step, x, recipe.cfg.train.batch_size, args.cpu_seconds, args.seed)
        started = time.perf_counter()
        for label, s in samples_of(kind, recipe, args).items():
            score = domain_scores(ref, to_symmetric(s, recipe.data.value_range), args.cache / "cache")
            rows.append((preset, label, timing, score))
            print(f"# {preset} {label}: FID {score['fid']:.2f}", file=sys.stderr, flush=True)
        print(f"#   sampling + scoring {time.perf_counter() - started:.0f} s", file=sys.stderr)

    s = rows[0][3]
    print(f"\n8×8 digits, {args.cpu_seconds:.0f} CPU-seconds of training per model ({args.threads} thread(s)), "
          f"seed {args.seed}; FID on {s['n']} samples vs {s['n']} test images in [-1, 1], features: {s['label']}; "
          f"real train-vs-test floor FID {s['floor']:.2f}\n")
    print("| preset | samples | training steps | epochs | domain FID ↓ | domain IS ↑ |")
    print("|---|---|---:|---:|---:|---:|")
    for preset, label, t, sc in rows:
        print(f"| {preset} | {label} | {t['steps']:,} | {t['epochs']:.1f} | {sc['fid']:.2f} | {sc['is']:.2f} |")


if __name__ == "__main__":
    main()
