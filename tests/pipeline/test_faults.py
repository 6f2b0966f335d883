"""Faults and concurrency: locks per run and data directory, --resume without a checkpoint,
a failed start that leaves nothing behind (local mode, seconds)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import atomic as artifacts
from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.errors import BusyError, ResourceError, UserError
from pipeline.locks import hold, lock_path
from pipeline.rundir import RunDir


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=faults", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=200",
        "model.family=rbm", "model.n_hidden=8", "train.epochs=2", "train.batch_size=50",
        "train.eval_examples=50", "resources.num_workers=0", f"output.root={root}", *extra])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare(_cfg(root).data, root / "digits")


class OtherProcess:
    """A second process holding the lock of ``path`` until stopped."""

    def __init__(self, path: Path, what: str):
        code = (f"import sys, time; from pipeline.locks import hold\n"
                f"with hold({str(path)!r}, {what!r}):\n    print('held', flush=True); time.sleep(120)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_a_second_trainer_of_one_run_is_refused_naming_the_holder(tmp_path, digits):
    cfg = _cfg(tmp_path)
    other = OtherProcess(RunDir.of(cfg).path, "train")
    try:
        with pytest.raises(BusyError, match=rf"in use by pid {other.proc.pid} on host"):
            train(cfg, digits)
        with pytest.raises(BusyError):
            train(cfg, digits, resume=True)
    finally:
        other.stop()
    assert not (RunDir.of(cfg).path / "config.yaml").exists()  # nothing was claimed by the refused one
    assert train(cfg, digits).epochs == 2  # the kernel dropped the killed holder's lock


def test_a_second_prepare_into_one_directory_is_refused(tmp_path):
    out = tmp_path / "prepared"
    other = OtherProcess(out, "data")
    try:
        with pytest.raises(BusyError, match=rf"data: .*prepared is in use by pid {other.proc.pid}"):
            prepare(_cfg(tmp_path).data, out)
    finally:
        other.stop()
    assert prepare(_cfg(tmp_path).data, out).meta.n_train == 200


def test_locks_exclude_within_one_process_too(tmp_path):
    with hold(tmp_path / "x", "train"):
        with pytest.raises(BusyError, match=r"pid \d+ on host"):
            with hold(tmp_path / "x", "train"):
                pass
    with hold(tmp_path / "x", "train"):  # released on exit
        pass
    assert lock_path(tmp_path / "x") == tmp_path / ".x.lock"


def _checkpoints(run: Path) -> list[Path]:
    return [p for p in run.iterdir() if p.name.startswith("checkpoint_")]


def test_resume_without_a_valid_checkpoint_is_refused_unless_restart(tmp_path, digits):
    cfg = _cfg(tmp_path)
    train(cfg, digits)
    for ckpt in _checkpoints(RunDir.of(cfg).path):
        shutil.rmtree(ckpt)
    with pytest.raises(UserError, match=r"no valid checkpoint .* 2 epoch\(s\) were logged.*--restart"):
        train(_cfg(tmp_path, "train.epochs=3"), digits, resume=True)
    result = train(_cfg(tmp_path, "train.epochs=3"), digits, resume=True, restart=True)
    assert result.epochs == 3 and result.steps == 3 * 4
    epochs = [r["epoch"] for r in artifacts.read_jsonl(RunDir.of(cfg).path / "metrics.jsonl")]
    assert epochs == [1, 2, 3]  # not 1, 2, 1, 2, 3
    assert [r["epoch"] for r in artifacts.read_jsonl(RunDir.of(cfg).path / "metrics.jsonl.old")] == [1, 2]


def test_restart_is_refused_when_a_valid_checkpoint_exists(tmp_path, digits):
    train(_cfg(tmp_path, "train.epochs=1"), digits)
    with pytest.raises(UserError, match="has a valid checkpoint"):
        train(_cfg(tmp_path), digits, resume=True, restart=True)


def test_a_failed_start_claims_nothing(tmp_path, digits, monkeypatch):
    import pipeline.ray_utils as ray_utils

    def no_cluster(address=None):
        raise ResourceError("resources: the Ray cluster cannot be reached")

    monkeypatch.setattr(ray_utils, "ensure_ray", no_cluster)
    cfg = _cfg(tmp_path)
    with pytest.raises(ResourceError):
        train(cfg, digits)
    assert not (RunDir.of(cfg).path / "config.yaml").exists()
    monkeypatch.undo()
    assert train(cfg, digits).epochs == 2  # the corrected command needs no --resume


def test_a_start_failing_before_the_first_checkpoint_is_released(tmp_path, digits, monkeypatch):
    import pipeline.engine as engine

    def crash(*args, **kwargs):
        raise RuntimeError("worker group failed to start")

    monkeypatch.setattr(engine, "_run_trainer", crash)
    cfg = _cfg(tmp_path)
    with pytest.raises(RuntimeError):
        train(cfg, digits)
    assert not RunDir.of(cfg).path.exists() or not (RunDir.of(cfg).path / "config.yaml").exists()
    monkeypatch.undo()
    start = time.perf_counter()
    assert train(cfg, digits).epochs == 2 and time.perf_counter() - start < 300
