"""Shared fixtures."""

import os

import pytest


@pytest.fixture
def fresh_ray():
    """A local 2-CPU Ray started for the test alone (earlier stages may have left one running)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()
