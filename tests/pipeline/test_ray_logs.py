"""What reaches a person from Ray: workers' warnings through the driver, the right cluster for Ray's
own state queries, and Ray work stopped when the driver is interrupted."""

from __future__ import annotations

import logging
import os

import pytest

from pipeline.ray_logs import BoardHandler, forward_worker_warnings


class FakeBoard:
    def __init__(self):
        self.events = []
        self.push = self

    def remote(self, event):
        self.events.append(event)


def test_worker_warnings_go_to_the_board_and_not_to_stderr(capsys):
    board = FakeBoard()
    forward_worker_warnings(board, rank=1)
    try:
        log = logging.getLogger("pipeline.checkpoints")
        log.warning("checkpoint %s is corrupt; skipping it", "ckpt-3")
        log.info("not forwarded")
    finally:
        logger = logging.getLogger("pipeline")
        for h in [h for h in logger.handlers if isinstance(h, BoardHandler)]:
            logger.removeHandler(h)
        logger.propagate = True
    assert board.events == [{"kind": "warning", "message": "worker 1: checkpoint ckpt-3 is corrupt; skipping it"}]
    assert "corrupt" not in capsys.readouterr().err


@pytest.fixture
def own_ray():
    import ray

    from pipeline.ray_utils import ensure_ray

    ray.shutdown()
    ensure_ray(None)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_local_ray_workers_know_their_own_cluster_and_skip_the_preemption_watcher(own_ray):
    ray = own_ray

    @ray.remote(num_cpus=0)
    def env():
        return os.environ.get("RAY_ADDRESS"), os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER")

    address, watcher = ray.get(env.remote())
    assert address == ray.get_runtime_context().gcs_address
    assert watcher == "0"


@pytest.mark.ray
def test_an_interrupt_stops_ray_work_and_an_error_does_not(own_ray):
    from pipeline.ray_utils import stop_ray_work_on_interrupt

    ray = own_ray
    with pytest.raises(ValueError), stop_ray_work_on_interrupt():
        raise ValueError("a stage error: retried by the stage, Ray stays up")
    assert ray.is_initialized()
    with pytest.raises(KeyboardInterrupt), stop_ray_work_on_interrupt():
        raise KeyboardInterrupt
    assert not ray.is_initialized()


def test_only_the_known_noise_is_dropped(caplog):
    from pipeline.ray_logs import DROPPED, DropMessages

    name = next(iter(DROPPED))
    log = logging.getLogger(name)
    log.addFilter(DropMessages(DROPPED[name]))
    with caplog.at_level(logging.WARNING, logger=name):
        log.warning("Failed to query Ray Train Controller actor state. State API may be temporarily unavailable.")
        log.warning("Failed to query placement group table: boom. Assuming placement group is not removed.")
    assert [r.getMessage()[:40] for r in caplog.records] == ["Failed to query placement group table: b"]
