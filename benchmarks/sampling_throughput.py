"""Gibbs-sampling throughput of the sampling stage: RBM 784-500, many chains, 1 and 2 Ray workers.

Prints chain-steps/s, the scaling efficiency of 2 workers over 1, and the fraction of this
machine's measured fp32 GEMM rate (a Gibbs sweep v→h→v costs 2 GEMMs of 784×500 per chain =
4·V·H flops; the stage also traces each chain's free energy, one more GEMM, not counted).

    python benchmarks/sampling_throughput.py --chains 1000 --steps 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

V, H = 784, 500


def gemm_rate(n: int = 1024, repeats: int = 20, threads: int | None = None) -> float:
    """fp32 FLOP/s of an n×n torch.matmul loop (all of torch's threads unless ``threads``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return 2 * n**3 * repeats / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--block", type=int, default=250, help="chains per seeded block")
    args = ap.parse_args()

    from models.rbm import RBM
    from models.samplers.gibbs import GibbsSampler
    from pipeline.config import SampleConfig
    from pipeline.ray_utils import ensure_ray
    from pipeline.sampling import run_chains

    ensure_ray(None)
    rbm = RBM(V, H, init_std=0.05, generator=torch.Generator().manual_seed(0))
    peak, peak_1 = gemm_rate(), gemm_rate(threads=1)  # blocks run single-threaded, one per worker
    rates = {}
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp:
        root = Path(tmp)
        for workers in (1, 2):
            cfg = SampleConfig(chains=args.chains, steps=args.steps, burn_in=args.steps - 1, thin=1,
                               workers=workers, chains_per_block=args.block, diagnostics=False)
            run_chains(rbm, GibbsSampler(), cfg.model_copy(update={"steps": 2, "burn_in": 1}), root / "warm", (V,))
            started = time.perf_counter()
            run_chains(rbm, GibbsSampler(), cfg, root / f"w{workers}", (V,))
            rates[workers] = args.chains * args.steps / (time.perf_counter() - started)
    print(f"\nRBM {V}-{H} Gibbs sampling, {args.chains} chains × {args.steps} steps, blocks of {args.block}; "
          f"measured fp32 GEMM: {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads), "
          f"{peak_1 / 1e9:.1f} GFLOP/s (1 thread)\n")
    print("| workers | chain-steps/s | GFLOP/s (4·V·H per step) | scaling efficiency | fraction of machine GEMM |")
    print("|---:|---:|---:|---:|---:|")
    for w, r in rates.items():
        print(f"| {w} | {r:,.0f} | {4 * V * H * r / 1e9:.2f} | {r / (w * rates[1]):.0%} | {4 * V * H * r / peak:.1%} |")


if __name__ == "__main__":
    main()
