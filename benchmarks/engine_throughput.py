"""The training engine against hand-written loops, in one table with targets (issue #13).

Every engine number is the engine's own in-loop rate (``examples_per_sec`` of metrics.jsonl:
from the first step of an epoch to its end-of-epoch read-back, Ray start-up and checkpoint
export excluded), taken by calling ``pipeline.engine.train`` exactly as the CLI does. The peers
run in this process with ``--threads`` torch threads on in-memory tensors:

1. RBM CD-1 784-500, batch 100, binarised Fashion-MNIST: a plain PyTorch CD-1 loop, scikit-learn's
   ``BernoulliRBM`` (its update is PCD-1: the same five GEMMs), the engine in-process
   (``num_workers=0``) and the engine with one Ray worker owning 2 CPUs.
2. The same model at batch 1000: 1 Ray worker × 1 CPU against 2 workers × 1 CPU.
3. The ``dcgan-fashion`` recipe through the engine (in-process): discriminator steps/s against a
   plain loop of the same G and D modules, the same loss and the same optimiser (Adam at the
   preset's rate) as a plain script builds it; a second plain row uses the fused Adam kernel the
   engine picks, so the table shows how much of the engine's rate is that kernel.
4. ``pcd-fashion``, ``dbm-fashion`` (joint phase) and ``ebm-fashion`` through the engine
   (in-process): examples/s. ``--json FILE`` saves the rows; ``--before FILE`` adds that file's
   numbers as a "before" column (target: no regression beyond 5 %). The script also runs on older
   commits: ``--repo CHECKOUT`` imports boltzgan from there (e.g. a ``git worktree`` of aba1a37).
5. ``--only contention``: one Ray worker (2 CPUs) alone, then next to one busy normal-priority
   process; target ≥ 40 % of its speed alone.
6. ``train.compile`` off/on for the RBM and DCGAN rows (where the config has the key), each
   measured in its second epoch so that compilation (first epoch) is not counted.
7. ``--only upload``: checkpoints to object storage (moto's S3 server on loopback, a checkpoint
   every epoch, one Ray worker): the wall time per epoch *including* the checkpoint with
   ``train.checkpoint_upload=sync`` against ``async`` (the default for object storage); target:
   async does not pause the steps for the upload (≤ 0.9× sync per epoch, and its in-loop rate
   within 5 % of sync's).

Run it alone on the machine (it is a throughput benchmark):

    python benchmarks/engine_throughput.py --json after.json            # everything (minutes)
    python benchmarks/engine_throughput.py --limit 2000 --gan-steps 20 --preset-steps 10   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
V, H = 784, 500


@dataclass
class Row:
    section: str
    name: str
    value: float  # examples/s, or steps/s for the GAN rows
    unit: str = "examples/s"
    target: str = ""
    ok: bool | None = None


# ================================================================================ the peers

def plain_cd1(x: np.ndarray, batch: int, epochs: int, lr: float = 0.05) -> float:
    """A minimal single-process CD-1 loop on an in-memory tensor (examples/s)."""
    import torch

    g = torch.Generator().manual_seed(0)
    data = torch.from_numpy(x)
    W = torch.randn(V, H, generator=g) * 0.01
    b, c = torch.zeros(V), torch.zeros(H)
    t = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(data) - batch + 1, batch):
            v0 = data[i:i + batch]
            ph0 = torch.sigmoid(v0 @ W + c)
            h0 = torch.bernoulli(ph0, generator=g)
            v1 = torch.bernoulli(torch.sigmoid(h0 @ W.T + b), generator=g)
            ph1 = torch.sigmoid(v1 @ W + c)
            W += lr * (v0.T @ ph0 - v1.T @ ph1) / batch
            b += lr * (v0 - v1).mean(0)
            c += lr * (ph0 - ph1).mean(0)
    return epochs * (len(data) // batch) * batch / (time.perf_counter() - t)


def sklearn_rbm(x: np.ndarray, batch: int, epochs: int, lr: float = 0.05) -> float:
    """scikit-learn's rate, measured in a child process: in this one, its BLAS thread pools made every
    torch row measured after it slower (the in-process engine: 25.4k → 17.8k examples/s, measured)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_sklearn_rate, (x, batch, epochs, lr))


