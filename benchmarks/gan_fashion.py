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

from pipeline.config import load_config  # noqa: E402

# (row label, preset, overrides, loss family for Lucic et al. 2018's reference FID)
GANS = {
    "dcgan": ("DCGAN, non-saturating loss", "dcgan-fashion", [], "NS-GAN"),
    "minimax": ("DCGAN nets, minimax loss", "dcgan-fashion", ["model.loss=minimax"], "MM-GAN"),
    "bn": ("DCGAN, non-saturating, batch norm in D", "dcgan-bn-fashion", [], "NS-GAN"),
    "bn-minimax": ("DCGAN, minimax, batch norm in D", "dcgan-bn-fashion", ["model.loss=minimax"], "MM-GAN"),
    "diffaug": ("DCGAN, batch norm in D, DiffAugment", "dcgan-diffaug-fashion", [], "NS-GAN"),
    "r1": ("DCGAN nets, non-saturating + R1", "nsgan-r1-fashion", [], "NS-GAN"),
    "hinge": ("hinge, spectral norm, LeCam, TTUR", "hinge-lecam-fashion", [], None),
    "wgan": ("WGAN, weight clipping", "wgan-fashion", [], "WGAN"),
    "wgan-gp": ("WGAN-GP", "wgan-gp-fashion", [], "WGAN-GP"),
}
# Lucic et al. 2018 ("Are GANs created equal?"), best FID on Fashion-MNIST (standard Inception,
# 10,000 samples, after a large hyper-parameter search and 20 epochs and more on GPUs).
LUCIC_BEST = {"NS-GAN": 26.5, "MM-GAN": 29.6, "WGAN": 21.5, "WGAN-GP": 24.5}


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
    _, preset, overrides, _ = GANS[key]
    recipe = recipe_for(preset, data, overrides, seed)
    timing = train_for(recipe.train_step, x, recipe.cfg.train.batch_size, cpu_seconds, seed)
    samples = torch.cat([recipe.generate(500, g) for g in _chunks(n, seed)])[:n]
    return samples, timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="generated (and real test) images scored")
    ap.add_argument("--only", nargs="+", default=[*GANS, "plain"], choices=[*GANS, "plain"])
    ap.add_argument("--no-inception", action="store_true", help="skip the standard-Inception FID column")
    add_common_args(ap, cpu_seconds=600.0)
    args = ap.parse_args()
    data, x = setup(args)
    inception = not args.no_inception
    started = time.perf_counter()
    domain_scores(data, x[:args.samples], args.cache / "cache")  # trains and caches the classifier once
    print(f"# domain classifier ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for key in args.only:
        if key == "plain":
            label, ref = "plain PyTorch DCGAN loop (peer)", "NS-GAN"
            samples, timing = plain_dcgan(x, args.cpu_seconds, args.seed, args.samples)
        else:
            name, preset, overrides, ref = GANS[key]
            label = f"boltzgan {name} (`{preset}`{' ' + ' '.join(overrides) if overrides else ''})"
            samples, timing = boltzgan_gan(key, data, x, args.cpu_seconds, args.seed, args.samples)
        scores = domain_scores(data, samples, args.cache / "cache", inception)
        rows.append((label, ref, timing, scores))
        print(f"# {label}: FID {scores['fid']:.2f} after {timing['steps']} steps", file=sys.stderr, flush=True)

    s = rows[0][3]
    print(f"\nFashion-MNIST, {args.cpu_seconds:.0f} CPU-seconds of training per model ({args.threads} threads), "
          f"seed {args.seed}; metrics on {s['n']:,} samples vs {s['n']:,} test images; domain features: "
          f"{s['label']}; real train-vs-test floor domain FID {s['floor']:.2f}"
          + (f"; standard FID: {s['inception_label']}" if inception else "") + "\n")
    print("| model | D steps | epochs | domain FID ↓ | IS ↑ | precision | recall | density | coverage "
          "| Inception FID ↓ | Lucic et al. best |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, ref, t, sc in rows:
        std = sc.get("inception_fid")
        print(f"| {label} | {t['steps']:,} | {t['epochs']:.2f} | {sc['fid']:.2f} | {sc['is']:.2f} "
              f"| {sc['precision']:.3f} | {sc['recall']:.3f} | {sc['density']:.3f} | {sc['coverage']:.3f} "
              f"| {f'{std:.1f}' if std is not None else '—'} | {LUCIC_BEST.get(ref, '—') if ref else '—'} |")
    plain = next((sc["fid"] for label, _, _, sc in rows if label.startswith("plain")), None)
    ours = [(key, sc["fid"]) for key, (_, _, _, sc) in zip(args.only, rows) if key != "plain"]
    if plain is not None and ours:
        best = min(fid for _, fid in ours)
        print(f"\nbest boltzgan domain FID {best:.2f} vs plain loop {plain:.2f}: "
              f"{'PASS' if best < plain else 'FAIL'} (target 1: lower than the plain loop)")
        by_loss: dict[str, float] = {}
        for key, fid in ours:
            _, preset, overrides, _ = GANS[key]
            loss = load_config(preset, overrides).model.loss
            by_loss[loss] = min(fid, by_loss.get(loss, float("inf")))
        for loss, fid in sorted(by_loss.items()):
            print(f"{loss}: best {fid:.2f} = {fid / plain:.2f}× the plain loop: "
                  f"{'PASS' if fid <= 1.5 * plain else 'FAIL'} (target: within 1.5×)")


if __name__ == "__main__":
    main()
