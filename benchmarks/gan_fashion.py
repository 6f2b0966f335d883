"""Fashion-MNIST GANs after a fixed CPU budget: domain-feature FID and IS of each boltzgan GAN
preset next to a plain single-file PyTorch DCGAN loop given the same budget in the same run.

Every model trains in this process (no Ray, no engine: the recipes' ``train_step`` on shuffled
minibatches of the 60,000 training images, ``torch.set_num_threads(--threads)``) until it has
used ``--cpu-seconds`` of process CPU time. Then ``--samples`` images are drawn and scored
against as many test images with the ``domain`` extractor (the CNN the evaluate stage trains on
the dataset's labels; trained once and cached under ``--cache``), exactly as ``boltzgan
evaluate`` scores a run. The floor row is FID between real train and real test images.

    python benchmarks/gan_fashion.py                       # the README table (5 × 600 CPU-s)
    python benchmarks/gan_fashion.py --cpu-seconds 20 --samples 500 --only plain   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fashion import add_common_args, domain_scores, recipe_for, setup, train_for  # noqa: E402

# (row label, preset, overrides)
GANS = {
    "dcgan": ("DCGAN, non-saturating loss", "dcgan-fashion", []),
    "minimax": ("DCGAN nets, minimax loss", "dcgan-fashion", ["model.loss=minimax"]),
    "wgan": ("WGAN, weight clipping", "wgan-fashion", []),
    "wgan-gp": ("WGAN-GP", "wgan-gp-fashion", []),
}


class PlainG(nn.Module):
    """The textbook DCGAN generator scaled to 28×28: z(1×1) → 7×7 → 14×14 → 28×28."""

    def __init__(self, nz: int = 100, w: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, w * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(w * 4), nn.ReLU(True),
            nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.ReLU(True),
            nn.ConvTranspose2d(w * 2, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z[:, :, None, None])


class PlainD(nn.Module):
    def __init__(self, w: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w * 2, 1, 7, 1, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def plain_dcgan(x: torch.Tensor, cpu_seconds: float, seed: int, n: int) -> tuple[torch.Tensor, dict]:
    """The peer: the usual single-file DCGAN loop (BCE, Adam 2e-4 β=(0.5, 0.999), batch 64)."""
    torch.manual_seed(seed)
    G, D = PlainG(), PlainD()
    for m in [*G.modules(), *D.modules()]:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02), nn.init.zeros_(m.bias)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()

    def step(batch) -> None:
        real = batch.x
        ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
        fake = G(torch.randn(len(real), 100))
        opt_d.zero_grad()
        (bce(D(real), ones) + bce(D(fake.detach()), zeros)).backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(D(fake), ones).backward()
        opt_g.step()

    timing = train_for(step, x, 64, cpu_seconds, seed)
    G.eval()
    with torch.no_grad():
        samples = torch.cat([G(torch.randn(500, 100, generator=g)) for g in _chunks(n, seed)])[:n]
    return samples, timing


def _chunks(n: int, seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range((n + 499) // 500)]


def boltzgan_gan(key: str, data, x: torch.Tensor, cpu_seconds: float, seed: int, n: int) -> tuple[torch.Tensor, dict]:
    _, preset, overrides = GANS[key]
    recipe = recipe_for(preset, data, overrides, seed)
    timing = train_for(recipe.train_step, x, recipe.cfg.train.batch_size, cpu_seconds, seed)
    samples = torch.cat([recipe.generate(500, g) for g in _chunks(n, seed)])[:n]
    return samples, timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="generated (and real test) images scored")
    ap.add_argument("--only", nargs="+", default=[*GANS, "plain"], choices=[*GANS, "plain"])
    add_common_args(ap, cpu_seconds=600.0)
    args = ap.parse_args()
    data, x = setup(args)
    started = time.perf_counter()
    domain_scores(data, x[:args.samples], args.cache / "cache")  # trains and caches the classifier once
    print(f"# domain classifier ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for key in args.only:
        if key == "plain":
            label, samples, timing = "plain PyTorch DCGAN loop (peer)", *plain_dcgan(x, args.cpu_seconds, args.seed,
                                                                                     args.samples)
        else:
            label = f"boltzgan {GANS[key][0]} ({GANS[key][1]}{' ' + ' '.join(GANS[key][2]) if GANS[key][2] else ''})"
            samples, timing = boltzgan_gan(key, data, x, args.cpu_seconds, args.seed, args.samples)
        scores = domain_scores(data, samples, args.cache / "cache")
        rows.append((label, timing, scores))
        print(f"# {label}: FID {scores['fid']:.2f} after {timing['steps']} steps", file=sys.stderr, flush=True)

    s = rows[0][2]
    print(f"\nFashion-MNIST, {args.cpu_seconds:.0f} CPU-seconds of training per model ({args.threads} threads), "
          f"seed {args.seed}; FID/IS on {s['n']:,} samples vs {s['n']:,} test images, features: {s['label']}; "
          f"real train-vs-test floor FID {s['floor']:.2f}\n")
    print("| model | D/critic steps | epochs | wall-clock | domain FID ↓ | domain IS ↑ |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, t, sc in rows:
        print(f"| {label} | {t['steps']:,} | {t['epochs']:.2f} | {t['wall_s']:.0f} s | {sc['fid']:.2f} | {sc['is']:.2f} |")


if __name__ == "__main__":
    main()
