"""Ray fan-out of the Boltzmann estimators: RAISE runs merged from two Ray workers equal the runs
in one process, and a DBN with three hidden layers samples identically on 0 and 2 workers."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

from models import ais
from models.dbn import DBN
from models.rbm import RBM
from models.samplers.dbn_dbm import DBNSampler
from pipeline.config import SampleConfig
from pipeline.fanout import parallel_ais
from pipeline.sampling import load_samples, run_chains


@pytest.fixture(scope="module")
def ray2():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_raise_on_two_ray_workers_equals_one_process_and_dbn_samples_do_not_depend_on_workers(tmp_path, ray2):
    g = torch.Generator().manual_seed(0)
    rbm = RBM(6, 4, init_std=1.0, generator=g)
    data = torch.bernoulli(torch.full((30, 6), 0.4), generator=g)
    run = functools.partial(ais.rbm_raise_run, base=ais.base_rate_bias(data.mean(0)), betas=ais.schedule("linear:20"),
                            data=data.to(torch.uint8))
    here = parallel_ais(rbm, run, 50, workers=0, seed=4, runs_per_block=10)
    on_two = parallel_ais(rbm, run, 50, workers=2, seed=4, runs_per_block=10)
    assert torch.equal(here, on_two)

    dbn = DBN([6, 5, 4, 3], init_std=1.0, generator=g)  # 3 hidden layers: an intermediate top-down layer
    cfg = SampleConfig(chains=20, steps=6, burn_in=2, thin=2, chains_per_block=5, seed=1, diagnostics=False)
    out = {}
    for workers in (0, 2):
        torch.manual_seed(workers)  # a different global RNG state in the driver each time
        run_chains(dbn, DBNSampler(), cfg.model_copy(update={"workers": workers}), tmp_path / str(workers) / "samples",
                   (6,))
        out[workers] = load_samples(tmp_path / str(workers))
    assert np.array_equal(out[0], out[2])
