"""The sampling stage: exact stationary distribution, reproducibility across worker counts, faults."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.ais import ais_log_weights, base_rate_bias, combine_log_weights, schedule
from models.rbm import RBM, all_binary_states
from models.samplers.gibbs import GibbsSampler
from pipeline import atomic
from pipeline.config import ConfigError, SampleConfig, load_config
from pipeline.errors import UserError
from pipeline.fanout import ais_block, parallel_ais, parallel_ais_log_weights
from pipeline.rundir import RunDir
from pipeline.sampling import load_samples, run_chains, sample


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
    events = []
    result = run_chains(_tiny_rbm(), GibbsSampler(), cfg, tmp_path / "samples", (6,), progress=events.append)
    out = tmp_path / "samples"
    assert sorted(p.name for p in out.iterdir()) == ["block-00000.npz", "block-00001.npz", "diagnostics.json",
                                                     "manifest.json"]
    with np.load(out / "block-00001.npz") as f:
        assert f["x"].shape == (2, 3, 6) and f["x"].dtype == np.float32
        assert f["energy"].shape == (2, 40) and f["energy"].dtype == np.float64
    manifest = atomic.read_json(out / "manifest.json")
    assert {k: manifest[k] for k in ("chains", "steps", "burn_in", "thin", "blocks", "shape", "sampler")} == {
        "chains": 6, "steps": 40, "burn_in": 10, "thin": 10, "blocks": 2, "shape": [6], "sampler": "gibbs"}
    assert result.draws_per_chain == 3
    assert 0.9 < result.diagnostics["energy"]["rhat"] < 1.5
    assert result.diagnostics["energy"]["chains"] == 6 and result.diagnostics["energy"]["draws"] == 30
    assert [e["done"] for e in events] == [4 * 40, 6 * 40] and events[-1]["total"] == 6 * 40
    assert load_samples(tmp_path).shape == (18, 6)


def test_load_samples_puts_the_last_draw_of_every_chain_first(tmp_path):
    cfg = SampleConfig(chains=5, steps=9, burn_in=0, thin=3, workers=0, chains_per_block=2)
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), cfg, tmp_path / "samples", (6,))
    x = np.concatenate([np.load(tmp_path / "samples" / f"block-{b:05d}.npz")["x"] for b in range(3)])
    assert x.shape == (5, 3, 6)
    expected = np.concatenate([x[:, 2], x[:, 1], x[:, 0]])
    assert np.array_equal(load_samples(tmp_path), expected)
    assert np.array_equal(load_samples(tmp_path, limit=7), expected[:7])


def test_same_seed_same_sample_different_seed_different(tmp_path):
    cfg = SampleConfig(chains=10, steps=12, burn_in=2, thin=5, workers=0, chains_per_block=3, seed=7)
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), cfg, tmp_path / "a" / "samples", (6,))
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), cfg, tmp_path / "b" / "samples", (6,))
    other = cfg.model_copy(update={"seed": 8})
    run_chains(_tiny_rbm(), GibbsSampler(output="sample"), other, tmp_path / "c" / "samples", (6,))
    a, b, c = (load_samples(tmp_path / k) for k in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


class _FailsAt(GibbsSampler):
    """Fails when starting the chains of block ``first`` (in-process blocks run in order)."""

    def __init__(self, first: int):
        super().__init__()
        self.first, self.calls = first, 0

    def init(self, model, n, generator=None):
        self.calls += 1
        if self.calls > self.first:
            raise RuntimeError("worker lost")
        return super().init(model, n, generator)


def test_a_failed_run_leaves_no_sample_that_looks_complete(tmp_path):
    cfg = SampleConfig(chains=6, steps=8, burn_in=2, thin=2, workers=0, chains_per_block=2)
    run_chains(_tiny_rbm(), GibbsSampler(), cfg, tmp_path / "samples", (6,))
    (tmp_path / "samples" / ".block-00001.npz.x.tmp").write_bytes(b"partial")  # a dead writer's leftover
    with pytest.raises(RuntimeError, match="worker lost"):
        run_chains(_tiny_rbm(), _FailsAt(first=1), cfg, tmp_path / "samples", (6,))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["block-00000.npz"]
    with pytest.raises(UserError, match="no complete sample"):
        load_samples(tmp_path)


@pytest.mark.parametrize("update,match", [
    ({"steps": 10, "burn_in": 10}, r"sample.steps=10 must exceed sample.burn_in=10"),
    ({"chains": 1}, r"sample.chains=1: R-hat needs at least 2 chains"),
    ({"chains_per_block": 0}, r"sample.chains_per_block = 0 is invalid"),
])
def test_bad_settings_are_named(tmp_path, update, match):
    cfg = SampleConfig().model_copy(update=update)  # model_copy skips validation: the stage re-checks
    with pytest.raises(UserError, match=match):
        run_chains(_tiny_rbm(), GibbsSampler(), cfg, tmp_path / "samples", (6,))
    assert not (tmp_path / "samples").exists()
    with pytest.raises(ConfigError, match=match):
        load_config("demo", [f"sample.{k}={v}" for k, v in update.items()])


def test_stage_samples_the_trained_model_of_a_run_dir(tmp_path, monkeypatch):
    import pipeline.trained

    cfg = load_config("demo", ["sample.chains=4", "sample.steps=6", "sample.burn_in=1", "sample.thin=5",
                               "sample.workers=0", "sample.chains_per_block=2"])
    asked = []

    def recipe_sampler(name):
        asked.append(name)
        return _tiny_rbm(), GibbsSampler()

    checked = []
    recipe = SimpleNamespace(sampler=recipe_sampler, check_sampler=checked.append, data=SimpleNamespace(shape=(2, 3)))
    monkeypatch.setattr(pipeline.trained, "load_trained",
                        lambda run_dir: SimpleNamespace(cfg=cfg, recipe=recipe, run_dir=RunDir(run_dir)))
    result = sample(tmp_path)
    assert asked == [None] and checked == [None] and result.path == str(tmp_path / "samples")
    assert load_samples(tmp_path).shape == (4, 2, 3)  # draws in the data's shape


# ------------------------------------------------------------------------------------------ CLI
def test_cli_options_override_the_runs_sample_section(tmp_path, monkeypatch):
    from typer.testing import CliRunner
    import typer

    import pipeline.sampling
    from pipeline.cli_sample import sample_cmd

    (tmp_path / "config.yaml").write_text(load_config("demo", ["sample.chains=8"]).to_yaml())
    seen = []
    monkeypatch.setattr(pipeline.sampling, "sample", lambda run_dir, cfg, progress: seen.append(cfg) or
                        SimpleNamespace(path="p", chains=1, draws_per_chain=1, seconds=0.0, diagnostics={}))
    app = typer.Typer()
    app.command()(sample_cmd)
    args = [str(tmp_path), "--steps", "30", "--burn-in", "5", "--thin", "5", "--seed", "9", "--workers", "0",
            "--set", "sample.chains_per_block=3"]
    assert CliRunner().invoke(app, args).exit_code == 0
    (cfg,) = seen
    assert (cfg.chains, cfg.steps, cfg.burn_in, cfg.thin, cfg.seed, cfg.workers, cfg.chains_per_block) == (
        8, 30, 5, 5, 9, 0, 3)
    bad = CliRunner().invoke(app, [str(tmp_path), "--steps", "4"])
    assert isinstance(bad.exception, ConfigError) and "sample.burn_in" in str(bad.exception)
    missing = CliRunner().invoke(app, [str(tmp_path / "nope")])
    assert isinstance(missing.exception, UserError) and "not a run directory" in str(missing.exception)


# ----------------------------------------------------------------------------------- parallel AIS
def _gaussian_is(model, n, generator):
    """Importance sampling of f(x) = exp(-x²/(2σ²)) (σ = model.weight) from q = N(0, 1)."""
    sigma = float(model.weight.detach())
    x = torch.randn(n, generator=generator, dtype=torch.float64)
    return -x**2 / (2 * sigma**2) + x**2 / 2 + 0.5 * math.log(2 * math.pi)


def test_generic_parallel_ais_estimates_a_known_normaliser():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.3)
    log_w = parallel_ais(model, _gaussian_is, 4000, workers=0, seed=2, runs_per_block=500)
    est = combine_log_weights(log_w, 0.0)
    assert est.log_z_lower < math.log(1.3 * math.sqrt(2 * math.pi)) < est.log_z_upper
    assert est.log_z_upper - est.log_z_lower < 0.1


def test_ais_blocks_merged_from_two_workers_equal_ais_in_one_process():
    rbm, base, betas = _tiny_rbm(), base_rate_bias(torch.full((6,), 0.4)), schedule("linear:50")
    here = parallel_ais_log_weights(rbm, base, betas, 60, workers=0, seed=5, runs_per_block=20)

    def run(model, n, generator):
        return ais_log_weights(model, base, betas, n, generator)

    worker_a = [ais_block(rbm, run, 20, 5, i) for i in (0, 2)]  # worker A took blocks 0 and 2, B block 1
    worker_b = [ais_block(rbm, run, 20, 5, 1)]
    merged = torch.cat([worker_a[0], worker_b[0], worker_a[1]])
    assert torch.equal(here, merged)
    log_z0 = float(torch.nn.functional.softplus(base).sum()) + 4 * math.log(2)
    assert combine_log_weights(merged, log_z0) == combine_log_weights(here, log_z0)
    assert abs(combine_log_weights(here, log_z0).log_z - float(rbm.log_partition().detach())) < 0.1
    other = parallel_ais_log_weights(rbm, base, betas, 60, workers=0, seed=6, runs_per_block=20)
    assert not torch.equal(here, other)


# ------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray2():
    """One local 2-CPU Ray for this module's Ray tests."""
    import ray

    from pipeline.ray_utils import init_local_ray

    ray.shutdown()
    init_local_ray(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_one_and_two_ray_workers_give_the_identical_sample(tmp_path, ray2):
    cfg = SampleConfig(chains=40, steps=30, burn_in=10, thin=5, chains_per_block=10, seed=3)
    out = {}
    for workers in (0, 1, 2):
        run_chains(_tiny_rbm(), GibbsSampler(), cfg.model_copy(update={"workers": workers}),
                   tmp_path / str(workers) / "samples", (6,))
        out[workers] = load_samples(tmp_path / str(workers))
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    d = [atomic.read_json(tmp_path / str(w) / "samples" / "diagnostics.json") for w in (0, 2)]
    assert d[0] == d[1]  # R-hat/ESS over all chains, however they were spread
    with pytest.raises(UserError, match=r"3 worker\(s\).*2 CPU.*room for 2.*sample.workers"):
        run_chains(_tiny_rbm(), GibbsSampler(), cfg.model_copy(update={"workers": 3}), tmp_path / "x", (6,))

    args = (_tiny_rbm(), base_rate_bias(torch.full((6,), 0.4)), schedule("linear:50"), 60)
    here = parallel_ais_log_weights(*args, workers=0, seed=5, runs_per_block=20)
    on_two = parallel_ais_log_weights(*args, workers=2, seed=5, runs_per_block=20)
    assert torch.equal(here, on_two)  # AIS merged over 2 Ray workers = AIS in one process


class _DiesOnce(GibbsSampler):
    """The first worker to reach step 3 of any block dies (os._exit) while writing a block file."""

    def __init__(self, marker: Path, out_dir: Path):
        super().__init__()
        self.marker, self.out_dir, self.steps = marker, out_dir, 0

    def step(self, model, state, k=1, generator=None):
        self.steps += 1
        if self.steps == 3:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                with atomic.atomic_path(self.out_dir / "block-00000.npz") as tmp:
                    tmp.write_bytes(b"half a block")
                    os._exit(1)
        return super().step(model, state, k, generator)


@pytest.mark.ray
def test_a_worker_that_dies_has_its_block_rerun(tmp_path, ray2):
    cfg = SampleConfig(chains=8, steps=10, burn_in=2, thin=4, chains_per_block=2, seed=4)
    out = tmp_path / "ray" / "samples"
    run_chains(_tiny_rbm(), _DiesOnce(tmp_path / "died", out), cfg.model_copy(update={"workers": 2}), out, (6,))
    assert (tmp_path / "died").exists()  # a worker did die
    run_chains(_tiny_rbm(), GibbsSampler(), cfg.model_copy(update={"workers": 0}), tmp_path / "here" / "samples",
               (6,))
    assert sorted(p.name for p in out.iterdir()) == [f"block-{b:05d}.npz" for b in range(4)] + [
        "diagnostics.json", "manifest.json"]  # no partial file left
    assert np.array_equal(load_samples(tmp_path / "ray"), load_samples(tmp_path / "here"))
