"""Mode collapse on the 2-D mixtures: minimax GAN, non-saturating GAN, WGAN and WGAN-GP.

For every toy (ring8, grid25), loss and seed, the GAN recipe of the matching preset (its paper
defaults: optimiser, lr, betas, n_critic, clip, λ) is trained in-process by calling its
``train_step`` directly (no Ray, no engine), on fresh mixture batches from
``models.toys.mixtures.sample_mixture`` every step, for a fixed number of *generator* steps (so
n_critic = 5 losses take 5× as many discriminator steps). Then 2,500 samples from G are scored
with PacGAN's metrics: modes covered, fraction of high-quality samples (within 3σ of a mode) and
the reverse KL of the mode histogram. The table shows mean ± std over seeds.

It first prints the bilinear game min_x max_y xy (``models.toys.bilinear``): each dynamics'
measured per-step norm factor next to its analytic one; ``--bilinear-plot PATH`` saves the
trajectory figure.

    python benchmarks/gan_toys.py                                  # full: 10 seeds, 2,000 G steps
    python benchmarks/gan_toys.py --losses wgan-gp --toys grid25   # one slice of the full run
    python benchmarks/gan_toys.py --seeds 1 --g-steps 20           # smoke test
    python benchmarks/gan_toys.py --json out.json                  # also write every run
    python benchmarks/gan_toys.py --merge a.json b.json            # one table from split runs
    python benchmarks/gan_toys.py --losses --bilinear-plot bilinear.png   # the bilinear game only

Cost, measured on this 2-core CPU at 1 thread: about 7 to 13 s per run for minimax and
non-saturating, 37 s for WGAN and 145 s for WGAN-GP (10,000 critic steps, each with a double
backward) while other benchmarks shared the cores (WGAN-GP alone: about 50 s); the full run took
about an hour. Split it by --losses/--toys across machines and --merge the JSON files.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.toys import bilinear  # noqa: E402
from models.toys.mixtures import mode_metrics, sample_mixture  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.recipes.base import Batch, DataShape  # noqa: E402
from pipeline.recipes.gan import MODE_METRIC_SAMPLES, GANRecipe  # noqa: E402

PRESETS = {"minimax": "gan-ring8", "nonsaturating": "nsgan-ring8", "wgan": "wgan-ring8", "wgan-gp": "wgan-gp-ring8"}
METRICS = ("modes_covered", "high_quality_fraction", "reverse_kl")


def run_one(toy: str, loss: str, seed: int, g_steps: int, extra: list[str]) -> dict[str, float]:
    """Train one GAN for ``g_steps`` generator steps; return its mode metrics and timing."""
    cfg = load_config(PRESETS[loss], [f"data.source=toy:{toy}", f"train.seed={seed}", *extra])
    recipe = GANRecipe(cfg, DataShape(shape=(2,), value_range=(-5.0, 5.0), binary=False))
    torch.manual_seed(seed)
    recipe.optimizers = recipe.build_optimizers()
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    started = time.perf_counter()
    for step in range(g_steps * cfg.model.n_critic):
        x, _ = sample_mixture(toy, cfg.train.batch_size, data_gen)
        recipe.train_step(Batch(x=x, y=None, weight=1.0, step=step, epoch=0))
    seconds = time.perf_counter() - started
    samples = recipe.generate(MODE_METRIC_SAMPLES, torch.Generator().manual_seed(seed))
    return mode_metrics(samples, toy) | {"seconds": seconds}


def bilinear_table(eta: float, steps: int) -> None:
    """Per-step factor ‖z_T‖/‖z_0‖ ^ (1/T) of each dynamics against its closed form."""
    analytic = {"simultaneous": bilinear.simultaneous_rate(eta), "extragradient": bilinear.extragradient_rate(eta),
                "optimistic": bilinear.optimistic_rate(eta), "alternating": 1.0}
    z0 = torch.tensor([1.0, 1.0])
    print(f"Bilinear game min_x max_y xy, η = {eta}, {steps} steps from (1, 1)\n")
    print("| dynamics | measured per-step factor | analytic | ‖z_T‖ |")
    print("|---|---|---|---|")
    for name, run in bilinear.DYNAMICS.items():
        norms = run(z0, eta, steps).norm(dim=1)
        measured = float((norms[-1] / norms[0]) ** (1 / steps))
        note = " (bounded cycle)" if name == "alternating" else ""
        print(f"| {name} | {measured:.6f} | {analytic[name]:.6f}{note} | {float(norms[-1]):.3g} |")
    print()


def summarise(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return f"inf in {len(values) - len(finite)}/{len(values)}" + (
            f"; finite {statistics.mean(finite):.3f}" if finite else "")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--g-steps", type=int, default=2000, help="generator steps per run (the presets: ~1,875)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override applied to every run, e.g. --set train.batch_size=128")
    ap.add_argument("--toys", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    ap.add_argument("--losses", nargs="*", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--eta", type=float, default=0.1, help="step size of the bilinear game")
    ap.add_argument("--bilinear-steps", type=int, default=500)
    ap.add_argument("--bilinear-plot", type=Path, default=None, help="save the trajectory figure (PNG) here")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--json", type=Path, default=None, help="write every run's metrics here")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                    help="print the table of runs saved with --json (runs split across machines); no training")
    args = ap.parse_args(argv)
    if args.merge:
        print_table(merged(args.merge))
        return
    torch.set_num_threads(args.threads)

    bilinear_table(args.eta, args.bilinear_steps)
    if args.bilinear_plot:
        bilinear.plot_trajectories(args.eta, args.bilinear_steps).savefig(args.bilinear_plot, dpi=120)
        print(f"bilinear trajectories: {args.bilinear_plot}\n")
    if not args.losses:
        return
    runs = []
    for toy in args.toys:
        for loss in args.losses:
            for seed in range(args.seeds):
                m = run_one(toy, loss, seed, args.g_steps, args.overrides)
                runs.append({"toy": toy, "loss": loss, "seed": seed, "g_steps": args.g_steps,
                             "overrides": args.overrides} | m)
                print(f"# {toy} {loss} seed {seed}: " + ", ".join(f"{k}={v:.3f}" for k, v in m.items()),
                      file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    print_table(runs)


def merged(paths: list[Path]) -> list[dict]:
    """Runs from several ``--json`` files; a later file's (toy, loss, seed) replaces an earlier one's."""
    by_key: dict[tuple, dict] = {}
    for path in paths:
        for r in json.loads(path.read_text()):
            by_key[(r["toy"], r["loss"], r["seed"])] = r
    return list(by_key.values())


def print_table(runs: list[dict]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["toy"], r["loss"]), []).append(r)
    print(f"\nGAN mode collapse: {MODE_METRIC_SAMPLES} samples scored per run (mean ± std over seeds); settings of "
          f"the preset named per loss, data.source set to the toy\n")
    print("| toy | loss (preset) | seeds | G steps | modes covered | high-quality fraction | reverse KL | s/run |")
    print("|---|---|---:|---:|---|---|---|---:|")
    for (toy, loss), sel in groups.items():
        cells = [summarise([r[k] for r in sel]) for k in METRICS]
        steps = sorted({str(r.get("g_steps", "?")) for r in sel})
        extra = sorted({" ".join(r.get("overrides", [])) for r in sel} - {""})
        preset = PRESETS[loss] + (f"; {', '.join(extra)}" if extra else "")
        print(f"| {toy} | {loss} ({preset}) | {len(sel)} | {'/'.join(steps)} | {' | '.join(cells)} | "
              f"{statistics.mean(r['seconds'] for r in sel):.1f} |")


if __name__ == "__main__":
    main()
