"""RBM oracles: brute-force marginalisation and enumeration, AIS against exact log Z."""

import math

import pytest
import torch

from models import ais
from models.rbm import RBM, all_binary_states


def _rbm(v=7, h=5, scale=1.0, seed=0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(v, h, init_std=scale, generator=g)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(v, generator=g))
        rbm.c.copy_(torch.randn(h, generator=g))
    return rbm.double()


def test_free_energy_equals_brute_force_sum_over_hidden():
    rbm = _rbm()
    v = all_binary_states(7)[:20]
    hs = all_binary_states(5)
    brute = torch.stack([-torch.logsumexp(-rbm.energy(vi.expand(len(hs), -1), hs), 0) for vi in v])
    assert torch.allclose(rbm.free_energy(v), brute, atol=1e-10)


@pytest.mark.parametrize("v,h", [(7, 5), (5, 7)])
def test_exact_log_partition_equals_enumeration_of_both_layers(v, h):
    rbm = _rbm(v, h)
    vs, hs = all_binary_states(v), all_binary_states(h)
    joint = -rbm.energy(vs.repeat_interleave(len(hs), 0), hs.repeat(len(vs), 1))
    assert float(rbm.log_partition(chunk=8)) == pytest.approx(float(torch.logsumexp(joint, 0)), abs=1e-9)


def test_cd_loss_gradient_is_the_textbook_statistics():
    """∂/∂W [mean F(v+) - mean F(v-)] = -(<v p(h|v)>_+ - <v p(h|v)>_-)."""
    rbm = _rbm()
    g = torch.Generator().manual_seed(1)
    pos = torch.bernoulli(torch.full((11, 7), 0.4, dtype=torch.float64), generator=g)
    neg = torch.bernoulli(torch.full((13, 7), 0.6, dtype=torch.float64), generator=g)
    loss = rbm(pos).mean() - rbm(neg).mean()
    loss.backward()
    expected = -(pos.T @ rbm.p_h(pos) / 11 - neg.T @ rbm.p_h(neg) / 13)
    assert torch.allclose(rbm.W.grad, expected.detach(), atol=1e-12)


def test_visible_bias_init_from_marginals():
    rbm = RBM(3, 2)
    rbm.init_visible_bias(torch.tensor([0.5, 0.9, 0.1]))
    assert torch.allclose(torch.sigmoid(rbm.b), torch.tensor([0.5, 0.9, 0.1]), atol=1e-6)


def test_ais_log_z_within_bounds_and_0_1_nats_of_exact():
    rbm = _rbm(v=30, h=12, scale=0.5, seed=3)
    exact = float(rbm.log_partition())
    base = ais.base_rate_bias(torch.sigmoid(rbm.b.detach()))
    log_w = ais.ais_log_weights(rbm, base, ais.schedule("linear:3000"), 200, torch.Generator().manual_seed(0))
    res = ais.combine_log_weights(log_w, ais.base_log_z(base, rbm.n_hidden))
    assert abs(res.log_z - exact) < 0.1
    assert res.log_z_lower <= exact <= res.log_z_upper


def test_combining_split_log_weights_equals_one_pool():
    log_w = torch.randn(100, dtype=torch.float64) * 3
    whole = ais.combine_log_weights(log_w, 1.5)
    again = ais.combine_log_weights(torch.cat([log_w[:37], log_w[37:]]), 1.5)
    assert whole == again
    assert whole.log_z == pytest.approx(float(torch.logsumexp(log_w, 0)) - math.log(100) + 1.5)


def test_default_schedule_is_salakhutdinov_murray():
    betas = ais.schedule()
    assert len(betas) == 14_501 and betas[0] == 0 and betas[-1] == 1
    assert torch.all(betas[1:] > betas[:-1])


def test_gaussian_rbm_partition_function_matches_numerical_integration():
    from scipy.integrate import quad

    from models.rbm import GaussianRBM

    g = torch.Generator().manual_seed(4)
    m = GaussianRBM(1, 3, init_std=0.8, generator=g).double()
    with torch.no_grad():
        m.b.fill_(0.3)
        m.c.copy_(torch.tensor([0.2, -0.5, 0.1], dtype=torch.float64))
    integral, _ = quad(lambda v: math.exp(-float(m.free_energy(torch.tensor([[v]], dtype=torch.float64)))),
                       -30, 30, limit=200)
    assert float(m.log_partition()) == pytest.approx(math.log(integral), abs=1e-8)
    # and the free energy is the joint energy with h summed out
    v = torch.tensor([[0.7]], dtype=torch.float64)
    hs = all_binary_states(3)
    brute = -torch.logsumexp(-m.energy(v.expand(8, -1), hs), 0)
    assert float(m.free_energy(v)) == pytest.approx(float(brute), abs=1e-10)
