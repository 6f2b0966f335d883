"""Numbers for people: rounding, references in the same units, one-line readings; the likelihood
baseline against a closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.references import independent_pixel_log_likelihood
from pipeline.readings import fid_reading, fmt, readings, rounded, summary_lines


@pytest.mark.parametrize("value,shown", [(263.2854002802401, "263.29"), (0.12843, "0.1284"), (-143.298, "-143.30"),
                                         (1.2345e-5, "1.23e-05"), (None, "unavailable"), (0.0, "0"), (7, "7"),
                                         (2.5e7, "2.5e+07"), (float("inf"), "inf")])
def test_fmt(value, shown):
    assert fmt(value) == shown


def test_rounded_keeps_four_significant_digits_everywhere():
    out = rounded({"energy": {"rhat": 1.00126369161601, "ess_bulk": 471.8683612028879, "chains": 20},
                   "list": [0.000123456, -98765.4321]})
    assert out == {"energy": {"rhat": 1.001, "ess_bulk": 471.9, "chains": 20}, "list": [0.0001235, -98765.0]}  # the integer part is kept


def _r(metric, value, **extra):
    return {"metric": metric, "value": value, "extractor": "domain", "num_samples": 200, "reason": "",
            "extra": extra}


def test_fid_is_read_against_its_floor():
    assert "6.0× the floor" in fid_reading(263.3, 44.0)
    assert fid_reading(600.0, 44.0).startswith("samples are far from the data")
    assert fid_reading(100.0, 44.0).startswith("close to the data")
    assert fid_reading(50.0, 44.0).startswith("near the floor")


def test_summary_folds_references_into_the_metric_lines():
    results = [_r("fid", 263.2854002802401), _r("kid", 0.05, std=0.001), _r("fid_real_train_vs_test", 44.03),
               _r("kid_real_train_vs_test", 0.002, std=0.004),
               _r("log_likelihood", -20.5), _r("log_likelihood_baseline", -30.25)]
    lines = summary_lines(results)
    assert len(lines) == 3
    assert lines[0].startswith("fid = 263.29") and "vs floor 44.03" in lines[0] and "6.0× the floor" in lines[0]
    assert "vs floor 0.002 ± 0.004" in lines[1] and "distinguishable from real images (12.0 spreads" in lines[1]
    assert "vs baseline -30.25" in lines[2] and "9.8 nats per example better" in lines[2]
    assert "263.2854" not in "\n".join(lines)


def test_a_likelihood_below_the_baseline_says_so():
    note = readings([_r("log_likelihood", -40.0), _r("log_likelihood_baseline", -30.0)])["log_likelihood"]
    assert note.reading.startswith("no better than independent pixels (10.0 nats worse)")


def test_independent_pixel_baseline_matches_the_closed_form():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 0.9, size=6)
    train = (rng.uniform(size=(20_000, 6)) < p).astype(np.float64)
    test = (rng.uniform(size=(500, 6)) < p).astype(np.float64)
    q = train.mean(0)
    exact = sum(math.log(q[j]) if x[j] else math.log(1 - q[j]) for x in test for j in range(6)) / len(test)
    assert independent_pixel_log_likelihood(train, test) == pytest.approx(exact, rel=1e-12)


def test_kid_is_read_against_the_spread_of_its_floor_not_its_own():
    """A poor model's subset spread is wide; the floor's spread (two real sets) is the yardstick."""
    far = readings([_r("kid", 807.0, std=420.0), _r("kid_real_train_vs_test", 3.0, std=40.0)])["kid"]
    assert far.reading.startswith("distinguishable from real images (20.1 spreads")
    near = readings([_r("kid", 50.0, std=60.0), _r("kid_real_train_vs_test", 3.0, std=40.0)])["kid"]
    assert near.reading.startswith("indistinguishable from real images at this sample size")
    assert "kid" not in readings([_r("kid", 50.0, std=60.0)])  # no floor, no reading
