"""A Ray that boltzgan starts runs its workers at normal priority (Ray's default is nice 15)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ray

PROBE = """
import os
from pipeline.ray_utils import ensure_ray
ensure_ray()
import ray
print(os.nice(0), ray.get(ray.remote(num_cpus=0)(lambda: os.nice(0)).remote()))
ray.shutdown()
"""


def _niceness(env: dict[str, str]) -> tuple[int, int]:
    """(driver's nice value, a Ray worker's), from a fresh process that starts its own Ray."""
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr[-2000:]
    driver, worker = out.stdout.split()[-2:]
    return int(driver), int(worker)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return env | {"RAY_AUTH_MODE": "disabled"}


def test_workers_of_a_local_ray_run_at_the_drivers_priority():
    driver, worker = _niceness(_clean_env())
    assert worker == driver


def test_an_explicit_setting_is_respected():
    driver, worker = _niceness(_clean_env() | {"RAY_worker_niceness": "5"})
    assert worker == min(driver + 5, 19)  # the probe can tell the two apart
