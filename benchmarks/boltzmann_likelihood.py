"""Test log-likelihood of the Boltzmann family on binarised Fashion-MNIST (threshold 0.5), all
scored by the same AIS (Salakhutdinov & Murray 2008 schedule of 14,501 βs, 100 runs, log Ẑ ± 3σ̂):

* boltzgan RBM(500) with CD-1 and with PCD, a DBN 784-500-1000 and a 2-layer DBM 784-500-1000,
  all trained through the engine in this process (``resources.num_workers=0``: Ray Train's local
  mode, so every row runs in the same process with the same torch threads; Ray's own worker
  processes run at nice 15 and would be starved by anything else on the machine);
* scikit-learn's BernoulliRBM and learnergy's RBM with the same hidden units, batch size, epochs
  and learning rate (no momentum anywhere, since scikit-learn has none).

For the DBN the number is Salakhutdinov & Murray's variational lower bound; for the DBM the
mean-field lower bound minus the AIS log Ẑ (as Salakhutdinov & Hinton 2009 report it).

    python benchmarks/boltzmann_likelihood.py --epochs 10           # the README table
    python benchmarks/boltzmann_likelihood.py --epochs 1 --limit 2000 --ais-runs 20 --schedule linear:2000  # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fashion import FASHION, ensure_fashion  # noqa: E402


def engine_model(preset: str, root: Path, data, overrides: list[str]):
    from pipeline.config import load_config
    from pipeline.engine import train
    from pipeline.trained import load_trained

    cfg = load_config(preset, [f"output.root={root}", f"output.run_name=bench-{preset}", "train.log_every=100000",
                               "resources.num_workers=0", *overrides])
    with Timer() as t:
        result = train(cfg, data)
    return load_trained(result.run_dir).recipe, t


class Timer:
    """Wall-clock and process CPU time of a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def rbm_from(W: np.ndarray, b: np.ndarray, c: np.ndarray):
    from models.rbm import RBM

    rbm = RBM(W.shape[0], W.shape[1])
    with torch.no_grad():
        rbm.W.copy_(torch.as_tensor(W)), rbm.b.copy_(torch.as_tensor(b)), rbm.c.copy_(torch.as_tensor(c))
    return rbm


def sklearn_rbm(x: np.ndarray, args) -> tuple[object, float]:
    from sklearn.neural_network import BernoulliRBM

    with Timer() as t:
        m = BernoulliRBM(n_components=500, batch_size=100, learning_rate=args.lr, n_iter=args.epochs,
                         random_state=0).fit(x.astype(np.float64))
    return rbm_from(m.components_.T.astype(np.float32), m.intercept_visible_.astype(np.float32),
                    m.intercept_hidden_.astype(np.float32)), t


def learnergy_rbm(x: np.ndarray, args) -> tuple[object, float]:
    from learnergy.models.bernoulli import RBM as LRBM

    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.zeros(len(x)))
    torch.manual_seed(0)
    m = LRBM(n_visible=784, n_hidden=500, steps=1, learning_rate=args.lr, momentum=0.0)
    with Timer() as t:
        m.fit(data, batch_size=100, epochs=args.epochs)
    return rbm_from(m.W.detach().numpy(), m.a.detach().numpy(), m.b.detach().numpy()), t


def rbm_score(rbm, test: torch.Tensor, data_mean: torch.Tensor, args):
    """The recipes' own scoring path for RBMs, applied to any RBM's weights."""
    from pipeline.recipes.likelihood import ais_report, rbm_log_z_ais

    rbm = rbm.double()
    with torch.no_grad():
        mean_neg_f = float((-rbm.free_energy(test.double())).mean())
        res, n_betas = rbm_log_z_ais(rbm, data_mean, args.ais_runs, args.schedule)
    return ais_report(mean_neg_f, res, n_betas, len(test))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=None, help="training images (default all 60,000)")
    ap.add_argument("--ais-runs", type=int, default=100)
    ap.add_argument("--schedule", default="salakhutdinov2008")
    args = ap.parse_args()

    from pipeline.config import DataConfig
    from pipeline.data import open_split, prepare

    ensure_fashion()
    root = Path(tempfile.mkdtemp(prefix="bench-boltzmann-"))
    data = prepare(DataConfig(source=FASHION, scale="unit", binarize="threshold", threshold=0.5, limit=args.limit),
                   root / "data")
    x = np.array(open_split(data.path, "train")[0], dtype=np.float32)
    test = torch.from_numpy(np.array(open_split(data.path, "test")[0], dtype=np.float32))
    mean = torch.from_numpy(x.mean(0))
    common = [f"train.epochs={args.epochs}", f"train.lr={args.lr}", "train.momentum=0.0", "train.batch_size=100"]
    ev = dict(ais_runs=args.ais_runs, schedule=args.schedule)
    rows = []

    for name, preset, extra in [("boltzgan RBM(500), CD-1", "rbm-fashion", []),
                                ("boltzgan RBM(500), PCD", "pcd-fashion", [])]:
        recipe, secs = engine_model(preset, root, data, common + extra)
        rows.append((name, rbm_score(recipe.rbm, test, mean, args), secs))
    for name, fit in [("scikit-learn BernoulliRBM(500) (PCD-1)", sklearn_rbm), ("learnergy RBM(500), CD-1", learnergy_rbm)]:
        rbm, secs = fit(x, args)
        rows.append((name, rbm_score(rbm, test, mean, args), secs))
    dbn, secs = engine_model("dbn-fashion", root, data, [*common, f"model.epochs_per_layer={args.epochs}",
                                                        f"train.epochs={2 * args.epochs}"])
    rows.append(("boltzgan DBN 784-500-1000 (bound)", dbn.likelihood(test, "ais", **ev), secs))
    dbm, secs = engine_model("dbm-fashion", root, data, [*common, f"model.pretrain_epochs={args.epochs}",
                                                        f"train.epochs={3 * args.epochs}"])
    rows.append(("boltzgan DBM 784-500-1000 (mean-field bound)", dbm.likelihood(test, "ais", **ev), secs))

    print(f"\nBinarised Fashion-MNIST (threshold 0.5), {len(x):,} training / {len(test):,} test images; "
          f"{args.epochs} epoch(s) per model (per layer for DBN/DBM, plus as many joint DBM epochs), batch 100, "
          f"lr {args.lr}, AIS {args.ais_runs} runs × {rows[0][1].details['ais_betas']} βs\n")
    print("| model | test log-likelihood (nats) | bounds from log(Ẑ ± 3σ̂) | training wall-clock | training CPU time |")
    print("|---|---:|---|---:|---:|")
    for name, r, t in rows:
        bounds = f"[{r.lower:.2f}, {r.upper:.2f}]" if r.lower is not None else "—"
        print(f"| {name} | {r.log_likelihood:.2f} | {bounds} | {t.wall:.0f} s | {t.cpu:.0f} s |")


if __name__ == "__main__":
    main()
