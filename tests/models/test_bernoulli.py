"""models.bernoulli: u < p drawn in place is a Bernoulli(p) sample, and never part of a graph."""

from __future__ import annotations

import torch

from models.bernoulli import bernoulli


def test_frequencies_match_p_within_sampling_error():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(40_000, 1)
    x = bernoulli(p, torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= {0.0, 1.0} and x.dtype == p.dtype
    freq, q = x.mean(0), p[0]
    sigma = (q * (1 - q) / len(p)).sqrt()
    assert torch.all((freq - q).abs() <= 4 * sigma + 1e-12), freq


def test_a_sample_carries_no_graph_and_draws_as_u_less_than_p():
    p = torch.rand(5, 7, requires_grad=True)
    x = bernoulli(p, torch.Generator().manual_seed(3))
    assert not x.requires_grad
    u = torch.rand(5, 7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, (u < p.detach()).float())
