"""Opening a run or a checkpoint never executes code planted in it, and altered files are refused."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from pipeline import atomic as artifacts
from pipeline.checkpoints import write_manifest
from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.errors import UnsafeFileError


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=sec", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=200",
        "model.family=rbm", "model.n_hidden=8", "train.epochs=1", "train.batch_size=50",
        "train.eval_examples=50", "resources.num_workers=0", "sample.chains=4", "sample.steps=4",
        "sample.burn_in=1", "sample.thin=1", "sample.workers=0", "evaluate.metrics=[]",
        "evaluate.likelihood=exact", f"output.root={root}", *extra])


class Payload:
    """Unpickling this runs ``touch MARKER`` (what an attacker would plant)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sec")
    data = prepare(_cfg(root).data, root / "data")
    train(_cfg(root), data)
    return root


@pytest.fixture
def run(trained_root, tmp_path) -> Path:
    dest = tmp_path / "root"
    shutil.copytree(trained_root, dest, symlinks=True)
    return dest / "sec"


def cli(*args: str, monkeypatch, capsys) -> tuple[int, str]:
    """``boltzgan ARGS`` in this process: (exit code, stderr)."""
    from pipeline.cli import main

    monkeypatch.setattr(sys, "argv", ["boltzgan", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def _plant(path: Path, marker: Path, fix_digest: bool = True) -> None:
    torch.save({"family": "rbm", "config": {}, "modules": {}, "data_shape": {}, "x": Payload(marker)}, path)
    if fix_digest:  # an attacker who can write model.pt can rewrite its hash too
        artifacts.write_digest(path)


@pytest.mark.parametrize("command", [["sample", "--workers", "0"], ["evaluate"]])
def test_pickle_payload_in_model_pt_is_not_executed(run, tmp_path, command, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    _plant(run / "model.pt", marker)
    code, err = cli(command[0], str(run), *command[1:], monkeypatch=monkeypatch, capsys=capsys)
    assert not marker.exists(), "the planted pickle ran"
    assert code == 2 and "refused" in err and "weights_only" in err and "Traceback" not in err


def test_flipped_bytes_in_model_pt_are_refused(run, monkeypatch, capsys):
    model = run / "model.pt"
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    code, err = cli("evaluate", str(run), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "does not match" in err and "model.pt.sha256" in err


def test_model_pt_without_its_hash_is_refused(run, monkeypatch, capsys):
    (run / "model.pt.sha256").unlink()
    code, err = cli("sample", str(run), "--workers", "0", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "hash file" in err


def test_an_intact_run_still_loads(run, monkeypatch, capsys):
    code, err = cli("sample", str(run), "--workers", "0", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert (run / "samples").is_dir()


def _newest_checkpoint(run: Path) -> Path:
    return max((p for p in run.iterdir() if p.name.startswith("checkpoint_")), key=lambda p: p.stat().st_mtime)


def test_resume_refuses_a_custom_state_pickle(run, tmp_path):
    """Accelerate unpickles ``custom_checkpoint_*.pkl`` without the weights-only restriction: never let it."""
    marker = tmp_path / "pwned"
    ckpt = _newest_checkpoint(run)
    torch.save(Payload(marker), ckpt / "accelerate" / "custom_checkpoint_0.pkl")
    write_manifest(ckpt, 1, 4)  # with a matching manifest
    root = run.parent
    data = prepare(_cfg(root).data, root / "data")
    with pytest.raises(UnsafeFileError, match="custom_checkpoint_0.pkl"):
        train(_cfg(root, "train.epochs=2"), data, resume=True)
    assert not marker.exists()


def test_resume_refuses_a_pickle_in_the_checkpoint_model_pt(run, tmp_path):
    """The recipe state comes from the checkpoint's model.pt, loaded with weights_only=True."""
    marker = tmp_path / "pwned"
    ckpt = _newest_checkpoint(run)
    _plant(ckpt / "model.pt", marker, fix_digest=False)
    write_manifest(ckpt, 1, 4)
    root = run.parent
    data = prepare(_cfg(root).data, root / "data")
    with pytest.raises(Exception, match="weights_only"):
        train(_cfg(root, "train.epochs=2"), data, resume=True)
    assert not marker.exists()
