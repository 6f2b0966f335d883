"""Deep EBM recipe: learns a 2-D mixture; the divergence guard raises, recovers and gives up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from models.toys.mixtures import mode_centres, sample_mixture
from pipeline.config import load_config
from pipeline.errors import TrainingDiverged
from pipeline.recipes.base import Batch, DataShape
from pipeline.recipes.ebm import EBMRecipe


def _recipe(*overrides: str) -> EBMRecipe:
    cfg = load_config("ebm-ring8", list(overrides))
    r = EBMRecipe(cfg, DataShape(shape=(2,), value_range=(-1.5, 1.5), binary=False))
    r.optimizers = r.build_optimizers()
    r.after_setup()
    return r


def test_trained_energy_is_low_on_the_modes():
    torch.manual_seed(0)
    r = _recipe("model.langevin_steps=10", "model.buffer_size=2000", "train.lr=0.003")
    g = torch.Generator().manual_seed(0)
    for step in range(150):
        x, _ = sample_mixture("ring8", 64, g)
        r.train_step(Batch(x, None, 1.0, step, 0))
    model = r.modules["model"]
    angles = torch.arange(8) * (2 * math.pi / 8) + math.pi / 8
    ring = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    with torch.no_grad():
        modes = model(mode_centres("ring8")).max()  # the worst mode
        off = torch.cat([model(torch.zeros(1, 2)), model(0.4 * ring), model(1.6 * ring)])
    assert modes < off.min()  # every mode below every off-ring probe (centre, inside, outside)


def test_guard_is_declared_the_step_still_happens_and_restart_lowers_lr_and_reseeds():
    r = _recipe("model.max_energy_magnitude=1e-9", "model.langevin_steps=2")
    before = [p.detach().clone() for p in r.modules["model"].parameters()]
    metrics = r.train_step(Batch(torch.randn(16, 2), None, 1.0, 7, 0))
    bound, setting = r.metric_limits()["energy_magnitude"]
    assert (bound, setting) == (1e-9, "model.max_energy_magnitude")
    assert float(metrics["energy_magnitude"]) == max(abs(float(metrics["energy_pos"])),
                                                     abs(float(metrics["energy_neg"]))) > bound
    after = list(r.modules["model"].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # the step happened (DDP-safe)
    state = r.gen.get_state().clone()
    r.on_divergence_restart(2)
    assert r.optimizers["model"].param_groups[0]["lr"] == pytest.approx(0.001 * 0.25)
    assert not torch.equal(state, r.gen.get_state())


def test_engine_stops_on_the_energy_guard(tmp_path):
    """The declared guard trips at the engine's read-back; with no checkpoint yet the run stops."""
    from pipeline.data import prepare
    from pipeline.engine import train

    cfg = load_config("ebm-ring8", [f"output.root={tmp_path}", "resources.num_workers=0", "data.toy_samples=512",
                                    "train.epochs=2", "model.langevin_steps=2", "model.buffer_size=256",
                                    "model.max_energy_magnitude=1e-9"])
    with pytest.raises(TrainingDiverged, match=r"\|energy_magnitude\| reached .* > 1e-09 \(model.max_energy_magnitude\)"):
        train(cfg, prepare(cfg.data, tmp_path / "data"))


def test_engine_restores_and_recovers_then_gives_up(tmp_path, monkeypatch):
    from pipeline.data import prepare
    from pipeline.engine import train

    cfg = load_config("ebm-ring8", [f"output.root={tmp_path}", "resources.num_workers=0", "data.toy_samples=512",
                                    "train.epochs=3", "model.langevin_steps=2", "model.buffer_size=256"])
    data = prepare(cfg.data, tmp_path / "data")
    real_step, blown = EBMRecipe.train_step, []

    def once(self, batch):  # an engineered blow-up, once, in the second epoch
        out = real_step(self, batch)
        if batch.epoch == 1 and not blown:
            blown.append(batch.step)
            raise TrainingDiverged(f"engineered blow-up at step {batch.step}")
        return out

    monkeypatch.setattr(EBMRecipe, "train_step", once)
    events = []
    result = train(cfg, data, progress=events.append)
    restarts = [e for e in events if e["kind"] == "restart"]
    assert len(restarts) == 1 and "attempt 1" in restarts[0]["message"]
    assert result.epochs == 3 and result.steps == 3 * 2  # 409 train points / 256

    def always(self, batch):  # diverges on every step after the first checkpoint
        out = real_step(self, batch)
        if batch.epoch >= 1:
            raise TrainingDiverged(f"engineered blow-up at step {batch.step}")
        return out

    monkeypatch.setattr(EBMRecipe, "train_step", always)
    stubborn = cfg.model_copy(update={"output": cfg.output.model_copy(update={"root": str(tmp_path / "b")}),
                                      "model": cfg.model.model_copy(update={"guard_max_restarts": 2})})
    with pytest.raises(TrainingDiverged, match="gave up after 2 restart"):
        train(stubborn, data)
