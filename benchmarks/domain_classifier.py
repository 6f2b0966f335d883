"""Test accuracy of the `domain` feature extractor (the CNN behind domain-feature FID/KID/IS).

    python benchmarks/domain_classifier.py                       # Fashion-MNIST (target >= 88%)
    python benchmarks/domain_classifier.py --source digits
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="idx:/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()

    from pipeline.config import DataConfig
    from pipeline.data import open_split, prepare
    from pipeline.evaluation.domain import train_classifier

    data = prepare(DataConfig(source=args.source), Path(tempfile.mkdtemp(prefix="bench-domain-")) / "data")
    x, y = open_split(data.path, "train")
    xt, yt = open_split(data.path, "test")
    started = time.perf_counter()
    _, acc = train_classifier(np.array(x), y, np.array(xt), yt, tuple(data.meta.shape), data.meta.num_classes)
    seconds = time.perf_counter() - started
    print("\n| dataset | train | test | test accuracy | training time |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {args.source} | {len(y):,} | {len(yt):,} | {acc:.2%} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
