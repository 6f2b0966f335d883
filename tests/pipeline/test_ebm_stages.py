"""Deep EBM through the late stages: sample.init (validated per family, recorded in the sample and
the evaluation), the exact 2-D yardstick (grid log-likelihood, KL, density heat-map), EBM AIS
against the grid, and MALA/HMC adapted in the sampling stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.rundir import RunDir
from pipeline.config import SampleConfig, load_config
from pipeline.errors import ConfigError, UserError


def test_non_ebm_families_refuse_sample_init():
    with pytest.raises(ConfigError, match=r"sample.init='buffer': model.family=rbm starts its chains one way"):
        load_config("demo", ["sample.init=buffer"])
    with pytest.raises(ConfigError, match="model.buffer_size=0"):
        load_config("ebm-shortrun-fashion", ["sample.init=buffer"])
    with pytest.raises(ConfigError, match="sample.init"):
        load_config("ebm-ring8", ["sample.init=bufer"])
    with pytest.raises(ConfigError, match="not a sampler of the ebm family"):
        load_config("ebm-ring8", ["sample.sampler=gibbs"])
    assert load_config("ebm-ring8", ["sample.init=data"]).sample.init == "data"


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    from pipeline.data import prepare
    from pipeline.engine import train

    root = tmp_path_factory.mktemp("ebm")
    cfg = load_config("ebm-ring8", [f"output.root={root}", "resources.num_workers=0", "data.toy_samples=1024",
                                    "train.epochs=2", "model.langevin_steps=5", "model.buffer_size=512",
                                    "model.grid_points=128", "sample.chains=40", "sample.steps=30",
                                    "sample.burn_in=9", "sample.thin=20", "sample.chains_per_block=20",
                                    "sample.workers=0"])
    train(cfg, prepare(cfg.data, root / "data"))
    return RunDir.of(cfg).path


def test_buffer_is_the_default_start_and_the_evaluation_says_so(ring_run):
    from pipeline.evaluation import evaluate
    from pipeline.report import build_report
    from pipeline.sampling import sample
    from pipeline.trained import load_trained

    trained = load_trained(ring_run)
    assert trained.recipe.buffer.pushed > 0  # the buffer travels in the recipe state
    result = sample(ring_run)
    manifest = RunDir(ring_run).samples.read_manifest()
    assert manifest["init"] == "buffer" and manifest["sampler"] == "langevin"
    ev = evaluate(ring_run)
    rows = {r.metric: r for r in ev.results}
    assert rows["modes_covered"].extra["sample_init"] == "buffer"
    ll, kl = rows["log_likelihood"], rows["kl_data_model"]
    assert ll.extractor.startswith("grid quadrature") and math.isfinite(ll.value)
    assert ll.likelihood.details["outside_box"] == 0 and ll.likelihood.details["quadrature_error"] < 1.0
    assert kl.value >= -1e-6  # a divergence, exact up to quadrature
    # KL = E_data[log p_data] − E_data[log p_model]; the test points' log-likelihood estimates the latter
    assert (ring_run / "eval" / "density.npz").exists()
    report = build_report(ring_run)
    assert "density" in report.figures and "buffer" in report.markdown
    assert result.chains == 40


def test_init_noise_and_data_start_where_asked(ring_run):
    from pipeline.sampling import family_sampler
    from pipeline.trained import load_trained

    trained = load_trained(ring_run)
    g = torch.Generator().manual_seed(0)
    model, s = family_sampler(trained, SampleConfig(init="data", chains=4, steps=2, burn_in=0, thin=1))
    x = s.init(model, 6, g).visible
    from pipeline.data import open_split

    train_x, _ = open_split(trained.data.path, "train")
    d = torch.cdist(x.double(), torch.from_numpy(np.array(train_x)).double()).min(1).values
    assert torch.all(d < 1e-6) and s.init_kind == "data"  # every start is a training point
    model, s = family_sampler(trained, SampleConfig(init="noise", chains=4, steps=2, burn_in=0, thin=1))
    assert s.init_kind == "noise" and s.starts is None
    trained.cfg.model.buffer_size = 0  # as a short-run model: no buffer to start from
    with pytest.raises(UserError, match="no replay buffer"):
        family_sampler(trained, SampleConfig(init="buffer", chains=4, steps=2, burn_in=0, thin=1))


@pytest.mark.parametrize("kind", ["mala", "hmc"])
def test_mh_samplers_adapt_in_the_sampling_stage(ring_run, kind, tmp_path):
    from pipeline.sampling import family_sampler, run_chains
    from pipeline.trained import load_trained

    trained = load_trained(ring_run)
    cfg = SampleConfig(sampler=kind, chains=20, steps=60, burn_in=40, thin=10, chains_per_block=20, workers=0)
    model, sampler = family_sampler(trained, cfg)
    out = run_chains(model, sampler, cfg, tmp_path / "s", (2,))
    acc, steps = out.diagnostics["acceptance_rate"], out.diagnostics["step_size"]
    assert 0.2 < acc["mean"] < 0.99  # adapted: neither frozen nor accepting blindly
    assert steps["min"] == steps["max"] != trained.cfg.model.mcmc_step_size  # one tuned step per block


def test_ebm_ais_agrees_with_the_grid_on_the_trained_toy(ring_run):
    from pipeline.data import open_split
    from pipeline.trained import load_trained

    trained = load_trained(ring_run)
    test_x, _ = open_split(trained.data.path, "test")
    x = torch.from_numpy(np.array(test_x))
    trained.recipe.mcfg.grid_points = 512
    out = trained.recipe.likelihood(x, "ais", ais_runs=50, schedule="linear:200")
    grid, rev = out.details["log_z_grid"], out.details["log_z_reverse"]
    assert out.log_z < grid + 0.1 and rev > grid - 0.1
    assert abs(out.log_z - grid) < 0.5 and abs(rev - grid) < 0.5


def test_evaluation_scores_the_first_draw_as_short_run_and_the_last_as_long_run(tmp_path):
    from models.ebm import ConvEnergy
    from models.samplers.langevin import LangevinSampler
    from pipeline.evaluation import _samples
    from pipeline.sampling import run_chains

    torch.manual_seed(0)
    model = ConvEnergy(1, 4)
    pool = torch.rand(30, 1, 8, 8) * 2 - 1
    sampler = LangevinSampler((1, 8, 8), 1.0, 0.01, clamp=(-1, 1), starts=pool, init_kind="buffer")
    cfg = SampleConfig(chains=6, steps=9, burn_in=2, thin=3, chains_per_block=3, workers=0)  # draws at 2, 5, 8
    out = run_chains(model, sampler, cfg, tmp_path / "samples", (1, 8, 8))
    short, long, origin = _samples(None, out, 5)
    blocks = [np.load(tmp_path / "samples" / f"block-0000{b}.npz")["x"] for b in (0, 1)]
    x = np.concatenate(blocks)  # (chains, draws, 1, 8, 8)
    assert np.array_equal(short, x[:5, 0]) and np.array_equal(long, x[:5, -1])
    assert origin == {"sampler": "langevin", "sample_init": "buffer", "chain_steps": 3, "long_run_steps": 9,
                      "sample_key": ""}  # a sample written outside a run has no stage key
