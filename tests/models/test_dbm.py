"""DBM oracles on a tiny model: enumeration, AIS against exact log Z, the mean-field bound."""

import pytest
import torch

from models import ais
from models.dbm import DBM
from models.rbm import all_binary_states


def _dbm(sizes=(6, 5, 4), scale=1.0, seed=0) -> DBM:
    g = torch.Generator().manual_seed(seed)
    m = DBM(list(sizes), init_std=scale, generator=g).double()
    with torch.no_grad():
        for b in m.biases:
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64) * 0.5)
    return m


def _brute_log_z(m: DBM) -> float:
    states = [all_binary_states(n) for n in m.sizes]
    grids = torch.cartesian_prod(*[torch.arange(len(s)) for s in states])
    layers = [states[i][grids[:, i]] for i in range(len(states))]
    return float(torch.logsumexp(-m.energy(layers), 0))


def test_exact_log_z_and_visible_marginal_equal_brute_force():
    m = _dbm()
    assert float(m.log_partition()) == pytest.approx(_brute_log_z(m), abs=1e-9)
    v = all_binary_states(6)
    log_pv = m.log_unnormalized_visible(v) - m.log_partition()
    assert float(torch.logsumexp(log_pv, 0)) == pytest.approx(0.0, abs=1e-9)  # p(v) sums to one


def test_ais_log_z_within_bounds_and_close_to_exact_for_a_10_8_6_dbm():
    m = _dbm((10, 8, 6), scale=0.5, seed=1)
    exact = float(m.log_partition())
    log_w = m.ais_log_weights(ais.schedule("linear:2000"), 200, torch.Generator().manual_seed(0))
    res = ais.combine_log_weights(log_w, m.base_log_z())
    assert abs(res.log_z - exact) < 0.1
    assert res.log_z_lower <= exact <= res.log_z_upper


def test_mean_field_bound_never_exceeds_the_exact_log_likelihood():
    m = _dbm((8, 6, 5), scale=1.0, seed=2)
    v = all_binary_states(8)[::7]
    exact = m.log_unnormalized_visible(v)
    bound = m.mean_field_bound(v)
    assert torch.all(bound <= exact + 1e-9)
    assert float((exact - bound).mean()) < 2.0  # and it is a useful bound, not a vacuous one


def test_gibbs_sampling_matches_the_exact_visible_distribution():
    m = _dbm((4, 3, 3), scale=1.0, seed=3)
    g = torch.Generator().manual_seed(0)
    n = 8000
    layers = [torch.bernoulli(torch.full((n, k), 0.5, dtype=torch.float64), generator=g) for k in m.sizes]
    for _ in range(60):
        layers = m.gibbs_step(layers, g)
    codes = (layers[0].long() * (1 << torch.arange(4))).sum(1)
    empirical = torch.bincount(codes, minlength=16).double() / n
    exact = torch.softmax(m.log_unnormalized_visible(all_binary_states(4)), 0)
    assert 0.5 * float((empirical - exact).abs().sum()) < 0.5 * (16 / n) ** 0.5
