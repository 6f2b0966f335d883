"""Starting or joining Ray, and checking that a request can be placed before asking for it.

Ray waits forever for resources that do not exist (ray #45909), so every stage that launches
workers calls :func:`check_resources` first and fails with what *is* there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from pipeline.errors import ResourceError

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None) -> None:
    """Join ``address`` (or RAY_ADDRESS); otherwise start a quiet local Ray. No-op when connected."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    from pipeline.ray_logs import init_kwargs, local_ray_env

    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
                                  **init_kwargs())
    if address:
        ray.init(address=address, **kwargs)
    else:  # a new local instance, never another cluster found on this machine (pipeline/ray_logs.py)
        # Ray starts its workers at nice 15 (RAY_worker_niceness, read when Ray starts): they then
        # yield the CPU to every normal-priority process, Ray's own raylet and GCS included, and
        # a training worker next to any busy process crawls. A Ray we start runs them at nice 0.
        os.environ.setdefault("RAY_worker_niceness", "0")
        local_ray_env()
        init_local_ray(**kwargs)


LOOPBACK = "127.0.0.1"


def init_local_ray(**kwargs: Any) -> None:
    """Start a single-machine Ray whose processes listen on the loopback interface only.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough: Ray replaces a loopback node
    address by the machine's external one unless ``ray_constants.ENABLE_RAY_CLUSTER`` is false
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when Ray is imported; Ray's own default on
    Windows and macOS). With a loopback node address GCS, raylet, object manager, agents and
    workers bind 127.0.0.1. Ray's token authentication (its default for a new local cluster) stays
    on, with a random token per driver process in RAY_AUTH_TOKEN (Ray's highest-precedence token
    source, inherited by the processes Ray starts) rather than the shared ~/.ray/auth_token, which
    concurrent local clusters of one user race to create. An explicit RAY_AUTH_MODE or token is
    respected. ``address="local"`` starts a new instance even when ``ray start`` left a cluster
    recorded on this machine.
    """
    import ray
    from ray._private import ray_constants

    saved_env = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    saved = ray_constants.ENABLE_RAY_CLUSTER
    _own_token()
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # inherited by Ray's own processes
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
    try:
        ray.init(address="local", _node_ip_address=LOOPBACK, **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved_env


def workers_that_fit(nodes: list[dict[str, Any]], cpus_per_worker: float, gpus_per_worker: float = 0.0) -> int:
    """How many such workers the alive nodes can hold at once (a worker cannot span nodes)."""
    fit = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        res = node.get("Resources", {})
        n = math.floor(res.get("CPU", 0.0) / cpus_per_worker + 1e-9) if cpus_per_worker > 0 else math.inf
        if gpus_per_worker > 0:
            n = min(n, math.floor(res.get("GPU", 0.0) / gpus_per_worker + 1e-9))
        fit += 0 if n == math.inf else n
    return fit


def check_resources(num_workers: int, cpus_per_worker: float, gpus_per_worker: float = 0.0,
                    setting: str | None = None) -> None:
    """Raise ResourceError when the cluster cannot place ``num_workers`` such workers at once.

    ``setting`` is the config key of the worker count (e.g. ``sample.workers``), named in the error.
    """
    import ray

    if num_workers <= 0:
        return
    nodes = [n for n in ray.nodes() if n.get("Alive", True)]
    fit = workers_that_fit(nodes, cpus_per_worker, gpus_per_worker)
    if fit >= num_workers:
        return
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    lower = f"lower {setting} to {fit} or less" if setting and fit > 0 else "use fewer workers"
    raise ResourceError(
        f"resources: {num_workers} worker(s) × ({cpus_per_worker:g} CPU, {gpus_per_worker:g} GPU) cannot be "
        f"placed: the Ray cluster has {cpus:g} CPU and {gpus:g} GPU in {len(nodes)} node(s), room for "
        f"{fit} such worker(s). Fix: {lower} or fewer CPUs/GPUs per worker (GPU off on a CPU-only cluster), "
        f"or join a larger cluster (resources.ray_address or RAY_ADDRESS).")


@contextlib.contextmanager
def stop_ray_work_on_interrupt() -> Iterator[None]:
    """Stop the Ray work this driver started as soon as the driver is interrupted or terminated.

    Ctrl-C, and a cancelled Prefect run (the worker or serving process sends SIGTERM, which Prefect
    turns into ``TerminationSignal``, a BaseException), would otherwise leave Ray Train workers and
    sampling tasks running until the process exits. ``ray.shutdown()`` stops a local Ray with all its
    workers; on a cluster it disconnects the driver, and Ray then kills the actors (Ray Train's
    controller and its workers) and tasks this driver owns. Ordinary exceptions are left to the
    stage's own handling (retries, failure reports).
    """
    try:
        yield
    except Exception:
        raise
    except BaseException:
        import ray

        if ray.is_initialized():
            log.warning("interrupted: stopping this run's Ray workers and tasks")
            ray.shutdown()
        raise


def _own_token() -> None:
    """Token mode with this process's own random token, unless the user configured auth."""
    if any(os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return
    import secrets

    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # 256 bits, as Ray's own generator
    Config.initialize("")  # this process read RAY_AUTH_MODE already: refresh it (as Ray itself does)
    AuthenticationTokenLoader.instance().reset_cache()
