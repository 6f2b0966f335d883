"""Review fixes of the Boltzmann recipes, each with the test that failed before it: persistent chains
survive a short batch, the DBN's top-down pass draws from the block's stream, Bernoulli likelihoods
refuse non-binary data, ``exact`` reports unavailable instead of silently falling back, samplers hand
the metrics binary draws; and every AIS likelihood carries both sides of the sandwich."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.dbn import DBN
from models.samplers.dbn_dbm import DBNSampler
from pipeline.config import load_config
from pipeline.recipes.base import Batch, DataShape, recipe_class


pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(model: dict, dim: int = 6, binary: bool = True):
    cfg = load_config(base={"model": model})
    shape = DataShape(shape=(dim,), value_range=(0.0, 1.0), binary=binary)
    return recipe_class(model["family"])(cfg, shape)


def _batch(n: int, dim: int = 6, seed: int = 0) -> Batch:
    x = torch.bernoulli(torch.full((n, dim), 0.5), generator=torch.Generator().manual_seed(seed))
    return Batch(x=x, y=None, weight=1.0, step=0, epoch=0)


def _copy(gen: torch.Generator) -> torch.Generator:
    g = torch.Generator()
    g.set_state(gen.get_state())
    return g


def test_rbm_persistent_chains_survive_a_short_last_batch():
    r = _recipe({"family": "rbm", "n_hidden": 4, "persistent": True})
    r.negative(_batch(10))
    before, gen = r.chains.clone(), _copy(r.gen)
    out = r.negative(_batch(7, seed=1))  # the epoch's short last batch
    assert out.shape == (10, 6)  # the same chains, advanced by one sweep, not 7 fresh ones
    assert torch.equal(out, r.rbm.gibbs_step(before, gen)[0])


def test_dbm_persistent_chains_survive_a_short_last_batch():
    r = _recipe({"family": "dbm", "hidden": [4, 3]})
    r.positive(_batch(10))
    r.negative(_batch(10))
    before, gen = [c.clone() for c in r.chains], _copy(r.gen)
    r.positive(_batch(7, seed=1))
    out = r.negative(_batch(7, seed=1))
    expected = before
    for _ in range(r.mcfg.gibbs_steps):
        expected = r.dbm.gibbs_step(expected, gen)
    assert out[0].shape == (10, 6) and all(torch.equal(a, b) for a, b in zip(out, expected))


def test_dbn_sampling_with_three_hidden_layers_ignores_the_global_rng():
    g = torch.Generator().manual_seed(0)
    m = DBN([6, 5, 4, 3], init_std=1.0, generator=g)
    sampler = DBNSampler()
    state = sampler.step(m, sampler.init(m, 50, g), 3, g)
    torch.manual_seed(1)
    a = sampler.to_data(m, state)
    torch.manual_seed(2)
    b = sampler.to_data(m, state)
    assert torch.equal(a, b)  # the intermediate layers come from the block's stream, not the global one
    assert set(a.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("model", [{"family": "rbm", "n_hidden": 4}, {"family": "dbm", "hidden": [4, 3]},
                                   {"family": "dbn", "hidden": [4, 3]}, {"family": "bm"}])
def test_bernoulli_likelihoods_refuse_non_binary_data(model):
    r = _recipe(model, binary=False)
    out = r.likelihood(torch.rand(5, 6))
    assert out.log_likelihood is None and "data.binarize" in out.reason


def test_exact_on_models_too_large_to_enumerate_is_unavailable_with_the_reason():
    rbm = _recipe({"family": "rbm", "n_hidden": 30}, dim=30)
    out = rbm.likelihood(torch.zeros(4, 30), "exact")
    assert out.log_likelihood is None and "30" in out.reason and "auto" in out.reason
    dbm = _recipe({"family": "dbm", "hidden": [25, 3]}, dim=6)
    out = dbm.likelihood(torch.zeros(4, 6), "exact")  # odd layers: 25 units; before: AIS in silence
    assert out.log_likelihood is None and "25" in out.reason
    auto = dbm.likelihood(torch.zeros(4, 6), "auto", ais_runs=4, schedule="linear:3")
    assert auto.method.startswith("ais") and (auto.details["forward_runs"], auto.details["reverse_runs"]) == (4, 4)


@pytest.mark.parametrize("model", [{"family": "rbm", "n_hidden": 4}, {"family": "dbm", "hidden": [4, 3]},
                                   {"family": "dbn", "hidden": [4, 3]}])
def test_family_samplers_hand_binary_draws_to_the_metrics(model):
    r = _recipe(model)
    net, sampler = r.sampler()
    g = torch.Generator().manual_seed(0)
    x = sampler.to_data(net, sampler.step(net, sampler.init(net, 20, g), 2, g))
    assert set(x.unique().tolist()) <= {0.0, 1.0}  # scored like the binary test images


def test_rbm_ais_likelihood_reports_both_sides_their_gap_and_runs():
    r = _recipe({"family": "rbm", "n_hidden": 30, "init_std": 0.5}, dim=16)
    x = torch.bernoulli(torch.full((20, 16), 0.3), generator=torch.Generator().manual_seed(0))
    out = r.likelihood(x, "ais", ais_runs=12, schedule="linear:50")
    assert (out.details["forward_runs"], out.details["reverse_runs"]) == (12, 12)
    d = out.details
    assert d["forward_log_likelihood"] == out.log_likelihood
    assert d["gap"] == pytest.approx(d["forward_log_likelihood"] - d["reverse_log_likelihood"])
    exact = float((-r.rbm.double().free_energy(x.double())).mean() - r.rbm.double().log_partition())
    assert abs(d["reverse_log_likelihood"] - exact) < 0.5 and abs(d["forward_log_likelihood"] - exact) < 0.5
    assert "RAISE" in out.note()  # the report's line shows both sides


def test_pt_negative_phase_trains_an_rbm_and_the_sampling_stage_reports_swap_rates(tmp_path):
    from pipeline.rundir import RunDir
    from pipeline.config import SampleConfig
    from pipeline.sampling import sample
    from tests.pipeline.test_recipes_boltzmann import _run

    _, trained, result = _run(tmp_path, "rbm-digits", "model.negative=pt", "model.pt_temperatures=4",
                              "model.n_hidden=16", "train.epochs=2", "data.limit=210", "train.batch_size=100")
    r = trained.recipe
    assert r.pt_state.extras["replicas_0"].shape == (4, 100, 64)  # sized once, kept through the short batch
    epochs = RunDir(Path(result.run_dir)).epochs()
    assert 0 <= epochs[-1]["pt_swap_rate_min"] <= epochs[-1]["pt_swap_rate_mean"] <= 1
    out = sample(result.run_dir, SampleConfig(chains=6, steps=8, burn_in=2, thin=3, workers=0, chains_per_block=3,
                                              sampler="pt"))
    rates = out.diagnostics["swap_acceptance_rate"]
    assert len(rates) == 3 and all(0 <= p <= 1 for p in rates)
