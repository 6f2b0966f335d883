"""Deep EBMs on the 2-D mixtures, measured exactly: test log-likelihood and KL(p_data ‖ p_model)
from grid quadrature, beside the EBM's and a GAN's mode coverage on the same toy.

For each toy (ring8, grid25) the matching preset (``ebm-ring8``, ``ebm-grid25``) trains in-process
by calling its recipe's ``train_step`` on fresh mixture batches for ``--steps`` steps. Then:

* exp(−E) is normalised on the preset's quadrature grid over the data range grown by 25% per side
  (``models.quadrature``), giving the exact mean log-likelihood of 2,500 fresh test points and
  KL(p_data ‖ p_model) (Gauss–Hermite per mode), next to the best possible value E[log p_data];
* 2,500 chains from the replay buffer run the model's Langevin dynamics for ``--sample-steps``
  steps and are scored with PacGAN's mode metrics (``models.toys.mixtures.mode_metrics``);
* the GAN of ``benchmarks/gan_toys.py`` (``--gan-loss``, its preset) trains ``--g-steps``
  generator steps with the same seed and is scored with the same mode metrics.

    python benchmarks/ebm_toys.py                                       # the README table
    python benchmarks/ebm_toys.py --steps 20 --sample-steps 10 --g-steps 20 --grid 128   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_toys import PRESETS as GAN_PRESETS  # noqa: E402
from gan_toys import run_one  # noqa: E402

from models.quadrature import kl_data_model  # noqa: E402
from models.toys.mixtures import expectation, log_density, mode_metrics, sample_mixture  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.recipes.base import Batch, DataShape  # noqa: E402
from pipeline.recipes.ebm import EBMRecipe  # noqa: E402

EBM_PRESETS = {"ring8": "ebm-ring8", "grid25": "ebm-grid25"}
N_TEST = 2500


def train_ebm(toy: str, seed: int, steps: int, overrides: list[str]) -> tuple[EBMRecipe, float]:
    cfg = load_config(EBM_PRESETS[toy], [f"train.seed={seed}", *overrides])
    x, _ = sample_mixture(toy, cfg.data.toy_samples, torch.Generator().manual_seed(seed))
    recipe = EBMRecipe(cfg, DataShape(shape=(2,), value_range=(float(x.min()), float(x.max())), binary=False))
    torch.manual_seed(seed)
    recipe.optimizers = recipe.build_optimizers()
    recipe.after_setup()
    gen = torch.Generator().manual_seed(10_000 + seed)
    started = time.perf_counter()
    for step in range(steps):
        batch, _ = sample_mixture(toy, cfg.train.batch_size, gen)
        recipe.train_step(Batch(x=batch, y=None, weight=1.0, step=step, epoch=0))
    return recipe, time.perf_counter() - started


def score_ebm(toy: str, recipe: EBMRecipe, seed: int, sample_steps: int) -> dict[str, float]:
    test, _ = sample_mixture(toy, N_TEST, torch.Generator().manual_seed(777 + seed))
    ll = recipe.likelihood(test, "exact")
    model = recipe.modules["model"].eval()
    kl = kl_data_model(toy, model, recipe.density_grid())
    m, sampler = recipe.sampler()  # the training dynamics, chains from the replay buffer
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = sampler.step(m, sampler.init(m, N_TEST, gen), sample_steps, gen).visible
    best = float(expectation(toy, lambda p: log_density(toy, p)))
    return {"log_likelihood": ll.log_likelihood, "best": best, "kl": kl, "log_z": ll.log_z,
            "quadrature_error": ll.details["quadrature_error"], **mode_metrics(x, toy)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toys", nargs="+", default=list(EBM_PRESETS), choices=list(EBM_PRESETS))
    ap.add_argument("--steps", type=int, default=2000, help="EBM training steps")
    ap.add_argument("--sample-steps", type=int, default=200, help="Langevin steps of the scored chains")
    ap.add_argument("--gan-loss", default="nonsaturating", choices=list(GAN_PRESETS))
    ap.add_argument("--g-steps", type=int, default=2000, help="GAN generator steps")
    ap.add_argument("--grid", type=int, default=None, help="override model.grid_points (quadrature n×n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [f"model.grid_points={args.grid}"] if args.grid else []
    rows = []
    for toy in args.toys:
        recipe, seconds = train_ebm(toy, args.seed, args.steps, overrides)
        ebm = score_ebm(toy, recipe, args.seed, args.sample_steps)
        gan = run_one(toy, args.gan_loss, args.seed, args.g_steps, [])
        rows.append((toy, ebm, gan, seconds))
        print(f"# {toy}: EBM log-lik {ebm['log_likelihood']:.3f}, KL {ebm['kl']:.3f}, modes {ebm['modes_covered']:.0f}; "
              f"GAN modes {gan['modes_covered']:.0f}", file=sys.stderr, flush=True)
    print(f"\n2-D mixtures, seed {args.seed}: EBM {args.steps} training steps, {N_TEST} test points, "
          f"{N_TEST} chains × {args.sample_steps} Langevin steps from the buffer; GAN ({args.gan_loss}) "
          f"{args.g_steps} generator steps; mode metrics on {N_TEST} samples\n")
    print("| toy | EBM test log-lik (nats) | best: E[log p_data] | KL(p_data ‖ p_model) | log Z (± quadrature) | "
          "EBM modes covered | EBM high-quality | GAN modes covered | GAN high-quality |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for toy, e, g, _ in rows:
        print(f"| {toy} | {e['log_likelihood']:.3f} | {e['best']:.3f} | {e['kl']:.3f} | {e['log_z']:.3f} "
              f"(± {e['quadrature_error']:.1e}) | {e['modes_covered']:.0f} | {e['high_quality_fraction']:.3f} | "
              f"{g['modes_covered']:.0f} | {g['high_quality_fraction']:.3f} |")


if __name__ == "__main__":
    main()
