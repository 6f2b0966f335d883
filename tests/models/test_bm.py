"""Fully visible BM: exact gradient vs finite differences; Gibbs matches the exact distribution."""

import pytest
import torch

from models.bm import FullyVisibleBM
from models.rbm import all_binary_states


def _bm(n=6, seed=0) -> FullyVisibleBM:
    g = torch.Generator().manual_seed(seed)
    m = FullyVisibleBM(n, temperature=1.3, init_std=0.8, generator=g).double()
    with torch.no_grad():
        m.b.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.5)
    return m


def test_weights_are_symmetric_with_zero_diagonal():
    W = _bm().W
    assert torch.equal(W, W.T) and torch.all(torch.diagonal(W) == 0)


def test_exact_gradient_equals_finite_differences_of_the_log_likelihood():
    m = _bm()
    data = torch.bernoulli(torch.full((40, 6), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    grad_w, grad_b = m.exact_gradient(data)
    eps = 1e-6

    def ll() -> float:
        return float(m.log_likelihood(data).mean())

    with torch.no_grad():
        for i, j in [(0, 1), (2, 5), (3, 4)]:  # a pair weight w_ij = W_raw[i,j] = W_raw[j,i] (shifted together)
            m.W_raw[i, j] += eps; m.W_raw[j, i] += eps  # noqa: E702
            up = ll()
            m.W_raw[i, j] -= 2 * eps; m.W_raw[j, i] -= 2 * eps  # noqa: E702
            down = ll()
            m.W_raw[i, j] += eps; m.W_raw[j, i] += eps  # noqa: E702
            assert (up - down) / (2 * eps) == pytest.approx(float(grad_w[i, j]), abs=1e-6)
        for i in range(6):
            m.b[i] += eps
            up = ll()
            m.b[i] -= 2 * eps
            down = ll()
            m.b[i] += eps
            assert (up - down) / (2 * eps) == pytest.approx(float(grad_b[i]), abs=1e-6)


def test_exact_ml_loss_has_the_exact_gradient():
    m = _bm()
    data = torch.bernoulli(torch.full((30, 6), 0.6, dtype=torch.float64), generator=torch.Generator().manual_seed(2))
    (m.energy(data).mean() + m.log_partition()).backward()
    _, grad_b = m.exact_gradient(data)
    assert torch.allclose(-m.b.grad, grad_b, atol=1e-10)


def test_gibbs_chains_on_a_10_unit_bm_match_the_exact_distribution():
    m = _bm(10, seed=3)
    n = 20000
    g = torch.Generator().manual_seed(0)
    y = torch.bernoulli(torch.full((n, 10), 0.5, dtype=torch.float64), generator=g)
    for _ in range(40):
        y, _ = m.gibbs_step(y, g)
    codes = (y.long() * (1 << torch.arange(10))).sum(1)
    empirical = torch.bincount(codes, minlength=1024).double() / n
    with torch.no_grad():
        exact = torch.softmax(-m.energy(all_binary_states(10)), 0)
    # N independent chains (40 sweeps of a 10-unit BM mix far below this resolution):
    # E[TV] <= 1/2 Σ_k sqrt(p_k / N) <= 1/2 sqrt(K / N) = 0.113 for K = 1024, N = 20,000.
    assert 0.5 * float((empirical - exact).abs().sum()) < 0.5 * (1024 / n) ** 0.5
