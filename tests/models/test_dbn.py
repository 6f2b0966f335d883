"""DBN oracles: the variational bound never exceeds the exact log-likelihood; sampling shapes."""

import torch

from models.dbn import DBN
from models.rbm import all_binary_states
from models.samplers.dbn_dbm import DBNSampler


def _dbn(seed=0) -> DBN:
    g = torch.Generator().manual_seed(seed)
    m = DBN([6, 5, 4], init_std=1.0, generator=g)
    with torch.no_grad():
        for r in m.rbms:
            r.b.copy_(torch.randn(r.b.shape, generator=g) * 0.5)
            r.c.copy_(torch.randn(r.c.shape, generator=g) * 0.5)
    return m


def test_lower_bound_never_exceeds_the_exact_log_likelihood():
    m = _dbn()
    log_z = float(m.top.double().log_partition())
    m.float()
    v = all_binary_states(6)
    exact = m.exact_log_p(v, log_z)
    assert abs(float(torch.logsumexp(exact, 0))) < 1e-9  # the exact p(v) sums to one
    bound = m.log_p_lower(v, 0, log_z, exact=True)
    assert torch.all(bound <= exact + 1e-9)
    assert float((exact - bound).max()) > 1e-3  # a real gap (Q is not the true posterior)
    mc = m.log_p_lower(v, 0, log_z, samples=2000, generator=torch.Generator().manual_seed(0))
    assert float((mc - bound).abs().mean()) < 0.05  # Monte Carlo estimate of the same bound (2,000 draws)


def test_sampler_runs_top_gibbs_then_the_top_down_pass():
    m = _dbn()
    sampler = DBNSampler()
    g = torch.Generator().manual_seed(0)
    state = sampler.step(m, sampler.init(m, 7, g), 5, g)
    x = sampler.to_data(m, state)
    assert x.shape == (7, 6) and torch.all((x >= 0) & (x <= 1))
    assert state.energy.shape == (7,)
