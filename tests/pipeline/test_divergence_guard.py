"""The divergence guard: the energy families' parameter bound, and the engine's restore-and-lower-
the-rate path after checkpoints exist (local mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import atomic as artifacts
from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.errors import TrainingDiverged
from pipeline.recipes.ebm import EBMRecipe


def _rbm(root: Path, *extra: str, model: tuple[str, ...] = ("model.family=rbm", "model.n_hidden=16")):
    return load_config(None, [
        "name=guard", "data.source=digits", "data.binarize=threshold", "data.scale=unit", "data.limit=200",
        *model, "train.epochs=3", "train.batch_size=50",
        "train.eval_examples=50", "resources.num_workers=0", f"output.root={root}", *extra])


@pytest.mark.parametrize("model", [("model.family=rbm", "model.n_hidden=16"),
                                   ("model.family=dbm", "model.hidden=[16, 8]"),
                                   ("model.family=dbn", "model.hidden=[16, 8]")])
def test_an_absurd_learning_rate_trips_the_energy_guard(tmp_path, model):
    cfg = _rbm(tmp_path, "train.lr=1e6", model=model)
    data = prepare(cfg.data, tmp_path / "data")
    with pytest.raises(TrainingDiverged, match=r"\|parameter_magnitude\| reached .* > 10000 \(max \|θ\| .*lower train.lr"):
        train(cfg, data)


def test_a_sane_rate_does_not_trip_it(tmp_path):
    cfg = _rbm(tmp_path, "train.lr=0.1", "train.epochs=2")
    assert train(cfg, prepare(cfg.data, tmp_path / "data")).epochs == 2


def test_divergence_in_epoch_three_restores_the_epoch_two_checkpoint_and_lowers_the_rate(tmp_path, monkeypatch):
    cfg = load_config("ebm-ring8", [f"output.root={tmp_path}", "resources.num_workers=0", "data.toy_samples=512",
                                    "train.epochs=4", "model.langevin_steps=2", "model.buffer_size=256",
                                    "model.guard_lr_factor=0.5"])
    data = prepare(cfg.data, tmp_path / "data")
    base_lr = cfg.train.lr
    seen: dict[str, list] = {"restored": [], "lr_after": []}

    def guard(self, batch):  # unstable at the configured rate from the third epoch on
        lr = self.optimizers["model"].param_groups[0]["lr"]
        return {"parameter_magnitude": torch.tensor(1e9 if batch.epoch >= 2 and lr == base_lr else 1.0)}

    real_hook = EBMRecipe.on_divergence_restart

    def hook(self, attempt):
        real_hook(self, attempt)
        seen["lr_after"].append(self.optimizers["model"].param_groups[0]["lr"])
        seen["restored"].append({k: v.detach().clone() for k, v in self.modules["model"].state_dict().items()})

    monkeypatch.setattr(EBMRecipe, "guard_metrics", guard)
    monkeypatch.setattr(EBMRecipe, "on_divergence_restart", hook)
    events = []
    result = train(cfg, data, progress=events.append)

    restarts = [e["message"] for e in events if e["kind"] == "restart"]
    assert len(restarts) == 1 and "epoch 3" in restarts[0] and "attempt 1" in restarts[0]
    assert seen["lr_after"] == [pytest.approx(base_lr * 0.5)]
    # the parameters the run continued from are exactly those of the epoch-2 checkpoint it named
    ckpt = Path(restarts[0].split("restored ", 1)[1].split(" (attempt")[0])
    saved = artifacts.load_torch(ckpt / "model.pt", "test")
    assert saved["epoch"] == 2
    for k, v in saved["modules"]["model"].items():
        assert torch.equal(v, seen["restored"][0][k]), k
    assert result.epochs == 4 and result.steps == 4 * 2  # 409 train points / 256
    epochs = [r["epoch"] for r in artifacts.read_jsonl(Path(result.run_dir) / "metrics.jsonl")]
    assert epochs == [1, 2, 3, 4]  # the diverged epoch 3 was run again, logged once
