"""Prefect flows over the pipeline stages. Each task wraps one stage function one-to-one; the
logic stays in ``pipeline/``. Tasks pass paths and small dicts, never tensors, so inputs hash."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.tasks import exponential_backoff

from flows.artifacts import ProgressRelay, artifact_key, publish_epochs, publish_metrics, publish_report
from pipeline.config import DataConfig, EvaluateConfig, RunConfig, SampleConfig
from pipeline.errors import UserError


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only failures a second try may fix. A UserError (bad
    config or data, a refused file, a diverged run) is deterministic and fails at once, unless it
    says it is ``transient`` (a run or data directory busy with another process)."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(exc, UserError) or exc.transient


@task(name="prepare-data", cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(days=30),
      persist_result=True, retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient_failure)
def prepare_data_task(data: DataConfig, out_dir: str) -> str:
    """Prepare the dataset (cached: same spec and code ⇒ the stored path is returned)."""
    from pipeline.data import prepare

    prepared = prepare(data, out_dir)
    get_run_logger().info("data %s: %s (%d train, %d test)", "cached" if prepared.cached else "prepared",
                          prepared.path, prepared.meta.n_train, prepared.meta.n_test)
    return prepared.path


@task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=transient_failure)
def train_task(cfg: RunConfig, data_path: str) -> dict[str, Any]:
    """Train with resume=True: a retry or a re-run continues from the latest checkpoint."""
    from pipeline.data import load_prepared
    from pipeline.engine import train

    relay = ProgressRelay(artifact_key(cfg.run_name, "training"), f"Training {cfg.run_name}")
    result = train(cfg, load_prepared(data_path), resume=True, progress=relay)
    if result.skipped:
        get_run_logger().info("run %s already trained to epoch %d; skipped", cfg.run_name, result.epochs)
    from pipeline.artifacts import read_jsonl

    publish_epochs(artifact_key(cfg.run_name, "epochs"), read_jsonl(Path(result.run_dir) / "metrics.jsonl"))
    return {"run_dir": result.run_dir, "steps": result.steps, "epochs": result.epochs}


@task(name="sample", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient_failure)
def sample_task(run_dir: str, cfg: SampleConfig, run_name: str) -> dict[str, Any]:
    from pipeline.sampling import sample

    relay = ProgressRelay(artifact_key(run_name, "sampling"), f"Sampling {cfg.chains} chains × {cfg.steps} steps")
    result = sample(run_dir, cfg, progress=relay)
    get_run_logger().info("samples: %s; diagnostics: %s", result.path, result.diagnostics)
    return {"path": result.path, "diagnostics": result.diagnostics}


@task(name="evaluate", retries=1, retry_delay_seconds=5, retry_condition_fn=transient_failure)
def evaluate_task(run_dir: str, cfg: EvaluateConfig, run_name: str) -> list[dict[str, Any]]:
    from pipeline.evaluation import evaluate

    result = evaluate(run_dir, cfg)
    for r in result.results:
        get_run_logger().info("%s = %s (%s, %s samples) %s", r["metric"], r["value"], r["extractor"],
                              r["num_samples"], r["reason"])
    publish_metrics(artifact_key(run_name, "metrics"), result.results)
    return result.results


@task(name="report")
def report_task(run_dir: str, run_name: str) -> str:
    from pipeline.report import build_report

    report = build_report(run_dir)
    publish_report(artifact_key(run_name, "report"), report.markdown, report.figures)
    return report.markdown_path


def _data_dir(cfg: RunConfig) -> str:
    from pipeline.cli import default_data_dir

    return str(default_data_dir(cfg))


def _prepare(config: RunConfig) -> str:
    """The prepared data's path; a cache hit whose output was deleted since is prepared again."""
    path = prepare_data_task(config.data, _data_dir(config))
    if not (Path(path) / "meta.json").exists():
        get_run_logger().warning("cached prepared data %s is gone; preparing it again", path)
        path = prepare_data_task.with_options(refresh_cache=True)(config.data, _data_dir(config))
    return path


@flow(name="prepare-data")
def prepare_data(config: RunConfig) -> str:
    return _prepare(config)


@flow(name="train")
def train_flow(config: RunConfig) -> dict[str, Any]:
    return train_task(config, _prepare(config))


@flow(name="sample")
def sample_flow(run_dir: str, config: SampleConfig) -> dict[str, Any]:
    return sample_task(run_dir, config, Path(run_dir).name)


@flow(name="evaluate")
def evaluate_flow(run_dir: str, config: EvaluateConfig) -> list[dict[str, Any]]:
    return evaluate_task(run_dir, config, Path(run_dir).name)


@flow(name="report")
def report_flow(run_dir: str) -> str:
    return report_task(run_dir, Path(run_dir).name)


@flow(name="boltzgan-pipeline")
def pipeline(config: RunConfig) -> dict[str, Any]:
    """prepare → train → sample → evaluate → report for one RunConfig (a form in the Prefect UI)."""
    data_path = _prepare(config)
    trained = train_task(config, data_path)
    run_dir = trained["run_dir"]
    sample_task(run_dir, config.sample, config.run_name)
    metrics = evaluate_task(run_dir, config.evaluate, config.run_name)
    report = report_task(run_dir, config.run_name)
    return {"run_dir": run_dir, "report": report, "metrics": metrics}


@flow(name="boltzgan-preset")
def run_preset(preset: str = "demo", overrides: list[str] | None = None) -> dict[str, Any]:
    """The pipeline for a shipped preset plus ``section.key=value`` overrides (for deployments)."""
    from pipeline.config import load_config

    return pipeline(load_config(preset, overrides or []))