def _sklearn_rate(x: np.ndarray, batch: int, epochs: int, lr: float) -> float:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=H, batch_size=batch, learning_rate=lr, n_iter=epochs, random_state=0)
    t = time.perf_counter()
    rbm.fit(x.astype(np.float64))
    return epochs * len(x) / (time.perf_counter() - t)


def plain_gan_loop(data, steps: int, fused: bool = False) -> float:
    """D steps/s of a plain loop over the dcgan-fashion recipe's own G, D and loss, with the optimisers
    a plain script writes: ``torch.optim.Adam`` at the preset's rate and betas, torch's default
    (per-tensor) implementation. ``fused``: torch's fused Adam kernel, which the engine uses
    (``make_optimizer``), to show how much of the engine's rate is that kernel."""
    import torch

    from pipeline.config import load_config
    from pipeline.recipes.base import recipe_class

    cfg = load_config("dcgan-fashion")
    torch.manual_seed(0)
    recipe = recipe_class("gan")(cfg, data.data_shape())
    G, D, loss = recipe.modules["G"], recipe.modules["D"], recipe.loss
    adam = {"lr": cfg.train.lr, "betas": cfg.train.betas, **({"fused": True} if fused else {})}
    opts = {"G": torch.optim.Adam(G.parameters(), **adam), "D": torch.optim.Adam(D.parameters(), **adam)}
    x = _train_tensor(data)
    n, nz = cfg.train.batch_size, cfg.model.latent_dim
    order = torch.randperm(len(x))
    t = None
    for i in range(steps + 5):  # 5 warm-up steps
        if i == 5:
            t = time.perf_counter()
        real = x[order[(i * n) % (len(x) - n):][:n]]
        fake = G(torch.randn(n, nz))  # one G forward per step, reused by the G step (DCGAN's loop)
        logits = D(torch.cat([real, fake.detach()]))
        d_loss = loss.d_loss(logits[:n], logits[n:])
        opts["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["D"].step()
        D.requires_grad_(False)
        g_loss = loss.g_loss(D(fake))
        opts["G"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["G"].step()
        D.requires_grad_(True)
    return steps / (time.perf_counter() - t)


def _train_tensor(data):
    import torch

    from pipeline.data import open_split

    x, _ = open_split(data.path, "train")
    return torch.from_numpy(np.array(x, dtype=np.float32)).reshape(-1, *data.meta.shape)


# ================================================================================ the engine

def has_key(section: str, key: str) -> bool:
    """Whether this checkout's config knows ``section.key`` (older commits lack the new knobs)."""
    from pipeline import config

    cls = {"train": config.TrainConfig, "resources": config.ResourcesConfig}[section]
    return key in cls.model_fields


def engine_rate(preset: str, data, root: Path, name: str, overrides: list[str], last: bool = False) -> float:
    """The engine's in-loop examples/s: mean over the run's epochs, or the last epoch's (``last``:
    after a warm-up epoch, e.g. once torch.compile has compiled)."""
    from pipeline.config import load_config
    from pipeline.engine import train

    cfg = load_config(preset, [f"output.root={root}", f"output.run_name={name}", "train.eval_examples=100",
                               *overrides])
    result = train(cfg, data)
    lines = [json.loads(s) for s in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    rates = [m["examples_per_sec"] for m in lines]
    return float(rates[-1] if last else np.mean(rates))


def rbm(data, root: Path, name: str, batch: int, workers: int, cpus: float, epochs: int, extra=(),
        last: bool = False) -> float:
    return engine_rate("rbm-fashion", data, root, name, [
        f"train.batch_size={batch}", f"resources.num_workers={workers}", f"resources.cpus_per_worker={cpus}",
        f"train.epochs={epochs}", "train.log_every=100000", "model.cd_k=1", "model.persistent=false", *extra],
        last=last)


# ================================================================================ sections

def repeated(args, *peers: Callable[[int], float]) -> list[float]:
    """Each peer's median over ``--repeats`` rounds, the peers interleaved within a round: this VM's
    speed drifts by tens of percent over minutes (its measured GEMM rate ranged 64-112 GFLOP/s in
    one afternoon), so a peer measured minutes after another would compare the drift, not the code."""
    rounds = [[peer(r) for peer in peers] for r in range(args.repeats)]
    return [float(np.median([row[i] for row in rounds])) for i in range(len(peers))]


def section_rbm(args, binary, x: np.ndarray, root: Path) -> list[Row]:
    s = "1. RBM CD-1 784-500, batch 100"
    plain, sk, local, one = repeated(
        args, lambda r: plain_cd1(x, 100, args.epochs), lambda r: sklearn_rbm(x, 100, args.epochs),
        lambda r: rbm(binary, root, f"rbm-local-{r}", 100, 0, 2, args.epochs),
        lambda r: rbm(binary, root, f"rbm-1w2c-{r}", 100, 1, 2, args.epochs))
    return [Row(s, f"plain PyTorch CD-1 loop ({args.threads} threads)", plain),
            Row(s, "scikit-learn BernoulliRBM", sk),
            Row(s, "engine in-process (num_workers=0)", local, target=f"≥ 0.95× plain ({local / plain:.2f}×)",
                ok=local >= 0.95 * plain),
            Row(s, "engine, 1 Ray worker, cpus_per_worker=2", one,
                target=f"≥ 0.9× plain ({one / plain:.2f}×), ≥ 0.85× in-process ({one / local:.2f}×), "
                       f"≥ 2× scikit-learn ({one / sk:.2f}×)",
                ok=one >= 0.9 * plain and one >= 0.85 * local and one >= 2 * sk)]


def section_scaling(args, binary, root: Path) -> list[Row]:
    s = "2. RBM CD-1 784-500, batch 1000"
    one, two = repeated(args, lambda r: rbm(binary, root, f"rbm-b1000-1w-{r}", 1000, 1, 1, args.epochs),
                        lambda r: rbm(binary, root, f"rbm-b1000-2w-{r}", 1000, 2, 1, args.epochs))
    return [Row(s, "engine, 1 Ray worker × 1 CPU", one),
            Row(s, "engine, 2 Ray workers × 1 CPU", two,
                target=f"≥ 1.7× one worker ({two / one:.2f}×, efficiency {two / one / 2:.0%})", ok=two >= 1.7 * one)]


def section_gan(args, images, root: Path) -> list[Row]:
    s = "3. DCGAN (dcgan-fashion), batch 64"
    batch = 64
    plain, fused, eng = repeated(
        args, lambda r: plain_gan_loop(images, args.gan_steps), lambda r: plain_gan_loop(images, args.gan_steps, True),
        lambda r: engine_rate("dcgan-fashion", images, root, f"dcgan-{r}",
                              ["resources.num_workers=0", f"train.max_steps={args.gan_steps}", "train.epochs=1"]) / batch)
    return [Row(s, "plain loop, same G/D and loss, torch.optim.Adam (default implementation)", plain, "D steps/s"),
            Row(s, "the same plain loop with fused Adam (what the engine uses)", fused, "D steps/s"),
            Row(s, "engine in-process (num_workers=0)", eng, "D steps/s",
                target=f"≥ 0.95× plain ({eng / plain:.2f}×; {eng / fused:.2f}× the fused-Adam loop)",
                ok=eng >= 0.95 * plain)]


PRESETS = {  # row → (preset, data kind, overrides, steps divisor)
    "pcd-fashion": ("pcd-fashion", "binary", [], 1),
    "dbm-fashion (joint phase)": ("dbm-fashion", "binary", ["model.pretrain_epochs=0"], 5),
    "ebm-fashion": ("ebm-fashion", "images", [], 20),
}


def section_presets(args, binary, images, root: Path, before: dict[str, float]) -> list[Row]:
    s = "4. presets through the engine (in-process)"
    rows = []
    for label, (preset, kind, extra, div) in PRESETS.items():
        steps = max(2, args.preset_steps // div)
        rate = engine_rate(preset, binary if kind == "binary" else images, root, f"preset-{preset}", [
            *extra, "resources.num_workers=0", f"train.max_steps={steps}", "train.epochs=1"])
        key = f"{s}|{label}"
        old = before.get(key)
        target, ok = "", None
        if old:
            target, ok = f"no regression: before {old:,.0f} ({rate / old:.2f}×)", rate >= 0.95 * old
        rows.append(Row(s, f"{label} ({steps} steps)", rate, target=target, ok=ok))
    return rows


def section_compile(args, binary, root: Path) -> list[Row]:
    """Compilation happens in the first epoch; the rate is the second epoch's."""
    s = "6. train.compile (in-process, 2nd epoch)"
    if not has_key("train", "compile"):
        return [Row(s, "train.compile not in this checkout", float("nan"))]
    from pipeline.config import DataConfig
    from pipeline.data import prepare

    rows = []
    for on in (False, True):
        rate = rbm(binary, root, f"rbm-compile-{on}", 100, 0, 2, 2, [f"train.compile={str(on).lower()}"], last=True)
        rows.append(Row(s, f"RBM batch 100, compile={on}", rate))
    small = prepare(DataConfig(source=f"idx:{FASHION}", scale="symmetric", limit=args.gan_steps * 64),
                    args.cache / f"images-compile-{args.gan_steps}")  # gan_steps batches per epoch
    for on in (False, True):
        rate = engine_rate("dcgan-fashion", small, root, f"dcgan-compile-{on}", [
            "resources.num_workers=0", "train.epochs=2", f"train.compile={str(on).lower()}"], last=True) / 64
        rows.append(Row(s, f"DCGAN, compile={on}", rate, "D steps/s"))
    return rows


BUSY = "while True: pass"


def section_contention(args, binary, root: Path) -> list[Row]:
    """One Ray worker (2 CPUs) alone, then beside one busy normal-priority process."""
    s = "5. Ray worker beside a busy process"
    alone = rbm(binary, root, "rbm-alone", 100, 1, 2, args.epochs)
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(1.0)
        shared = rbm(binary, root, "rbm-shared", 100, 1, 2, args.epochs)
    finally:
        busy.kill()
        busy.wait()
    return [Row(s, "1 Ray worker (2 CPUs) alone", alone),
            Row(s, "the same, next to one busy normal-priority process", shared,
                target=f"≥ 40% of alone ({shared / alone:.0%})", ok=shared >= 0.4 * alone)]


def section_gpu(args, binary, root: Path) -> list[Row]:
    import torch

    if not torch.cuda.is_available():
        return []
    s = "7. GPU (in-process, use_gpu)"
    rate = rbm(binary, root, "rbm-gpu", 100, 0, 1, args.epochs, ["resources.use_gpu=true"])
    peak = gemm_rate("cuda")
    return [Row(s, f"RBM batch 100 on {torch.cuda.get_device_name()}", rate,
                target=f"{10 * V * H * rate / peak:.1%} of measured GEMM rate {peak / 1e12:.1f} TFLOP/s")]


def section_upload(args, binary, root: Path) -> list[Row]:
    """Seconds per epoch, checkpoint included (run wall time / epochs), with the checkpoint
    uploaded synchronously and asynchronously to an S3 API on loopback."""
    s = "7. checkpoints to S3 (moto on loopback), RBM 784-500, batch 100, 1 Ray worker × 2 CPUs"
    if not has_key("train", "checkpoint_upload"):
        return [Row(s, "this checkout has no train.checkpoint_upload", float("nan"), "")]
    sys.path.insert(0, str(args.repo))
    from tests.s3_server import s3_server

    epochs = max(args.epochs, 4)
    out: dict[str, tuple[float, float]] = {}
    with s3_server() as s3:
        for mode in ("sync", "async"):
            storage = [f"output.storage=s3://{s3.bucket}/bench-{mode}",
                       f"output.storage_options.endpoint_override={s3.endpoint}", "output.storage_options.scheme=http",
                       f"train.checkpoint_upload={mode}", "train.checkpoint_every=1"]
            started = time.perf_counter()
            rate = rbm(binary, root, f"rbm-upload-{mode}", 100, 1, 2, epochs, storage)
            out[mode] = ((time.perf_counter() - started) / epochs, rate)
    (sync_s, sync_rate), (async_s, async_rate) = out["sync"], out["async"]
    return [Row(s, "seconds per epoch incl. checkpoint, sync upload", sync_s, "s"),
            Row(s, "seconds per epoch incl. checkpoint, async upload", async_s, "s",
                target=f"≤ 0.9× sync ({async_s / sync_s:.2f}×); in-loop rate {async_rate / sync_rate:.2f}× sync's",
                ok=async_s <= 0.9 * sync_s and async_rate >= 0.95 * sync_rate)]


def gemm_rate(device: str = "cpu", n: int = 1024, repeats: int = 20) -> float:
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


# ================================================================================ main

SECTIONS = ("rbm", "scaling", "gan", "presets", "contention", "compile", "gpu", "upload")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the RBM rows")
    ap.add_argument("--limit", type=int, default=None, help="first N training images only (smoke runs)")
    ap.add_argument("--gan-steps", type=int, default=300)
    ap.add_argument("--preset-steps", type=int, default=600, help="steps of pcd-fashion (DBM ÷5, EBM ÷20)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of sections 1-3 (each row: the median)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of this process and its peers")
    ap.add_argument("--only", nargs="+", choices=SECTIONS,
                    default=["rbm", "scaling", "gan", "presets", "compile", "gpu"],
                    help="sections to run; contention (it starts a busy process) and upload (an S3 server) "
                         "run only when asked")
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                    help="the boltzgan checkout to measure (default: this one)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--before", type=Path, help="rows of an earlier run (--json) to compare section 4 with")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "boltzgan-bench-engine")
    args = ap.parse_args()
    repo = str(args.repo.resolve())
    sys.path.insert(0, repo)
    # Ray workers (started by the Ray this process starts) import boltzgan from the same checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    os.chdir(repo)

    import torch

    import pipeline
    from pipeline.config import DataConfig
    from pipeline.data import open_split, prepare

    print(f"# measuring boltzgan from {Path(pipeline.__file__).parent}", file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    if not Path(FASHION).is_dir():
        raise SystemExit(f"{FASHION} is missing: apt-get install dataset-fashion-mnist")
    tag = f"limit{args.limit or 'all'}"
    binary = prepare(DataConfig(source=f"idx:{FASHION}", binarize="threshold", scale="unit", limit=args.limit),
                     args.cache / f"binary-{tag}")
    images = prepare(DataConfig(source=f"idx:{FASHION}", scale="symmetric", limit=args.limit),
                     args.cache / f"images-{tag}")
    x = np.array(open_split(binary.path, "train")[0], dtype=np.float32)  # a writable copy in memory
    before = {f"{r['section']}|{r['name'].rsplit(' (', 1)[0]}": r["value"]
              for r in json.loads(args.before.read_text())} if args.before else {}
    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    run: dict[str, Callable[[], list[Row]]] = {
        "rbm": lambda: section_rbm(args, binary, x, root),
        "scaling": lambda: section_scaling(args, binary, root),
        "gan": lambda: section_gan(args, images, root),
        "presets": lambda: section_presets(args, binary, images, root, before),
        "contention": lambda: section_contention(args, binary, root),
        "compile": lambda: section_compile(args, binary, root),
        "gpu": lambda: section_gpu(args, binary, root),
        "upload": lambda: section_upload(args, binary, root),
    }
    rows: list[Row] = []
    for key in SECTIONS:
        if key in args.only:
            print(f"# section {key} ...", file=sys.stderr, flush=True)
            rows += run[key]()
    commit = subprocess.run(["git", "-C", str(args.repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"\nboltzgan {commit}: {len(x):,} training images, RBM rows {args.epochs} epoch(s), sections 1-3 the median of {args.repeats} interleaved rounds, torch "
          f"{torch.__version__}, {args.threads} threads for the peers, {os.cpu_count()} CPUs; fp32 GEMM rate "
          f"{gemm_rate() / 1e9:.1f} GFLOP/s\n")
    print("| section | implementation | rate | target | result |")
    print("|---|---|---:|---|:---:|")
    for r in rows:
        verdict = "" if r.ok is None else ("PASS" if r.ok else "FAIL")
        print(f"| {r.section} | {r.name} | {r.value:,.1f} {r.unit} | {r.target} | {verdict} |")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    main()
