"""Two-sided likelihood oracles on models small enough to enumerate: forward AIS (optimistic in
expectation) and RAISE (Burda, Grosse & Salakhutdinov 2015; conservative in expectation) bracket the
exact test log-likelihood on average over seeds at few βs, and both land within 0.1 nats at many.

Test points are exact samples of the model itself: then E[RAISE] ≤ E_p[log p_ann] ≤ E_p[log p] holds
(Gibbs' inequality), so the bracket is a theorem the code must reproduce, not a tendency."""

from __future__ import annotations

import pytest
import torch

from models import ais
from models.bm import FullyVisibleBM
from models.dbm import DBM
from models.rbm import RBM, all_binary_states


pytestmark = pytest.mark.usefixtures("one_thread")


def _exact_samples(log_p_star: torch.Tensor, states: torch.Tensor, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return states[torch.multinomial(torch.softmax(log_p_star, 0), n, replacement=True, generator=g)]


def _rbm(v: int, h: int, scale: float, seed: int) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(v, h, init_std=scale, generator=g)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(v, generator=g))
        rbm.c.copy_(torch.randn(h, generator=g))
    return rbm.double().requires_grad_(False)


def _rbm_sides(rbm: RBM, test: torch.Tensor, base: torch.Tensor, betas: torch.Tensor, runs: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    mean_log_f = float((-rbm.free_energy(test)).mean())
    fwd = ais.combine_log_weights(ais.ais_log_weights(rbm, base, betas, runs, g), ais.base_log_z(base, rbm.n_hidden))
    rev = ais.combine_reverse(ais.rbm_raise_run(rbm, runs, g, base=base, betas=betas, data=test))
    return mean_log_f - fwd.log_z, mean_log_f + rev.mean


def _rbm_case():
    rbm = _rbm(12, 10, 2.0, 3)
    test = _exact_samples(-rbm.free_energy(all_binary_states(12)), all_binary_states(12), 500)
    exact = float((-rbm.free_energy(test)).mean() - rbm.log_partition())
    return rbm, test, exact


def test_rbm_forward_ais_and_raise_bracket_the_exact_likelihood_on_average():
    rbm, test, exact = _rbm_case()
    base, betas = torch.zeros(12, dtype=torch.float64), ais.schedule("linear:5")  # few βs: visible biases
    sides = torch.tensor([_rbm_sides(rbm, test, base, betas, 20, s) for s in range(40)])
    fwd, rev = sides[:, 0], sides[:, 1]
    se_f, se_r = float(fwd.std()) / 40**0.5, float(rev.std()) / 40**0.5
    assert float(fwd.mean()) - 3 * se_f > exact  # forward AIS over-estimates the likelihood ...
    assert float(rev.mean()) + 3 * se_r < exact  # ... RAISE under-estimates it


def test_rbm_forward_and_reverse_land_within_0_1_nats_at_many_betas():
    rbm, test, exact = _rbm_case()
    base = ais.base_rate_bias(test.mean(0))
    fwd, rev = _rbm_sides(rbm, test, base, ais.schedule("linear:1000"), 100, 0)
    assert abs(fwd - exact) < 0.1 and abs(rev - exact) < 0.1


def test_raise_runs_split_into_blocks_give_the_same_values_as_one_block():
    rbm, test, _ = _rbm_case()
    base, betas = ais.base_rate_bias(test.mean(0)), ais.schedule("linear:20")
    a = ais.rbm_raise_run(rbm, 6, torch.Generator().manual_seed(5), base=base, betas=betas, data=test)
    b = ais.rbm_raise_run(rbm, 6, torch.Generator().manual_seed(5), base=base, betas=betas, data=test)
    assert torch.equal(a, b)  # all randomness comes from the block's generator


# ----------------------------------------------------------------------------------------- DBM
def _dbm() -> DBM:
    g = torch.Generator().manual_seed(2)
    m = DBM([8, 6, 5], init_std=1.0, generator=g).double()
    with torch.no_grad():
        for b in m.biases:
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64) * 0.5)
    return m.requires_grad_(False)


def test_dbm_raise_from_mean_field_starts_is_below_the_exact_likelihood_and_converges():
    m = _dbm()
    states = all_binary_states(8)
    test = _exact_samples(m.log_unnormalized_visible(states), states, 200)
    exact = float(m.log_unnormalized_visible(test).mean() - m.log_partition())
    few = [float(m.raise_log_weights(test, ais.schedule("linear:5"), torch.Generator().manual_seed(s)).mean())
           for s in range(5)]
    assert sum(few) / 5 < exact - 0.3  # conservative at few βs
    samples = 20
    log_w = m.raise_log_weights(test.repeat_interleave(samples, 0), ais.schedule("linear:200"),
                                torch.Generator().manual_seed(0))
    assert abs(float(ais.log_mean_exp_groups(log_w, samples).mean()) - exact) < 0.1
    # the forward side's importance-sampled log p*(v) with the same proposal converges too
    is_ll = float(m.importance_log_f(test, 50, torch.Generator().manual_seed(0)).mean() - m.log_partition())
    assert abs(is_ll - exact) < 0.1


def test_dbm_forward_log_z_is_low_on_average_at_few_betas():
    m = _dbm()
    exact = float(m.log_partition())
    est = torch.tensor([ais.combine_log_weights(m.ais_log_weights(ais.schedule("linear:3"), 4,
                                                                  torch.Generator().manual_seed(s)),
                                                m.base_log_z()).log_z for s in range(100)])
    assert float(est.mean()) + 3 * float(est.std()) / 100**0.5 < exact  # forward AIS under-estimates log Z


# ------------------------------------------------------------------------------ fully visible BM
def _bm(n: int = 12) -> FullyVisibleBM:
    g = torch.Generator().manual_seed(3)
    m = FullyVisibleBM(n, temperature=1.0, init_std=1.0, generator=g).double()
    with torch.no_grad():
        m.b.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.5)
    return m.requires_grad_(False)


def _bm_sides(m: FullyVisibleBM, test, base, betas, runs: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    mean_log_f = float((-m.energy(test)).mean())
    fwd = ais.combine_log_weights(m.ais_log_weights(base, betas, runs, g), m.base_log_z(base))
    rev = m.reverse_log_ratio(ais.pick_rows(test, runs, g), base, betas, g)
    return mean_log_f - fwd.log_z, mean_log_f + float(rev.mean())


def test_bm_ais_and_raise_bracket_and_then_match_enumeration():
    m = _bm()
    states = all_binary_states(12)
    test = _exact_samples(-m.energy(states), states, 300)
    exact = float((-m.energy(test)).mean() - m.log_partition())
    base = torch.zeros(12, dtype=torch.float64)
    sides = torch.tensor([_bm_sides(m, test, base, ais.schedule("linear:4"), 3, s) for s in range(200)])
    se = sides.std(0) / 200**0.5
    assert float(sides[:, 0].mean() - 3 * se[0]) > exact > float(sides[:, 1].mean() + 3 * se[1])
    fwd, rev = _bm_sides(m, test, ais.base_rate_bias(test.mean(0)), ais.schedule("linear:300"), 60, 0)
    assert abs(fwd - exact) < 0.1 and abs(rev - exact) < 0.1
