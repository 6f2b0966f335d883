"""The engine's hot loop waits for the device only at its read-backs (every train.log_every steps).

Every way project code can pull a tensor's value to the host (``item``, ``tolist``, ``numpy``,
``float``/``int``/``bool``/index conversions) is counted while the engine's epoch loop runs 200
steps of each family in-process; the count must stay at 200/log_every plus epoch ends. On a GPU
each of these is a stall of the launch queue; on this CPU they are what the count stands for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tuple(str(ROOT / d) for d in ("pipeline", "models", "tests"))  # not .venv: torch's own CPU-side .item()s
CONVERSIONS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")
STEPS, LOG_EVERY = 200, 50

FAMILIES = {
    "rbm": ("rbm-digits", ["model.n_hidden=16"]),
    "pcd": ("rbm-digits", ["model.n_hidden=16", "model.persistent=true"]),
    "bm": ("bm-tiny", []),
    "dbn": ("dbn-digits", ["model.hidden=[16,8]", "model.epochs_per_layer=1"]),
    "dbm": ("dbm-digits", ["model.hidden=[16,8]", "model.pretrain_epochs=1", "model.persistent_chains=6"]),
    "gan": ("gan-ring8", ["model.hidden=16", "data.toy_samples=2000"]),
    "wgan-gp": ("gan-ring8", ["model.hidden=16", "data.toy_samples=2000", "model.loss=wgan-gp", "model.n_critic=5"]),
    "ebm": ("ebm-ring8", ["model.hidden=16", "data.toy_samples=2000", "model.langevin_steps=2",
                          "model.buffer_size=100"]),
}


class SyncCounter:
    """Counts value conversions called directly from project code (recipes, models, the engine, a
    test's patched recipe) inside the engine's epoch loop."""

    def __init__(self) -> None:
        self.count = 0
        self.where: dict[str, int] = {}

    def wrap(self, original):
        counter = self

        def counted(tensor, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(PROJECT) and _inside_epoch_loop(caller):
                counter.count += 1
                key = f"{caller.f_code.co_filename}:{caller.f_lineno}"
                counter.where[key] = counter.where.get(key, 0) + 1
            return original(tensor, *args, **kwargs)

        return counted


def _inside_epoch_loop(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "_run_epoch":
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def count_syncs(monkeypatch):
    counter = SyncCounter()
    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, counter.wrap(getattr(torch.Tensor, name)))
    return counter


@pytest.mark.parametrize("family", list(FAMILIES))
def test_200_steps_sync_once_per_log_interval(family, tmp_path, count_syncs):
    preset, extra = FAMILIES[family]
    cfg = load_config(preset, [*extra, "train.batch_size=6", "train.epochs=3", f"train.max_steps={STEPS}",
                               f"train.log_every={LOG_EVERY}", "train.eval_examples=20", "resources.num_workers=0",
                               f"output.root={tmp_path}"])
    data = prepare(cfg.data, tmp_path / "data")
    result = train(cfg, data)
    assert result.steps == STEPS
    epochs = result.epochs
    # one read-back per log interval plus one per epoch end (the last step of the run is both)
    assert count_syncs.count <= STEPS // LOG_EVERY + epochs, count_syncs.where
    assert count_syncs.count >= STEPS // LOG_EVERY  # the counter sees the read-backs themselves


def test_the_counter_catches_a_per_step_item(tmp_path, count_syncs, monkeypatch):
    """The oracle's own check: a recipe that .item()-s its loss every step is caught."""
    from pipeline.recipes.rbm import RBMRecipe

    real = RBMRecipe.train_step

    def eager(self, batch):
        out = real(self, batch)
        return {k: v.item() for k, v in out.items()} | {"w_sum": self.rbm.W.sum().item()}

    monkeypatch.setattr(RBMRecipe, "train_step", eager)
    cfg = load_config("rbm-digits", ["model.n_hidden=16", "train.batch_size=6", f"train.max_steps={STEPS}",
                                     "train.eval_examples=20", "resources.num_workers=0", f"output.root={tmp_path}"])
    train(cfg, prepare(cfg.data, tmp_path / "data"))
    assert count_syncs.count >= STEPS  # w_sum on every step
