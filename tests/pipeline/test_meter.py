"""StepMeter: device-side sums read back at once, with the divergence verdict."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.meter import StepMeter

CPU = torch.device("cpu")


def test_means_last_values_and_host_numbers():
    m = StepMeter(CPU)
    for i in range(4):
        m.add({"loss": torch.tensor(float(i)), "layer": 2.0})
    m.add({"loss": torch.tensor(10.0), "grad_norm": torch.tensor(3.0)})  # a logging-step-only metric
    r = m.read()
    assert r.problem is None and not m.dirty
    assert r.means == {"loss": pytest.approx(16 / 5), "grad_norm": 3.0, "layer": 2.0}
    assert r.last == {"loss": 10.0, "grad_norm": 3.0, "layer": 2.0}


def test_a_non_finite_step_anywhere_in_the_window_is_reported():
    m = StepMeter(CPU)
    m.add({"loss": torch.tensor(1.0)})
    m.add({"loss": torch.tensor(math.inf)})
    m.add({"loss": torch.tensor(-math.inf)})  # inf + (-inf) = nan: still caught
    m.add({"loss": torch.tensor(2.0)})
    assert "non-finite loss=nan" in m.read().problem


def test_declared_limits_catch_a_peak_between_reads():
    m = StepMeter(CPU, {"energy_magnitude": (5.0, "model.max_energy_magnitude")})
    for v in (1.0, -7.0, 2.0):  # the peak is |−7|, not the last value or the mean
        m.add({"energy_magnitude": torch.tensor(v)})
    assert m.read().problem == "|energy_magnitude| reached 7 > 5 (model.max_energy_magnitude)"
    ok = StepMeter(CPU, {"energy_magnitude": (5.0, "model.max_energy_magnitude")})
    ok.add({"energy_magnitude": torch.tensor(4.0)})
    assert ok.read().problem is None


def test_a_raised_divergence_is_held_until_the_read_and_other_workers_flags_count():
    m = StepMeter(CPU)
    m.add({"loss": torch.tensor(1.0)})
    m.fail("engineered at step 3")
    m.fail("a later one")
    assert m.read().problem == "engineered at step 3"
    other = StepMeter(CPU)
    other.add({"loss": torch.tensor(1.0)})
    # what accelerator.reduce(sum) returns when another worker flagged a non-finite metric
    assert other.read(reduce=lambda flags: flags + torch.tensor([1.0, 0.0, 0.0])).problem == \
        "a non-finite metric or a guard on another worker"
