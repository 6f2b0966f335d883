"""The sampling stage: exact stationary distribution, reproducibility across worker counts."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from models.rbm import RBM, all_binary_states
from models.samplers.gibbs import GibbsSampler
from pipeline.config import SampleConfig
from pipeline.errors import UserError
from pipeline.sampling import load_samples, run_chains


def _tiny_rbm() -> RBM:
    rbm = RBM(6, 4, init_std=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rbm.b.copy_(torch.linspace(-1, 1, 6))
        rbm.c.copy_(torch.linspace(0.5, -0.5, 4))
    return rbm


def test_many_short_chains_match_the_exact_distribution(tmp_path):
    rbm = _tiny_rbm()
    cfg = SampleConfig(chains=4000, steps=25, burn_in=24, thin=1, workers=0, chains_per_block=500, seed=1)
    run_chains(rbm, GibbsSampler(output="sample"), cfg, tmp_path / "samples", (6,))
    x = load_samples(tmp_path)
    assert x.shape == (4000, 6)
    codes = (x.astype(np.int64) * (1 << np.arange(6))).sum(1)
    empirical = np.bincount(codes, minlength=64) / len(codes)
    states = all_binary_states(6)
    with torch.no_grad():
        exact = torch.softmax(-rbm.free_energy(states.float()).double(), 0).numpy()
    tv = 0.5 * np.abs(empirical - exact).sum()
    # E[TV] <= 1/2 Σ_k sqrt(p_k / N) <= 1/2 sqrt(K / N) (Cauchy-Schwarz); the chains' bias after
    # 24 sweeps of a 6x4 RBM is far below that.
    assert tv < 0.5 * np.sqrt(64 / 4000)


def test_blocks_diagnostics_and_manifest(tmp_path):
    cfg = SampleConfig(chains=6, steps=40, burn_in=10, thin=10, workers=0, chains_per_block=4)
    result = run_chains(_tiny_rbm(), GibbsSampler(), cfg, tmp_path / "samples", (6,))
    assert sorted(p.name for p in (tmp_path / "samples").glob("block-*.npz")) == ["block-00000.npz",
                                                                                  "block-00001.npz"]
    assert result.draws_per_chain == 3
    assert 0.9 < result.diagnostics["energy"]["rhat"] < 1.5
    assert load_samples(tmp_path).shape == (18, 6)
    assert load_samples(tmp_path, limit=6).shape == (6, 6)


def test_same_seed_same_sample_different_seed_different(tmp_path):
    cfg = SampleConfig(chains=10, steps=12, burn_in=2, thin=5, workers=0, chains_per_block=3, seed=7)
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), cfg, tmp_path / "a" / "samples", (6,))
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), cfg, tmp_path / "b" / "samples", (6,))
    other = cfg.model_copy(update={"seed": 8})
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), other, tmp_path / "c" / "samples", (6,))
    a, b, c = (load_samples(tmp_path / k) for k in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("overrides,match", [
    (["sample.steps=10", "sample.burn_in=10"], "sample.burn_in=10"),
    (["sample.chains=1"], "at least 2 chains"),
])
def test_bad_settings_are_named(overrides, match):
    from pipeline.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config("demo", overrides)


@pytest.mark.ray
def test_one_and_two_ray_workers_give_the_identical_sample(tmp_path, fresh_ray):
    cfg = SampleConfig(chains=40, steps=30, burn_in=10, thin=5, chains_per_block=10, seed=3)
    out = {}
    for workers in (0, 1, 2):
        run_chains(_tiny_rbm(), GibbsSampler(), cfg.model_copy(update={"workers": workers}),
                   tmp_path / str(workers) / "samples", (6,))
        out[workers] = load_samples(tmp_path / str(workers))
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    with pytest.raises(UserError, match="resources"):
        run_chains(_tiny_rbm(), GibbsSampler(), cfg.model_copy(update={"workers": 3}), tmp_path / "x", (6,))
    from models.ais import base_rate_bias, schedule
    from pipeline.sampling import parallel_ais_log_weights

    args = (_tiny_rbm(), base_rate_bias(torch.full((6,), 0.4)), schedule("linear:50"), 60)
    here = parallel_ais_log_weights(*args, workers=0, seed=5, runs_per_block=20)
    on_two = parallel_ais_log_weights(*args, workers=2, seed=5, runs_per_block=20)
    assert torch.equal(here, on_two)  # AIS merged over 2 Ray workers = AIS in one process


def test_parallel_ais_blocks_do_not_depend_on_the_worker_count():
    from models.ais import base_rate_bias, schedule
    from pipeline.sampling import parallel_ais_log_weights

    rbm = _tiny_rbm()
    base = base_rate_bias(torch.full((6,), 0.4))
    betas = schedule("linear:50")
    whole = parallel_ais_log_weights(rbm, base, betas, 60, workers=0, seed=5, runs_per_block=60)
    blocks = parallel_ais_log_weights(rbm, base, betas, 60, workers=0, seed=5, runs_per_block=20)
    again = parallel_ais_log_weights(rbm, base, betas, 60, workers=1, seed=5, runs_per_block=20)
    assert blocks.shape == (60,) and torch.equal(blocks, again)
    assert not torch.equal(whole, blocks)  # a different block layout is a different (valid) estimate
