"""Oracles for the k-NN manifold metrics: improved precision/recall (Kynkäänniemi et al. 2019) and
density/coverage (Naeem et al. 2020), and KID's subset spread."""

from __future__ import annotations

import pytest
import torch

from pipeline.evaluation.metrics import (METRICS, Features, density_coverage, kernel_inception_distance,
                                         kid_subset_size, manifold_share, precision_recall)


def _col(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_a_set_against_itself_has_full_precision_recall_and_coverage():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    p, r = precision_recall(x, x.clone())
    _, coverage = density_coverage(x, x.clone())
    assert (p, r, coverage) == (1.0, 1.0, 1.0)


def test_disjoint_supports_score_zero_everywhere():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(200, 3, generator=g), torch.rand(200, 3, generator=g) + 10.0
    assert precision_recall(real, fake) == (0.0, 0.0)
    assert density_coverage(real, fake) == (0.0, 0.0)


def test_a_small_configuration_computed_by_hand():
    # real 0,1,2,3: every 1-NN radius is 1. fake 0.5, 10: both 1-NN radii are 9.5.
    real, fake = _col(0, 1, 2, 3), _col(0.5, 10)
    assert manifold_share(real, fake, k=1) == 0.5  # 0.5 lies in the balls of 0 and 1; 10 in none
    assert manifold_share(fake, real, k=1) == 1.0  # every real point is within 9.5 of 0.5
    density, coverage = density_coverage(real, fake, k=1)
    assert density == 1.0  # (2 balls + 0 balls) / 2 fakes / k=1
    assert coverage == 0.5  # 0 and 1 have a fake within radius 1; 2 and 3 do not


def test_k_counts_other_points_not_the_point_itself():
    # k = 2 on 0, 1, 3: radii are 3 (for 0: neighbours 1, 3), 2 (for 1: 0, 3), 3 (for 3: 1, 0).
    real = _col(0, 1, 3)
    density, coverage = density_coverage(real, _col(5.0), k=2)
    assert density == pytest.approx(0.5)  # 5 is inside the ball of 3 (radius 3) only: 1 ball / k=2
    assert coverage == pytest.approx(1 / 3)


def test_same_distribution_gives_density_one_and_the_expected_coverage():
    # Naeem et al. 2020, Lemma 1-2: E[density] = 1 and E[coverage] = 1 - prod_{i=1..k} (N-i)/(M+N-i)
    g = torch.Generator().manual_seed(2)
    n = m = 1000
    real, fake = torch.randn(n, 3, generator=g), torch.randn(m, 3, generator=g)
    density, coverage = density_coverage(real, fake, k=5)
    expected = 1.0
    for i in range(1, 6):
        expected *= (n - i) / (m + n - i)
    assert density == pytest.approx(1.0, abs=0.1)
    assert coverage == pytest.approx(1.0 - expected, abs=0.02)


def test_registered_beside_fid_and_named_in_results():
    g = torch.Generator().manual_seed(3)
    f = Features("identity", real=torch.randn(100, 4, generator=g), fake=torch.randn(100, 4, generator=g))
    for name, k in (("precision", 3), ("recall", 3), ("density", 5), ("coverage", 5)):
        res = METRICS[name](f)
        assert res.metric == name and res.extra["k"] == k and 0.0 <= res.value <= 2.0
        assert res.num_samples == 100 and res.num_real == 100


def test_kid_reports_a_spread_at_small_sample_counts():
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.3
    mean, std, size = kernel_inception_distance(real, fake, subsets=20)
    assert size == kid_subset_size(200, 200) == 100 < 200
    assert std > 0.0 and mean > 0.0
