"""The Boltzmann family through the engine (in-process): training improves what it should, the
greedy phases switch layers, and likelihoods come back in the shared format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.rundir import RunDir, data_dir as default_data_dir
from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.trained import load_trained


def _run(tmp_path: Path, preset: str, *extra: str):
    cfg = load_config(preset, [f"output.root={tmp_path}", "resources.num_workers=0", "train.eval_examples=100",
                               *extra])
    data = prepare(cfg.data, default_data_dir(cfg))
    result = train(cfg, data)
    return cfg, load_trained(result.run_dir), result


def _test_x(trained) -> torch.Tensor:
    from pipeline.data import open_split

    import numpy as np

    x, _ = open_split(trained.data.path, "test")
    return torch.from_numpy(np.array(x))


def test_exact_bm_training_raises_the_test_likelihood(tmp_path):
    cfg, trained, result = _run(tmp_path, "bm-tiny", "train.epochs=8")
    epochs = RunDir(Path(result.run_dir)).epochs()
    assert epochs[-1]["log_likelihood_test"] > epochs[0]["log_likelihood_test"] + 0.5
    out = trained.recipe.likelihood(_test_x(trained)[:100])  # the epoch metrics used the first 100
    assert out.method == "exact" and out.log_likelihood == pytest.approx(epochs[-1]["log_likelihood_test"])


def test_sampled_bm_trains_with_persistent_chains(tmp_path):
    _, trained, _ = _run(tmp_path, "bm-digits", "train.epochs=1", "data.limit=200")
    assert trained.recipe.chains.shape == (100, 64)
    out = trained.recipe.likelihood(_test_x(trained))
    assert out.log_likelihood is None and "n ≤ 20" in out.reason  # 64 units: not enumerable


def test_dbn_trains_layer_by_layer_and_bounds_its_likelihood(tmp_path):
    _, trained, result = _run(tmp_path, "dbn-digits", "model.hidden=[12, 10]", "model.epochs_per_layer=1",
                              "train.epochs=2", "data.limit=300")
    layers = [e["layer"] for e in RunDir(Path(result.run_dir)).epochs()]
    assert layers == [0.0, 1.0]
    out = trained.recipe.likelihood(_test_x(trained)[:50])
    assert out.method == "exact"  # h1 = 12 and the top RBM 12-10 are enumerable
    bound = trained.recipe.dbn.log_p_lower(_test_x(trained)[:50], 0, out.log_z, exact=True)
    assert float(bound.mean()) <= out.log_likelihood + 1e-6
    approx = trained.recipe.likelihood(_test_x(trained)[:50], "ais", ais_runs=50, schedule="linear:1000")
    assert approx.runs == 50 and approx.details["ais_betas"] == 1000  # the top log Z came from AIS
    assert approx.lower <= approx.log_likelihood <= approx.upper
    assert approx.log_likelihood == pytest.approx(float(bound.mean()), abs=0.3)  # same bound, AIS top log Z
    _assert_sampling_stage_runs(result.run_dir)


def _assert_sampling_stage_runs(run_dir: str) -> None:
    """The sampling stage drives the family's own sampler: images of the data's shape with visible
    probabilities p(v = 1 | h) in [0, 1] (the usual way Boltzmann samples are shown)."""
    from pipeline.config import SampleConfig
    from pipeline.sampling import load_samples, sample

    out = sample(run_dir, SampleConfig(chains=6, steps=12, burn_in=4, thin=4, workers=0, chains_per_block=3))
    x = load_samples(run_dir)
    assert x.shape == (6 * 2, 1, 8, 8) and np.all((x >= 0) & (x <= 1)) and x.std() > 0
    assert out.path == str(Path(run_dir) / "samples")


def test_dbm_pretrains_then_trains_jointly_and_reports_ais(tmp_path):
    _, trained, result = _run(tmp_path, "dbm-digits", "model.hidden=[12, 8]", "model.pretrain_epochs=1",
                              "train.epochs=3", "data.limit=300", "model.persistent_chains=20")
    phases = [e["pretraining_layer"] for e in RunDir(Path(result.run_dir)).epochs()]
    assert phases == [0.0, 1.0, -1.0]
    x = _test_x(trained)[:40]
    exact = trained.recipe.likelihood(x)  # odd layer h1 = 12 units: exact
    approx = trained.recipe.likelihood(x, method="ais", ais_runs=50, schedule="linear:1000")
    assert exact.method == "exact" and approx.method.startswith("ais")
    assert abs(approx.log_z - exact.log_z) < 0.2
    assert approx.log_likelihood <= exact.log_likelihood + 0.2  # bound − log Ẑ stays below the truth
    _assert_sampling_stage_runs(result.run_dir)


def test_gaussian_rbm_trains_on_real_valued_digits(tmp_path):
    _, trained, result = _run(tmp_path, "grbm-digits", "train.epochs=2", "data.limit=300")
    out = trained.recipe.likelihood(_test_x(trained))
    assert out.method == "exact" and out.log_likelihood is not None
    # exact: −F(v) − log Z with log Z by enumeration of the 16 hidden units
    rbm = trained.recipe.modules["model"].double()
    x = _test_x(trained).double()
    expected = float((-rbm.free_energy(x)).mean() - rbm.log_partition())
    assert out.log_likelihood == pytest.approx(expected, abs=1e-6)
