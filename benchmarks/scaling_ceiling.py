"""How far two workers can scale the RBM's CD-1 step on this machine, without Ray (issue #13, row 2).

Three measurements of the recipe's own ``train_step`` (RBM 784-500, CD-1, batch 1000, one torch
thread per process), ms per step after 5 warm-up steps:

1. one process on 1,000 examples, against two independent processes on 500 each started together
   (no communication: the ceiling of data-parallel scaling here);
2. two ``torch.distributed`` processes on 500 each, summing gradients through shared memory
   (``pipeline/node_reduce.py``, what the engine uses on one machine);
3. the same with gloo's all-reduce (``shared_memory_applies`` patched to False).

Compare with ``engine_throughput.py --only scaling`` (the same through Ray Train). Run it alone:

    python benchmarks/scaling_ceiling.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FASHION = "/usr/share/datasets/fashion-mnist"
B, STEPS = 1000, 100


def _recipe_and_data(cache: Path):
    from pipeline.config import DataConfig, load_config
    from pipeline.data import open_split, prepare
    from pipeline.recipes.base import recipe_class

    binary = prepare(DataConfig(source=f"idx:{FASHION}", binarize="threshold", scale="unit"), cache)
    x = torch.from_numpy(np.array(open_split(binary.path, "train")[0], dtype=np.float32))
    cfg = load_config("rbm-fashion", [f"train.batch_size={B}", "model.cd_k=1", "model.persistent=false"])
    return cfg, recipe_class("rbm")(cfg, binary.data_shape()), x


def _steps(recipe, x, b: int, offset: int) -> float:
    from pipeline.recipes.base import Batch

    for i in range(STEPS + 5):
        if i == 5:
            t = time.perf_counter()
        recipe.train_step(Batch(x[(i * B + offset) % 50000:][:b], None, 1.0, i, 0, log=False))
    return (time.perf_counter() - t) / STEPS * 1000


def independent(b: int, cache: Path, go, out) -> None:
    sys.path.insert(0, str(REPO))
    torch.set_num_threads(1)
    cfg, recipe, x = _recipe_and_data(cache)
    recipe.optimizers = recipe.build_optimizers()
    go.wait()
    out.put(_steps(recipe, x, b, 0))


def distributed(rank: int, port: int, shared: bool, cache: Path, out) -> None:
    sys.path.insert(0, str(REPO))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import pipeline.node_reduce as node_reduce
    from pipeline.engine import make_accelerator

    if not shared:
        node_reduce.shared_memory_applies = lambda flat: False
    cfg, recipe, x = _recipe_and_data(cache)
    recipe.setup(make_accelerator(cfg, type(recipe)))
    torch.set_num_threads(1)
    out.put(_steps(recipe, x, B // 2, rank * (B // 2)))


def main() -> None:
    sys.path.insert(0, str(REPO))
    from tests.ports import free_port

    cache = Path("/tmp/boltzgan-bench-engine/binary-limitall")
    ctx = mp.get_context("spawn")
    rows = []
    for n, b in ((1, B), (2, B // 2)):
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=independent, args=(b, cache, go, out)) for _ in range(n)]
        [p.start() for p in procs]
        time.sleep(8)  # every process has imported torch and loaded the data
        go.set()
        times = [out.get() for _ in procs]
        [p.join() for p in procs]
        rows.append((f"{n} independent process(es) × {b} examples", max(times)))
    for shared in (True, False):
        out = ctx.Queue()
        port = free_port()
        procs = [ctx.Process(target=distributed, args=(r, port, shared, cache, out)) for r in range(2)]
        [p.start() for p in procs]
        times = [out.get() for _ in procs]
        [p.join() for p in procs]
        rows.append((f"2 torch.distributed processes × {B // 2}, {'shared memory' if shared else 'gloo'}",
                     max(times)))
    one = rows[0][1]
    print("| setting | ms per step (slowest process) | vs one process on 1,000 |")
    print("|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {one / ms:.2f}× |")


if __name__ == "__main__":
    main()
