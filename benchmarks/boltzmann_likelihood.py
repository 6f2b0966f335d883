"""Test log-likelihood of the Boltzmann family on binarised Fashion-MNIST (threshold 0.5), every row
scored from both sides along the same annealing path (Salakhutdinov & Murray 2008 schedule of
14,501 βs, 100 runs each):

* forward AIS: a stochastic lower bound on log Z, so an optimistic likelihood (log Ẑ ± 3σ̂ bounds);
* RAISE (Burda, Grosse & Salakhutdinov 2015): reverse chains from test points, a stochastic lower
  bound on the likelihood of the annealing model, so a conservative one; the gap between the two
  says how far the estimates can be trusted.

Rows: boltzgan RBM(500) with CD-1, with PCD, and with PT-PCD (parallel tempering over
``--pt-temperatures`` replicas) at the same training time as PCD (its step count is PCD's scaled
by the measured per-step cost ratio); a DBN 784-500-1000 and a 2-layer DBM 784-500-1000, all
trained through the engine in this process (``resources.num_workers=0``: Ray Train's local mode,
so every row runs in the same process with the same torch threads); scikit-learn's BernoulliRBM and
learnergy's RBM with the same hidden units, batch size, epochs and learning rate (no momentum
anywhere, since scikit-learn has none).

For the DBN the numbers are Salakhutdinov & Murray's variational lower bound, with the top RBM's
log Z from forward AIS or replaced by the top RBM's RAISE estimate; for the DBM the forward side
is the importance-sampled log p*(v) (mean-field proposal over h1, h2 summed out) minus the AIS log Ẑ
and the reverse side RAISE started from the same proposal; the mean-field bound minus AIS log Ẑ
(Salakhutdinov & Hinton 2009) is printed beside them.

    python benchmarks/boltzmann_likelihood.py --epochs 10           # the README table
    python benchmarks/boltzmann_likelihood.py --epochs 1 --limit 1000 --test-limit 500 --ais-runs 4 \
        --schedule linear:30 --no-peers                            # smoke
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


def rbm_score(rbm, test: torch.Tensor, data_mean: torch.Tensor, args) -> dict:
    """The recipes' own scoring path for RBMs (forward AIS and RAISE), applied to any RBM's weights."""
    from pipeline.recipes.likelihood import ais_report, rbm_log_z_ais, rbm_raise, sandwich

    rbm = rbm.double()
    with torch.no_grad():
        mean_neg_f = float((-rbm.free_energy(test.double())).mean())
        res, n_betas = rbm_log_z_ais(rbm, data_mean, args.ais_runs, args.schedule)
        rev = rbm_raise(rbm, data_mean, test, args.ais_runs, args.schedule)
    out = ais_report(mean_neg_f, res, n_betas, len(test))
    return flat(out) | sandwich(out.log_likelihood, mean_neg_f, rev, res.n_runs)


def flat(res) -> dict:
    """A LikelihoodResult as the flat row this table prints."""
    d = dict(res.details)
    return d | {"log_likelihood": res.log_likelihood, "log_likelihood_lower": res.lower,
                "log_likelihood_upper": res.upper}


def seconds_per_step(root: Path, data, overrides: list[str], steps: int = 20) -> float:
    """Wall-clock of one RBM training step (negative phase + update) in this process, measured on
    the recipe itself so that engine start-up does not enter the ratio."""
    from pipeline.config import load_config
    from pipeline.data import open_split
    from pipeline.recipes.base import Batch, recipe_class

    cfg = load_config("pcd-fashion", [f"output.root={root}", *overrides])
    recipe = recipe_class("rbm")(cfg, data.data_shape())
    recipe.optimizers = recipe.build_optimizers()
    x = torch.from_numpy(np.array(open_split(data.path, "train")[0][:100], dtype=np.float32))
    batch = Batch(x=x, y=None, weight=1.0, step=0, epoch=0)
    recipe.train_step(batch)  # warm-up (allocates the chains)
    start = time.perf_counter()
    for _ in range(steps):
        recipe.train_step(batch)
    return (time.perf_counter() - start) / steps


def note(name: str, r: dict) -> str:
    """Why a deep model's gap is not below 2 nats, when it is not."""
    gap = r.get("gap")
    if gap is None or "DB" not in name or abs(gap) < 2:
        return ""
    side = "RAISE below AIS" if gap > 0 else "RAISE above AIS"
    why = ("the annealing of the top RBM has not converged at these βs/runs" if "DBN" in name else
           "the annealing has not converged at these βs/runs, or the mean-field proposal over h1 is poor "
           "(raise model.posterior_samples)")
    return f"gap {gap:.1f} nats ≥ 2 ({side}): {why}; the truth lies between the two only in expectation"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=None, help="training images (default all 60,000)")
    ap.add_argument("--ais-runs", type=int, default=100)
    ap.add_argument("--schedule", default="salakhutdinov2008")
    ap.add_argument("--test-limit", type=int, default=None, help="test images scored (default all 10,000)")
    ap.add_argument("--pt-temperatures", type=int, default=10)
    ap.add_argument("--no-peers", action="store_true", help="skip the scikit-learn and learnergy rows")
    args = ap.parse_args()

    from pipeline.config import DataConfig
    from pipeline.data import open_split, prepare

    ensure_fashion()
    root = Path(tempfile.mkdtemp(prefix="bench-boltzmann-"))
    data = prepare(DataConfig(source=FASHION, scale="unit", binarize="threshold", threshold=0.5, limit=args.limit),
                   root / "data")
    x = np.array(open_split(data.path, "train")[0], dtype=np.float32)
    test = torch.from_numpy(np.array(open_split(data.path, "test")[0], dtype=np.float32))[:args.test_limit]
    mean = torch.from_numpy(x.mean(0))
    common = [f"train.epochs={args.epochs}", f"train.lr={args.lr}", "train.momentum=0.0", "train.batch_size=100"]
    ev = dict(ais_runs=args.ais_runs, schedule=args.schedule)
    rows = []

    for name, preset, extra in [("boltzgan RBM(500), CD-1", "rbm-fashion", []),
                                ("boltzgan RBM(500), PCD", "pcd-fashion", [])]:
        recipe, secs = engine_model(preset, root, data, common + extra)
        rows.append((name, rbm_score(recipe.plain_rbm(), test, mean, args), secs))
    # PT-PCD at PCD's training time: PCD's step count scaled by the measured per-step cost ratio
    pt = ["model.negative=pt", f"model.pt_temperatures={args.pt_temperatures}"]
    ratio = seconds_per_step(root / "calib", data, common) / seconds_per_step(root / "calib", data, common + pt)
    pcd_steps = args.epochs * -(-len(x) // 100)
    budget = [f"train.max_steps={max(1, int(pcd_steps * ratio))}", "output.run_name=bench-pt-fashion"]
    recipe, secs = engine_model("pcd-fashion", root, data, common + pt + budget)
    rows.append((f"boltzgan RBM(500), PT-PCD ({args.pt_temperatures} temperatures, {int(pcd_steps * ratio)} steps "
                 f"= PCD's time)", rbm_score(recipe.plain_rbm(), test, mean, args), secs))
    for name, fit in [] if args.no_peers else [("scikit-learn BernoulliRBM(500) (PCD-1)", sklearn_rbm),
                                               ("learnergy RBM(500), CD-1", learnergy_rbm)]:
        rbm, secs = fit(x, args)
        rows.append((name, rbm_score(rbm, test, mean, args), secs))
    dbn, secs = engine_model("dbn-fashion", root, data, [*common, f"model.epochs_per_layer={args.epochs}",
                                                        f"train.epochs={2 * args.epochs}"])
    rows.append(("boltzgan DBN 784-500-1000 (bound)", flat(dbn.likelihood(test, "ais", **ev)), secs))
    dbm, secs = engine_model("dbm-fashion", root, data, [*common, f"model.pretrain_epochs={args.epochs}",
                                                        f"train.epochs={3 * args.epochs}"])
    rows.append(("boltzgan DBM 784-500-1000 (mean-field bound)", flat(dbm.likelihood(test, "ais", **ev)), secs))

    print(f"\nBinarised Fashion-MNIST (threshold 0.5), {len(x):,} training / {len(test):,} test images; "
          f"{args.epochs} epoch(s) per model (per layer for DBN/DBM, plus as many joint DBM epochs), batch 100, "
          f"lr {args.lr}, AIS and RAISE {args.ais_runs} runs each × {rows[0][1]['ais_betas']} βs, "
          f"{len(test):,} test images\n")
    print("| model | forward AIS (nats) | RAISE (nats) | gap | AIS bounds log(Ẑ ± 3σ̂) | runs fwd/rev "
          "| training wall-clock | training CPU time | note |")
    print("|---|---:|---:|---:|---|---|---:|---:|---|")
    for name, r, t in rows:
        lo, hi = r.get("log_likelihood_lower"), r.get("log_likelihood_upper")
        bounds = f"[{lo:.2f}, {hi:.2f}]" if lo is not None else "—"
        runs = {"forward": r.get("forward_runs"), "reverse": r.get("reverse_runs")}
        extra = note(name, r)
        if "mean-field" in name:
            extra = f"mean-field bound − AIS log Ẑ: {r['log_likelihood']:.2f}" + (f"; {extra}" if extra else "")
        print(f"| {name} | {r['forward_log_likelihood']:.2f} | {r['reverse_log_likelihood']:.2f} | {r['gap']:.2f} "
              f"| {bounds} | {runs.get('forward')}/{runs.get('reverse')} | {t.wall:.0f} s | {t.cpu:.0f} s | {extra} |")


if __name__ == "__main__":
    main()
