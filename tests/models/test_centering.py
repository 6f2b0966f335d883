"""Centred RBM (Melchior, Fischer & Wiskott 2016): the same distribution as its plain
re-parameterisation (energies shifted by one constant, log Z by the same, p(v) equal), offsets that
move without moving the distribution, and the centred gradient from the free-energy loss."""

from __future__ import annotations

import pytest
import torch

from models.rbm import CenteredRBM, all_binary_states


def _centred(seed: int = 0) -> CenteredRBM:
    g = torch.Generator().manual_seed(seed)
    m = CenteredRBM(6, 4, init_std=1.0, generator=g).double()
    with torch.no_grad():
        m.b.copy_(torch.randn(6, generator=g, dtype=torch.float64))
        m.c.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        m.mu.copy_(torch.rand(6, generator=g, dtype=torch.float64))
        m.lam.copy_(torch.rand(4, generator=g, dtype=torch.float64))
    return m


def test_centred_energy_is_the_plain_energy_plus_a_constant_and_log_z_matches_brute_force():
    m = _centred()
    plain = m.uncentred()
    vs, hs = all_binary_states(6), all_binary_states(4)
    v, h = vs.repeat_interleave(16, 0), hs.repeat(64, 1)
    kappa = float(m.energy_offset())
    assert torch.allclose(m.energy(v, h), plain.energy(v, h) + kappa, atol=1e-10)
    assert torch.allclose(m.free_energy(vs), plain.free_energy(vs) + kappa, atol=1e-10)
    brute = float(torch.logsumexp(-m.energy(v, h), 0))
    assert float(m.log_partition()) == pytest.approx(brute, abs=1e-9)
    assert torch.allclose(m.log_likelihood(vs), plain.log_likelihood(vs), atol=1e-10)
    assert torch.allclose(m.p_h(vs), plain.p_h(vs)) and torch.allclose(m.p_v(hs), plain.p_v(hs))


def test_moving_the_offsets_leaves_the_distribution_unchanged():
    m = _centred(1)
    vs = all_binary_states(6)
    before = m.log_likelihood(vs).detach()
    m.move_offsets(mu=torch.full((6,), 0.3, dtype=torch.float64), lam=torch.full((4,), 0.7, dtype=torch.float64))
    assert torch.allclose(m.log_likelihood(vs), before, atol=1e-10)


def test_free_energy_loss_has_the_centred_gradient():
    m = _centred(2)
    g = torch.Generator().manual_seed(3)
    pos = torch.bernoulli(torch.full((9, 6), 0.4, dtype=torch.float64), generator=g)
    neg = torch.bernoulli(torch.full((7, 6), 0.6, dtype=torch.float64), generator=g)
    (m(pos).mean() - m(neg).mean()).backward()
    with torch.no_grad():
        def stat(x):
            return (x - m.mu).T @ (m.p_h(x) - m.lam) / len(x)
        expected = -(stat(pos) - stat(neg))
    assert torch.allclose(m.W.grad, expected, atol=1e-12)
    assert torch.allclose(m.c.grad, -(m.p_h(pos).mean(0) - m.p_h(neg).mean(0)).detach(), atol=1e-12)


def test_centred_dbm_is_its_plain_reparameterisation_and_offsets_move_freely():
    from models.dbm import CenteredDBM

    g = torch.Generator().manual_seed(5)
    m = CenteredDBM([5, 4, 3], init_std=1.0, generator=g).double()
    with torch.no_grad():
        for b in m.biases:
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64))
    m.move_offsets([torch.rand(n, generator=g, dtype=torch.float64) for n in m.sizes])
    plain = m.uncentred()
    states = [all_binary_states(n) for n in m.sizes]
    grid = torch.cartesian_prod(*[torch.arange(len(s)) for s in states])
    layers = [states[i][grid[:, i]] for i in range(3)]
    diff = m.energy(layers) - plain.energy(layers)
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-10)  # E_centred = E_plain + const
    for l in range(3):  # the same conditionals, so the same Gibbs sampler and mean field
        assert torch.allclose(m.layer_input(layers, l), plain.layer_input(layers, l), atol=1e-10)
    before = plain.log_unnormalized_visible(states[0]) - plain.log_partition()
    m.move_offsets([torch.full((n,), 0.5, dtype=torch.float64) for n in m.sizes])
    again = m.uncentred()
    assert torch.allclose(again.log_unnormalized_visible(states[0]) - again.log_partition(), before, atol=1e-10)
