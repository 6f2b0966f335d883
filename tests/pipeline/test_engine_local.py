"""The training engine in Ray Train's local mode (num_workers=0: in-process, seconds)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.errors import TrainingDiverged, UserError
from pipeline.trained import load_trained


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=rbm-test", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=400",
        "model.family=rbm", "model.n_hidden=16", "train.epochs=2", "train.batch_size=50", "train.lr=0.05",
        "train.eval_examples=100", "resources.num_workers=0", f"output.root={root}", *extra])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare(_cfg(root).data, root / "digits")


# both batch feeds (pipeline/feed.py): the split on the device, and the memory map read ahead
DATA_PATHS = pytest.mark.parametrize("path", ["resources.data_in_memory_mb=2048", "resources.data_in_memory_mb=0"],
                                     ids=["in-memory", "mapped"])


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_trained(run_dir).recipe.modules["model"].state_dict()


def test_train_writes_checkpoints_model_and_metrics(tmp_path, digits):
    cfg = _cfg(tmp_path)
    events = []
    result = train(cfg, digits, progress=events.append)
    assert result.epochs == 2 and result.steps == 2 * 8  # 400 examples / 50
    run = Path(result.run_dir)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert sorted(p.name.startswith("checkpoint_") for p in run.iterdir()).count(True) == 2
    assert [e["epoch"] for e in events if e["kind"] == "epoch"] == [1, 2]
    trained = load_trained(run)
    assert trained.epoch == 2 and trained.step == 16


def test_same_seed_same_weights_on_both_data_paths(tmp_path, digits):
    a = train(_cfg(tmp_path / "a", "resources.data_in_memory_mb=2048"), digits)
    b = train(_cfg(tmp_path / "b", "resources.data_in_memory_mb=0"), digits)
    for k, v in _weights(Path(a.run_dir)).items():
        assert torch.equal(v, _weights(Path(b.run_dir))[k]), k


def test_existing_run_is_not_overwritten_without_resume(tmp_path, digits):
    train(_cfg(tmp_path), digits)
    with pytest.raises(UserError, match="--resume"):
        train(_cfg(tmp_path), digits)


@DATA_PATHS
def test_resume_continues_to_the_requested_epochs(tmp_path, digits, path):
    first = train(_cfg(tmp_path, "train.epochs=1", path), digits)
    assert first.steps == 8
    resumed = train(_cfg(tmp_path, "train.epochs=3", path), digits, resume=True)
    assert resumed.epochs == 3 and resumed.steps == 24
    straight = train(_cfg(tmp_path / "straight", "train.epochs=3", path), digits)
    for k, v in _weights(Path(straight.run_dir)).items():
        assert torch.allclose(v, _weights(Path(resumed.run_dir))[k], atol=1e-6), k
    again = train(_cfg(tmp_path, "train.epochs=3", path), digits, resume=True)
    assert again.skipped and again.steps == 24


def test_resume_refuses_a_different_model(tmp_path, digits):
    train(_cfg(tmp_path, "train.epochs=1"), digits)
    with pytest.raises(UserError, match="model.n_hidden"):
        train(_cfg(tmp_path, "model.n_hidden=8"), digits, resume=True)


def test_corrupt_checkpoint_falls_back_to_the_previous(tmp_path, digits, caplog):
    result = train(_cfg(tmp_path, "train.epochs=2"), digits)
    run = Path(result.run_dir)
    newest = max((p for p in run.iterdir() if p.name.startswith("checkpoint_")), key=lambda p: p.stat().st_mtime)
    (newest / "model.pt").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        resumed = train(_cfg(tmp_path, "train.epochs=3"), digits, resume=True)
    assert "corrupt or partial" in caplog.text
    assert resumed.steps == 24  # restarted from epoch 1 (step 8) and trained 2 more epochs


@DATA_PATHS
def test_nan_loss_stops_with_step_and_checkpoint(tmp_path, digits, path):
    # An absurd learning rate overflows the RBM's free energy within a few epochs.
    cfg = _cfg(tmp_path, "train.lr=1e38", "train.epochs=4", path)
    with pytest.raises(TrainingDiverged, match=r"step \d+.*last good checkpoint"):
        train(cfg, digits)


def test_persistent_chains_are_checkpointed_and_resumed(tmp_path, digits):
    cfg = _cfg(tmp_path, "model.persistent=true", "model.persistent_chains=30", "train.epochs=1")
    result = train(cfg, digits)
    chains = load_trained(result.run_dir).recipe.chains
    assert chains is not None and chains.shape == (30, 64) and set(chains.unique().tolist()) <= {0.0, 1.0}
    straight = train(_cfg(tmp_path / "s", "model.persistent=true", "model.persistent_chains=30",
                          "train.epochs=2"), digits)
    resumed = train(_cfg(tmp_path, "model.persistent=true", "model.persistent_chains=30", "train.epochs=2"),
                    digits, resume=True)
    a, b = load_trained(straight.run_dir).recipe, load_trained(resumed.run_dir).recipe
    assert torch.equal(a.chains, b.chains)
    assert torch.allclose(a.modules["model"].W, b.modules["model"].W, atol=1e-6)
