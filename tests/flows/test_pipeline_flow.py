"""The Prefect pipeline flow on digits, in-process (no Ray workers), under a test server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config


def _cfg(root: Path, *extra: str):
    return load_config("demo", [f"output.root={root}", "resources.num_workers=0", "sample.workers=0",
                                "train.epochs=2", "sample.chains=20", "sample.steps=30", "sample.burn_in=10",
                                "evaluate.num_samples=40", "evaluate.ais_runs=10",
                                "evaluate.ais_schedule=linear:200", *extra])


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r.state.name for r in runs}


def _artifact_keys(flow_run_id) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key for a in arts}


def test_pipeline_runs_and_a_rerun_hits_the_caches(tmp_path, prefect_harness):
    from flows.pipeline import pipeline_flow

    cfg = _cfg(tmp_path)
    first = pipeline_flow(cfg, return_state=True)
    out = first.result()
    assert Path(out.report.markdown_path).exists()
    assert {r.metric for r in out.evaluation.results} >= {"fid", "kid", "is", "log_likelihood",
                                                          "fid_real_train_vs_test", "kid_real_train_vs_test"}
    ll = out.evaluation.likelihood  # demo: a 64-visible RBM, so AIS with its interval
    assert ll.method == "ais" and ll.runs == 10 and ll.lower <= ll.log_likelihood <= ll.upper
    assert out.samples.chains == 20 and Path(out.samples.path).is_dir()
    assert "demo-report" in _artifact_keys(first.state_details.flow_run_id)
    second = pipeline_flow(cfg, return_state=True)
    states = _task_states(second.state_details.flow_run_id)
    assert states["prepare-data"] == "Cached"
    again = second.result()
    assert again.run_dir == out.run_dir
    # every finished stage is skipped, not only training; the new flow run still shows the report
    assert again.trained.skipped and again.samples.skipped and again.evaluation.skipped and again.report.skipped
    assert again.evaluation.results == out.evaluation.results
    assert "demo-report" in _artifact_keys(second.state_details.flow_run_id)


def test_the_stages_are_linked_by_their_results(tmp_path, prefect_harness):
    """Prefect records each stage's upstream results as its inputs: sample ← train, evaluate ← sample."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.pipeline import pipeline_flow

    state = pipeline_flow(_cfg(tmp_path, "output.run_name=linked"), return_state=True)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[state.state_details.flow_run_id])))
    by_id = {r.id: r.name.rsplit("-", 1)[0] for r in runs}
    upstream = {by_id[r.id]: {by_id[i.id] for inputs in r.task_inputs.values() for i in inputs
                              if getattr(i, "id", None) in by_id} for r in runs}
    assert upstream["train"] == {"prepare-data"}
    assert upstream["sample"] == {"train"}
    assert upstream["evaluate"] == {"train", "sample"}
    assert upstream["report"] == {"train", "evaluate", "sample"}


def test_a_failing_stage_is_retried(tmp_path, prefect_harness, monkeypatch):
    import pipeline.sampling as sampling
    from flows.pipeline import pipeline_flow

    real, calls = sampling.sample, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("transient: object store unreachable")
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "sample", flaky)
    out = pipeline_flow(_cfg(tmp_path, "output.run_name=retry"))
    assert len(calls) == 2 and Path(out.report.markdown_path).exists()


def test_deleted_prepared_data_is_prepared_again(tmp_path, prefect_harness):
    import shutil

    from flows.pipeline import prepare_data

    cfg = _cfg(tmp_path, "output.run_name=gone")
    first = prepare_data(cfg)
    shutil.rmtree(first.path)
    again = prepare_data(cfg)
    assert again.path == first.path and (Path(again.path) / "meta.json").exists()
