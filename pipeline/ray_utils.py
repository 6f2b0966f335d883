"""Starting or joining Ray, and checking that a request can be placed before asking for it.

Ray waits forever for resources that do not exist (ray #45909), so every stage that launches
workers calls :func:`check_resources` first and fails with what *is* available.
"""

from __future__ import annotations

import logging
import os

from pipeline.errors import ResourceError


def ensure_ray(address: str | None = None) -> None:
    """Join ``address`` (or RAY_ADDRESS); otherwise start a quiet local Ray. No-op when connected."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, loopback-only instance
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)


def check_resources(num_workers: int, cpus_per_worker: float, gpus_per_worker: float = 0.0) -> None:
    """Raise ResourceError when the cluster's totals cannot hold ``num_workers`` such workers."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    need_cpu, need_gpu = num_workers * cpus_per_worker, num_workers * gpus_per_worker
    if need_cpu > cpus or need_gpu > gpus:
        raise ResourceError(
            f"resources: {num_workers} worker(s) × ({cpus_per_worker} CPU, {gpus_per_worker} GPU) need "
            f"{need_cpu:g} CPU and {need_gpu:g} GPU, but the Ray cluster has {cpus:g} CPU and {gpus:g} GPU. "
            f"Lower resources.num_workers / resources.cpus_per_worker, set resources.use_gpu=false, "
            f"or join a larger cluster with resources.ray_address.")
