"""Elastic training (``resources.num_workers=MIN..MAX``) on a simulated cluster that grows mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.trained import load_trained

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

EPOCHS = 40  # long enough (tens of seconds) for the node to join and the group to regrow mid-run
STEPS_PER_EPOCH = 8  # 400 examples / batch 50, at every world size


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=rbm-elastic", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=400",
        "model.family=rbm", "model.n_hidden=64", "model.negative=gibbs", f"train.epochs={EPOCHS}",
        "train.batch_size=50", "train.lr=0.1", "train.eval_examples=50", "resources.num_workers=1..2",
        "resources.elastic_resize_interval_s=1", "resources.max_failures=2", f"output.root={root}", *extra])


def test_the_worker_group_grows_when_a_node_joins(tmp_path):
    from ray.cluster_utils import Cluster

    cfg = _cfg(tmp_path)
    data = prepare(cfg.data, tmp_path / "digits")
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1)  # room for one worker: the run starts at its minimum
    ray.init(address=cluster.address)
    events: list[dict] = []

    def watch(event: dict) -> None:
        events.append(event)
        first_epoch = event["kind"] == "epoch" and sum(e["kind"] == "epoch" for e in events) == 1
        if first_epoch:  # a checkpoint exists: a node joins, and the group should grow into it
            cluster.add_node(num_cpus=1)

    try:
        result = train(cfg, data, progress=watch)
        worlds = [e["world"] for e in events if e["kind"] == "worker"]
        assert worlds[0] == 1 and 2 in worlds, worlds
        assert result.epochs == EPOCHS and result.steps == EPOCHS * STEPS_PER_EPOCH
        assert load_trained(result.run_dir).step == EPOCHS * STEPS_PER_EPOCH
        logged = [e for e in events if e["kind"] == "epoch"]
        assert logged[-1]["step"] == EPOCHS * STEPS_PER_EPOCH
    finally:
        ray.shutdown()
        cluster.shutdown()
