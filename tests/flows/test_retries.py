"""Deterministic errors are not retried by the Prefect tasks; transient ones are."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.errors import BusyError, ConfigError, DataError, UserError


def test_retry_condition_separates_deterministic_from_transient():
    from prefect.states import Failed

    from flows.pipeline import transient_failure

    for exc, retried in [(ConfigError("x"), False), (DataError("x"), False), (UserError("x"), False),
                         (BusyError("x"), True), (ConnectionError("x"), True), (OSError("x"), True)]:
        assert transient_failure(None, None, Failed(data=exc)) is retried, exc


def test_every_retrying_task_uses_the_condition():
    import flows.pipeline as fp

    tasks = [fp.prepare_data_task, fp.train_task, fp.sample_task, fp.evaluate_task]
    assert all(t.retry_condition_fn is fp.transient_failure for t in tasks if t.retries)


def test_a_data_error_fails_once_without_retries(tmp_path, prefect_harness, monkeypatch):
    import pipeline.data as data
    from flows.pipeline import prepare_data

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise DataError("data.source: the idx path /nope does not exist")

    monkeypatch.setattr(data, "prepare", broken)
    cfg = load_config("demo", [f"output.root={tmp_path}", "data.seed=12345"])
    with pytest.raises(DataError, match="/nope"):
        prepare_data(cfg)
    assert len(calls) == 1  # retries=2 would have made it 3
