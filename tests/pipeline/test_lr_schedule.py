"""train.lr_schedule: the rate as a pure function of the step (pipeline/lr_schedule.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.errors import ConfigError
from pipeline.lr_schedule import apply_lr, lr_factor, rescale_base_lr


def test_factors_at_the_ends_and_middle():
    assert lr_factor("constant", 7, 10) == 1.0
    assert lr_factor("linear", 0, 10) == 1.0
    assert lr_factor("linear", 9, 10) == pytest.approx(0.1)  # the last step still moves
    assert lr_factor("linear", 5, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 0, 10) == 1.0
    assert lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 9, 10) == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi)))
    with pytest.raises(ValueError, match="train.lr_schedule='step'"):
        lr_factor("step", 1, 10)


def _two_group_optimizer() -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])


def test_each_group_keeps_its_own_base_rate_and_a_rescale_survives_the_schedule():
    opt = _two_group_optimizer()
    apply_lr([opt], "linear", 5, 10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    apply_lr([opt], "linear", 0, 10)  # from the base rate, not compounded on the last one
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01])
    rescale_base_lr(opt.param_groups[0], 0.02)  # e.g. the EBM's lower rate after a restart
    apply_lr([opt], "linear", 5, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_constant_leaves_the_optimiser_untouched():
    opt = _two_group_optimizer()
    apply_lr([opt], "constant", 5, 10)
    assert "base_lr" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.1


def test_an_unknown_schedule_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="lr_schedule"):
        load_config("demo", ["train.lr_schedule=step", f"output.root={tmp_path}"])


def _cfg(root: Path, *extra: str):
    return load_config(None, [
        "name=sched", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=200",
        "model.family=rbm", "model.n_hidden=8", "train.epochs=2", "train.batch_size=50", "train.lr=0.05",
        "train.eval_examples=50", "resources.num_workers=0", f"output.root={root}", *extra])


def _saved_groups(run_dir: Path) -> list[dict]:
    last = sorted(run_dir.glob("checkpoint_*"))[-1]
    return torch.load(last / "accelerate" / "optimizer.bin", weights_only=True)["param_groups"]


def test_the_engine_applies_it_per_step_and_checkpoints_the_base_rate(tmp_path):
    data = prepare(_cfg(tmp_path).data, tmp_path / "digits")
    run = Path(train(_cfg(tmp_path / "lin", "train.lr_schedule=linear"), data).run_dir)
    total = 2 * 4  # 200 examples / 50, two epochs
    groups = _saved_groups(run)
    assert groups[0]["base_lr"] == pytest.approx(0.05)
    assert groups[0]["lr"] == pytest.approx(0.05 / total)  # the rate of the last step taken
    flat = Path(train(_cfg(tmp_path / "flat"), data).run_dir)
    assert _saved_groups(flat)[0]["lr"] == pytest.approx(0.05)
