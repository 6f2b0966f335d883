"""A run that lives in object storage only: moto's S3 server on loopback, a simulated two-node Ray
cluster whose nodes each have their own scratch directory, and a driver whose local copies are
deleted before the workers start and between the stages (so no node can read the driver's paths)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from pipeline.checkpoints import list_checkpoints
from pipeline.config import load_config
from pipeline.data import mirror, prepare
from pipeline.engine import train
from pipeline.evaluation import evaluate
from pipeline.report import build_report
from pipeline.rundir import RunDir, data_dir, run_store, storage_of, stored_data_name
from pipeline.sampling import load_samples, sample
from pipeline.trained import load_trained
from tests.s3_server import s3_server
from tests.ray_workers import kill_a_train_worker

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.timeout(360)]  # well inside CI's budget, never a hang

EPOCHS = 6
STEPS_PER_EPOCH = 8  # 400 examples / batch 50


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


def _tiny_extractor(path: Path) -> Path:
    """A TorchScript feature network small enough to score 80 digits in milliseconds."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))).save(str(path))
    return path


def _cfg(root: Path, s3, *extra: str):
    root.parent.mkdir(parents=True, exist_ok=True)
    extractor = _tiny_extractor(root.parent / "features.pt")
    return load_config(None, [
        "name=rbm-s3", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=400",
        "model.family=rbm", "model.n_hidden=64", "model.negative=gibbs", f"train.epochs={EPOCHS}",
        "train.batch_size=50", "train.lr=0.1", "train.eval_examples=50", "resources.num_workers=2",
        "resources.max_failures=2", "sample.chains=40", "sample.chains_per_block=10", "sample.steps=6",
        "sample.burn_in=2", "sample.thin=2", "sample.workers=2", "evaluate.metrics=[fid]", "evaluate.likelihood=none",
        f"evaluate.feature=torchscript:{extractor}", "evaluate.num_samples=80",
        f"output.root={root}", f"output.storage=s3://{s3.bucket}/runs",
        f"output.storage_options.endpoint_override={s3.endpoint}", "output.storage_options.scheme=http", *extra])


def _kill_a_worker_after_a_checkpoint(cfg, killed: list[int]) -> None:
    """SIGKILL one Ray Train worker once a checkpoint is in S3 (only this test's own Ray)."""
    deadline = time.time() + 150
    while time.time() < deadline and not killed:
        if list_checkpoints(storage_of(cfg), cfg.run_name) and kill_a_train_worker(killed):
            return
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Head (no CPUs: it runs no workers) plus two 1-CPU nodes, each with its own node cache."""
    from ray.cluster_utils import Cluster

    scratch = {name: tmp_path / "scratch" / name for name in ("driver", "node-a", "node-b")}
    monkeypatch.setenv("BOLTZGAN_NODE_CACHE", str(scratch["driver"]))
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for name in ("node-a", "node-b"):
        cluster.add_node(num_cpus=1, env_vars={"BOLTZGAN_NODE_CACHE": str(scratch[name])})
    ray.init(address=cluster.address)
    try:
        yield scratch
    finally:
        ray.shutdown()
        cluster.shutdown()


def _forget_local(cfg, data_path: str | None = None) -> None:
    """Delete every local copy the driver has of the run and its data."""
    shutil.rmtree(RunDir.of(cfg).path, ignore_errors=True)
    shutil.rmtree(data_dir(cfg), ignore_errors=True)
    if data_path:
        shutil.rmtree(data_path, ignore_errors=True)


def test_a_two_node_run_lives_in_s3(tmp_path, s3, cluster):
    cfg = _cfg(tmp_path / "driver" / "runs", s3)
    store = run_store(cfg)
    assert store is not None and not store.is_local

    data = prepare(cfg.data, data_dir(cfg))
    mirror.publish(data, store, stored_data_name(data.meta.fingerprint))
    _forget_local(cfg, data.path)  # before the workers start: they can only read S3
    assert not Path(data.path).exists()

    killed: list[int] = []
    watcher = threading.Thread(target=_kill_a_worker_after_a_checkpoint, args=(cfg, killed), daemon=True)
    watcher.start()
    events: list[dict] = []
    result = train(cfg, data, progress=events.append)
    watcher.join()

    assert killed, "no worker was killed, so resuming from S3 was not tested"
    assert result.epochs == EPOCHS and result.steps == EPOCHS * STEPS_PER_EPOCH
    assert len({e["node"] for e in events if e["kind"] == "worker"}) == 2  # workers on both nodes
    # each worker node read the data from S3 into its own cache; the driver's node never needed it
    for node in ("node-a", "node-b"):
        assert (cluster[node] / data.meta.fingerprint / "meta.json").is_file(), node
    assert not (cluster["driver"] / data.meta.fingerprint).exists()
    run_keys = s3.keys(f"runs/{cfg.run_name}/")
    for name in ("config.yaml", "data.json", "state.json", "model.pt", "model.pt.sha256", "metrics.jsonl"):
        assert f"runs/{cfg.run_name}/{name}" in run_keys, name
    assert any("/checkpoint_" in k and k.endswith("MANIFEST.json") for k in run_keys)

    _forget_local(cfg)
    samples = sample(RunDir.of(cfg))  # tasks on both nodes write their blocks to S3
    blocks = [k for k in s3.keys(f"runs/{cfg.run_name}/samples/") if "block-" in k]
    assert len(blocks) == 4 and samples.chains == 40
    assert f"runs/{cfg.run_name}/samples/manifest.json" in s3.keys(f"runs/{cfg.run_name}/samples/")

    _forget_local(cfg)
    assert load_samples(RunDir.of(cfg)).shape[0] == 40 * samples.draws_per_chain
    _forget_local(cfg)
    evaluation = evaluate(RunDir.of(cfg))
    assert f"runs/{cfg.run_name}/eval/metrics.json" in s3.keys(f"runs/{cfg.run_name}/eval/")
    assert evaluation.run == cfg.run_name and evaluation.step == EPOCHS * STEPS_PER_EPOCH
    fid = evaluation.get("fid")
    assert fid is not None and fid.num_samples == 80 and np.isfinite(fid.value)

    _forget_local(cfg)
    report = build_report(RunDir.of(cfg))
    report_keys = s3.keys(f"runs/{cfg.run_name}/report/")
    assert f"runs/{cfg.run_name}/report/report.md" in report_keys
    assert f"runs/{cfg.run_name}/report/samples.png" in report_keys and "samples" in report.figures

    # the run opens from its S3 folder alone, as `boltzgan sample/evaluate/report s3://...` do
    _forget_local(cfg)
    uri = f"s3://{s3.bucket}/runs/{cfg.run_name}?endpoint_override={s3.endpoint}&scheme=http"
    trained = load_trained(RunDir.at(uri))
    assert trained.step == EPOCHS * STEPS_PER_EPOCH and trained.data.meta.fingerprint == data.meta.fingerprint
