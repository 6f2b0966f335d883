"""RBM CD-1 training throughput on binarised Fashion-MNIST (784-500, batch 100), side by side:

* boltzgan's engine (Ray Train + Accelerate) with 1 and 2 workers,
* scikit-learn's ``BernoulliRBM`` (its update is PCD-1: the same five GEMMs per batch),
* a plain single-process PyTorch CD-1 loop written out in this file,

plus each one's fraction of this machine's measured fp32 GEMM rate. Algorithmic cost of one
CD-1 update per example: 5 GEMM-vector products of 784×500 (h|v, v|h, h|v', and the two outer
products of the gradient) = 10·V·H flops.

    python benchmarks/rbm_throughput.py --epochs 1            # full Fashion-MNIST (60,000 images)
    python benchmarks/rbm_throughput.py --limit 6000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

V, H, BATCH = 784, 500, 100
FASHION = "/usr/share/datasets/fashion-mnist"


def gemm_rate(n: int = 1024, repeats: int = 20) -> float:
    """Sustained fp32 matmul flops/s of this process (torch's default threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def plain_torch_cd1(x: np.ndarray, epochs: int, lr: float = 0.05) -> float:
    """A minimal single-process CD-1 loop (the peer the engine is measured against)."""
    g = torch.Generator().manual_seed(0)
    data = torch.from_numpy(x)
    W = torch.randn(V, H, generator=g) * 0.01
    b, c = torch.zeros(V), torch.zeros(H)
    t = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(data) - BATCH + 1, BATCH):
            v0 = data[i:i + BATCH]
            ph0 = torch.sigmoid(v0 @ W + c)
            h0 = torch.bernoulli(ph0, generator=g)
            v1 = torch.bernoulli(torch.sigmoid(h0 @ W.T + b), generator=g)
            ph1 = torch.sigmoid(v1 @ W + c)
            W += lr * (v0.T @ ph0 - v1.T @ ph1) / BATCH
            b += lr * (v0 - v1).mean(0)
            c += lr * (ph0 - ph1).mean(0)
    return epochs * (len(data) // BATCH) * BATCH / (time.perf_counter() - t)


def sklearn_rbm(x: np.ndarray, epochs: int, lr: float = 0.05) -> float:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=H, batch_size=BATCH, learning_rate=lr, n_iter=epochs, random_state=0)
    t = time.perf_counter()
    rbm.fit(x)
    return epochs * len(x) / (time.perf_counter() - t)


def engine(data, workers: int, epochs: int, root: Path) -> float:
    """Examples/s of the engine's training epochs (Ray start-up excluded: measured inside the loop)."""
    from pipeline.config import load_config
    from pipeline.engine import train

    cfg = load_config("rbm-fashion", [f"resources.num_workers={workers}", f"train.epochs={epochs}",
                                      f"output.root={root}", f"output.run_name=bench-{workers}w",
                                      "train.log_every=100000"])
    result = train(cfg, data)
    lines = [json.loads(s) for s in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    return float(np.mean([m["examples_per_sec"] for m in lines]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--source", default=f"idx:{FASHION}")
    args = ap.parse_args()

    from pipeline.config import DataConfig
    from pipeline.data import open_split, prepare

    root = Path(tempfile.mkdtemp(prefix="bench-rbm-"))
    data = prepare(DataConfig(source=args.source, binarize="threshold", scale="unit", limit=args.limit),
                   root / "data")
    x = np.ascontiguousarray(open_split(data.path, "train")[0], dtype=np.float32)
    peak = gemm_rate()
    rows = [
        ("boltzgan engine, 1 worker", engine(data, 1, args.epochs, root)),
        ("boltzgan engine, 2 workers", engine(data, 2, args.epochs, root)),
        ("plain PyTorch CD-1 loop", plain_torch_cd1(x, args.epochs)),
        ("scikit-learn BernoulliRBM", sklearn_rbm(x.astype(np.float64), args.epochs)),
    ]
    print(f"\nRBM {V}-{H}, batch {BATCH}, {len(x)} binarised images, {args.epochs} epoch(s); "
          f"fp32 GEMM peak measured: {peak / 1e9:.1f} GFLOP/s\n")
    print("| implementation | examples/s | fraction of GEMM peak |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {10 * V * H * rate / peak:.1%} |")


if __name__ == "__main__":
    main()
