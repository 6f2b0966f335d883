"""The engine on real Ray Train worker groups (tens of seconds each: kept to three tests)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import ray
import torch

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.rundir import RunDir
from pipeline.trained import load_trained
from tests.ray_workers import kill_a_train_worker

pytestmark = pytest.mark.ray


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=rbm-ray", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=400",
        "model.family=rbm", "model.n_hidden=16", "model.negative=mean-field", "train.epochs=1",
        "train.batch_size=50", "train.lr=0.1", "train.eval_examples=50", f"output.root={root}", *extra])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare(_cfg(root).data, root / "digits")


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_trained(run_dir).recipe.modules["model"].state_dict()


# both batch feeds (pipeline/feed.py): the split on the device, and the memory map read ahead
DATA_PATHS = pytest.mark.parametrize("path", ["resources.data_in_memory_mb=2048", "resources.data_in_memory_mb=0"],
                                     ids=["in-memory", "mapped"])


@DATA_PATHS
def test_two_workers_take_the_same_steps_as_one(tmp_path, digits, fresh_ray, path, capfd):
    """Same global batches + loss weights ⇒ DDP's averaged update equals the single-process one.
    And Ray Train's start-up INFO lines (relayed by Ray's log monitor) stay out of the terminal."""
    one = train(_cfg(tmp_path / "one", "resources.num_workers=0", path), digits)
    events = []
    two = train(_cfg(tmp_path / "two", "resources.num_workers=2", path), digits, progress=events.append)
    shown = "".join(capfd.readouterr())
    for noise in ("Started training worker group", "Requesting resources", "Setting up process group"):
        assert noise not in shown
    assert sorted(e["rank"] for e in events if e["kind"] == "worker") == [0, 1]
    assert one.steps == two.steps == 8
    w1, w2 = _weights(one.run_dir), _weights(two.run_dir)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), (k, (w1[k] - w2[k]).abs().max())


def _kill_one_worker_after_checkpoint(run_dir: Path, killed: list[int]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        if len(list(run_dir.glob("checkpoint_*"))) >= 2 and kill_a_train_worker(killed):
            return
        time.sleep(0.05)


@DATA_PATHS
def test_killed_worker_resumes_from_last_checkpoint(tmp_path, digits, fresh_ray, path):
    cfg = _cfg(tmp_path, "resources.num_workers=2", "resources.max_failures=2", "train.epochs=12",
               "model.n_hidden=200", "model.negative=gibbs", path)
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_one_worker_after_checkpoint, args=(RunDir.of(cfg).path, killed), daemon=True)
    watcher.start()
    result = train(cfg, digits)
    watcher.join()
    assert killed, "the test never saw a worker to kill"
    assert result.epochs == 12 and result.steps == 12 * 8  # 400 examples / batch 50
    assert load_trained(result.run_dir).step == 12 * 8


def test_workers_spread_over_two_nodes(tmp_path, digits):
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address)
        events = []
        result = train(_cfg(tmp_path, "resources.num_workers=2"), digits, progress=events.append)
        nodes = {e["node"] for e in events if e["kind"] == "worker"}
        assert len(nodes) == 2 and result.steps == 8
    finally:
        ray.shutdown()
        cluster.shutdown()
