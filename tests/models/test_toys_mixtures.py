"""The mixture toys and PacGAN's mode-collapse metrics on constructed samples."""

from __future__ import annotations

import math

import pytest
import torch

from models.toys.mixtures import SIGMA, mode_centres, mode_metrics, sample_mixture


def test_mixture_geometry_matches_the_documented_settings():
    ring = mode_centres("ring8")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))  # radius 1
    grid = mode_centres("grid25")
    assert len(grid) == 25 and set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert SIGMA == {"ring8": 0.01, "grid25": 0.05}


def test_sample_mixture_is_seeded_and_labels_the_mode_of_each_point():
    x, modes = sample_mixture("grid25", 5000, torch.Generator().manual_seed(0))
    y, _ = sample_mixture("grid25", 5000, torch.Generator().manual_seed(0))
    assert x.shape == (5000, 2) and modes.shape == (5000,) and torch.equal(x, y)
    offsets = x - mode_centres("grid25")[modes]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.05)
    with pytest.raises(ValueError, match="unknown toy mixture 'ring9'"):
        sample_mixture("ring9", 10, torch.Generator())


def test_true_samples_cover_every_mode_with_high_quality():
    for name, k in (("ring8", 8), ("grid25", 25)):
        x, modes = sample_mixture(name, 2500, torch.Generator().manual_seed(0))
        m = mode_metrics(x, name)
        assert m["modes_covered"] == k
        assert m["high_quality_fraction"] > 0.98  # a 2-D Gaussian puts 1 − e^{−4.5} = 98.9% within 3σ
        assert m["reverse_kl"] < 0.02
        assert set(modes.tolist()) == set(range(k))


def test_collapsed_generator_covers_one_mode():
    x = mode_centres("ring8")[3].expand(100, 2)
    m = mode_metrics(x, "ring8")
    assert m["modes_covered"] == 1 and m["high_quality_fraction"] == 1.0
    assert abs(m["reverse_kl"] - math.log(8)) < 1e-12


def test_two_of_twenty_five_modes_in_ratio_three_to_one():
    c = mode_centres("grid25")
    x = torch.cat([c[0].expand(75, 2), c[24].expand(25, 2)])
    m = mode_metrics(x, "grid25")
    q = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert m["modes_covered"] == 2
    assert m["reverse_kl"] == pytest.approx(float((q * torch.log(q * 25)).sum()), rel=1e-12)


def test_off_mode_junk_is_not_high_quality():
    m = mode_metrics(torch.zeros(50, 2), "ring8")  # the ring's centre is 1 away from every mode
    assert m["modes_covered"] == 0 and m["high_quality_fraction"] == 0.0 and m["reverse_kl"] == math.inf
    # half on-mode, half junk just outside 3σ: quality 1/2, and the junk does not count towards coverage
    c = mode_centres("ring8")
    near_miss = c[:4] * (1 + 3.5 * SIGMA["ring8"])
    m = mode_metrics(torch.cat([c[4:], near_miss]), "ring8")
    assert m["modes_covered"] == 4 and m["high_quality_fraction"] == 0.5
    assert m["reverse_kl"] == pytest.approx(math.log(2), rel=1e-12)
