"""The demo preset's domain FID over training and sampling seeds, in-process (no Ray, no Prefect).

``make demo`` prints one FID; this prints it for every (train.seed, sample.seed) pair, with the
mean per training seed and the real train-vs-test floor, so a tuned preset can be told from a
lucky seed. Extra ``--set KEY=VALUE`` overrides try a variant of the preset.

    .venv/bin/python benchmarks/demo_seeds.py                           # the README's numbers
    .venv/bin/python benchmarks/demo_seeds.py --set train.lr_schedule=constant
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.evaluation import evaluate
from pipeline.rundir import data_dir
from pipeline.sampling import sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sample-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="boltzgan-demo-seeds-"))
    print(f"{args.preset} {' '.join(args.overrides)} (in-process; domain FID, evaluate.likelihood=none)\n")
    print("| train.seed | training s | FID per sample.seed | mean | floor | mean / floor |")
    print("|---:|---:|---|---:|---:|---:|")
    for seed in args.train_seeds:
        cfg = load_config(args.preset, [f"output.root={root}", f"output.run_name=seed{seed}", f"train.seed={seed}",
                                        "resources.num_workers=0", "sample.workers=0", "evaluate.likelihood=none",
                                        "evaluate.feature=domain", *args.overrides])
        started = time.perf_counter()
        trained = train(cfg, prepare(cfg.data, data_dir(cfg)))
        seconds = time.perf_counter() - started
        fids, floor = [], 0.0
        for s in args.sample_seeds:
            result = evaluate(trained.run_dir, cfg.evaluate,
                              sample(trained.run_dir, cfg.sample.model_copy(update={"seed": s})))
            fids.append(result.value("fid"))
            floor = result.value("fid_real_train_vs_test")
        mean = sum(fids) / len(fids)
        print(f"| {seed} | {seconds:.0f} | {', '.join(f'{f:.1f}' for f in fids)} | {mean:.1f} | {floor:.1f} | "
              f"{mean / floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
