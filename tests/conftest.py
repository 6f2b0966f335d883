"""Shared fixtures."""

import pytest


@pytest.fixture
def fresh_ray():
    """A local 2-CPU Ray started for the test alone (earlier stages may have left one running),
    listening on loopback only, like the one boltzgan starts."""
    import ray

    from pipeline.ray_utils import init_local_ray

    ray.shutdown()
    init_local_ray(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Tiny tensors: torch's intra-op threads only add contention on a shared 2-core machine.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
