"""What a person sees of Ray: our workers' warnings, relayed through the driver; not Ray's own noise.

Two kinds of Ray noise reached the terminal, and both have a cause that is fixed here rather than
filtered:

* ``Found multiple active Ray instances``: with no address, ``ray.init()`` and Ray's state API
  auto-detect a cluster by scanning the machine for GCS processes and reading
  ``/tmp/ray/ray_current_cluster`` (the last ``ray start``): with several Ray instances on one machine
  (other runs, other users) the detection warns, or joins another cluster. The driver therefore starts
  its local Ray with ``address="local"``, and every worker process of the job gets ``RAY_ADDRESS`` =
  its own cluster's GCS address (:func:`worker_setup`, a ``worker_process_setup_hook``; it runs in
  detached actors too, checked).
* ``PlacementGroupCleaner ... Failed to query Ray Train Controller actor state. State API may be
  temporarily unavailable``: Ray Train's detached cleaner polls the controller through the state API,
  which is served by the dashboard; local runs start Ray without the dashboard
  (``include_dashboard=False``), so the query always fails (measured: ``ServerUnavailable ...
  127.0.0.1:8265/api/v0/actors``) and the line repeats every few seconds for the whole run. The
  setup hook drops exactly that message in the cleaner's logger; its other warnings stay.
* ``PreemptionWatcher poll failed``: Ray Train's watcher of node drains (spot preemption) polls the
  GCS every 5 s. A local single-node Ray has no node to drain, so local runs switch it off with Ray's
  documented flag ``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=0``; clusters keep it.

Our own workers' warnings (skipped corrupt checkpoints, divergence restarts) are sent to the driver's
progress board (:class:`BoardHandler`), which logs them to the terminal and the Prefect flow-run log.
"""

from __future__ import annotations

import logging
import os
from typing import Any

LOCAL_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
SETUP_HOOK = "pipeline.ray_logs.worker_setup"


def local_ray_env() -> None:
    """Environment for a local Ray started by this process (inherited by raylet and its workers)."""
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)


def init_kwargs() -> dict[str, Any]:
    """``ray.init`` keyword arguments that make every worker of the job talk to its own cluster."""
    return {"runtime_env": {"worker_process_setup_hook": SETUP_HOOK}}


# logger name -> message prefixes dropped there (see the module docstring for why each is noise)
DROPPED = {"ray.train.v2._internal.execution.controller.placement_group_cleaner":
           ("Failed to query Ray Train Controller actor state",)}


class DropMessages(logging.Filter):
    """Drops records whose message starts with one of ``prefixes``; everything else passes."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def worker_setup() -> None:
    """Runs in every Ray worker process of our jobs before any task or actor (Ray's setup hook)."""
    import ray

    address = ray.get_runtime_context().gcs_address
    if address:
        os.environ["RAY_ADDRESS"] = address
    for name, prefixes in DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(prefixes))


class BoardHandler(logging.Handler):
    """Sends WARNING and above records of ``pipeline.*`` in a worker to the driver's progress board."""

    def __init__(self, board: Any, rank: int | None = None):
        super().__init__(logging.WARNING)
        self.board, self.rank = board, rank

    def emit(self, record: logging.LogRecord) -> None:
        try:
            who = f"worker {self.rank}: " if self.rank is not None else ""
            self.board.push.remote({"kind": "warning", "message": who + record.getMessage()})
        except Exception:  # a log line must never break training
            self.handleError(record)


def forward_worker_warnings(board: Any, rank: int | None = None) -> None:
    """Install :class:`BoardHandler` on the ``pipeline`` logger of this worker process (once)."""
    logger = logging.getLogger("pipeline")
    for old in [h for h in logger.handlers if isinstance(h, BoardHandler)]:
        logger.removeHandler(old)
    logger.addHandler(BoardHandler(board, rank))
    logger.propagate = False  # the driver prints it; Ray would print the worker's stderr copy as well
