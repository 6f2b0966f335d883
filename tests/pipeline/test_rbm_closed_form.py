"""The RBM's closed-form CD step equals the generic autograd step of the energy surrogate
mean F(v+) − mean F(v−): same negatives (same random stream), same parameters after the optimiser
step, same metrics; and the variants it does not cover take the autograd path."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import load_config
from pipeline.recipes.base import Batch, DataShape, recipe_class
from pipeline.recipes.energy import EnergyRecipe

SHAPE = DataShape(shape=(12,), value_range=(0.0, 1.0), binary=True)


def _recipe(*overrides: str):
    from accelerate import Accelerator

    torch.manual_seed(0)
    cfg = load_config(None, ["model.family=rbm", "model.n_hidden=7", "model.init_std=0.5", "train.optimizer=sgd",
                             "train.lr=0.3", "train.momentum=0.5", "train.weight_decay=0.01", *overrides])
    r = recipe_class("rbm")(cfg, SHAPE)
    r.init_from_data(torch.bernoulli(torch.full((40, 12), 0.3), generator=torch.Generator().manual_seed(3)))
    r.setup(Accelerator(cpu=True))
    return r


def _batches(n: int = 9, steps: int = 4):
    g = torch.Generator().manual_seed(1)
    return [Batch(x=torch.bernoulli(torch.full((n, 12), 0.4), generator=g), y=None, weight=0.8, step=i, epoch=0)
            for i in range(steps)]


@pytest.mark.parametrize("model", [[], ["model.cd_k=3"], ["model.persistent=true", "model.persistent_chains=5"],
                                   ["model.negative=mean-field"], ["model.negative=pt", "model.pt_temperatures=3"]])
def test_closed_form_step_matches_autograd(model, monkeypatch):
    closed, graph = _recipe(*model), _recipe(*model)
    generic = EnergyRecipe.train_step
    for batch in _batches():
        got = closed.train_step(batch)
        want = generic(graph, batch)
        for k in ("loss", "energy_pos", "energy_neg"):
            assert float(got[k]) == pytest.approx(float(want[k]), rel=1e-5, abs=1e-5), k
    for name, p in closed.rbm.named_parameters():
        assert torch.allclose(p, dict(graph.rbm.named_parameters())[name], atol=1e-5), name


def test_closed_form_gradient_is_the_free_energy_gradient():
    """The gradient it applies, against autograd of F on the same positive and negative states."""
    r = _recipe()
    rbm = r.rbm
    v0 = torch.bernoulli(torch.full((6, 12), 0.5), generator=torch.Generator().manual_seed(5))
    v1 = torch.bernoulli(torch.full((4, 12), 0.5), generator=torch.Generator().manual_seed(6))
    loss = rbm.free_energy(v0).mean() - rbm.free_energy(v1).mean()
    want = torch.autograd.grad(loss, [rbm.W, rbm.b, rbm.c])
    r.apply_gradients = lambda name, batch: None  # leave the written gradients unstepped
    r._closed_form_negative = lambda batch, ph0: v1
    r.train_step(Batch(x=v0, y=None, weight=1.0, step=0, epoch=0))
    for p, w in zip([rbm.W, rbm.b, rbm.c], want):
        assert torch.allclose(p.grad, w, atol=1e-6)


def test_diagnostics_only_on_logging_steps():
    """The free energies cost two softplus passes the update does not need: a step that is not
    read back returns no metrics, and its parameters move exactly as a logging step's would."""
    quiet, loud = _recipe(), _recipe()
    for batch in _batches():
        assert quiet.train_step(Batch(batch.x, None, batch.weight, batch.step, 0, log=False)) == {}
        assert set(loud.train_step(batch)) == {"loss", "energy_pos", "energy_neg"}
    for name, p in quiet.rbm.named_parameters():
        assert torch.equal(p, dict(loud.rbm.named_parameters())[name]), name


@pytest.mark.parametrize("model", [["model.centering=true"], ["model.visible=gaussian"],
                                   ["train.grad_accum_steps=2"]])
def test_other_variants_take_the_autograd_path(model, monkeypatch):
    r = _recipe(*model)
    called = []
    monkeypatch.setattr(type(r), "apply_gradients", lambda *a: called.append(1))
    r.train_step(_batches(steps=1)[0])
    assert not called
