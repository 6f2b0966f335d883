"""Prefect flows over the pipeline stages. Each task wraps one stage function one-to-one; the
logic stays in ``pipeline/``. Tasks hand each other the stages' typed results (dataclasses of
paths and numbers, which hash and persist), so Prefect records prepare → train → sample →
evaluate → report as dependencies of one another.

No ``from __future__ import annotations`` here: a served or worker-run deployment re-creates the
flow functions in a fresh process (cloudpickle by value, or loading this file from source), where
string annotations such as ``"RunConfig"`` cannot be resolved and parameter validation fails
(``PipelineModel is not fully defined``). Real annotations carry the classes themselves;
tests/flows/test_flow_signatures.py keeps it that way.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.tasks import exponential_backoff

from flows.prefect_artifacts import ProgressRelay, artifact_key, publish_epochs, publish_metrics, publish_report
from pipeline.config import DataConfig, EvaluateConfig, RunConfig, SampleConfig
from pipeline.errors import UserError
from pipeline.data import PreparedData
from pipeline.engine import TrainResult
from pipeline.evaluation import EvalResult, check_before_training
from pipeline.report import Report
from pipeline.rundir import RunDir, data_dir
from pipeline.sampling import SampleSet


@dataclass
class PipelineResult:
    """Everything one pipeline run produced, stage by stage."""

    run_dir: str
    data: PreparedData
    trained: TrainResult
    samples: SampleSet
    evaluation: EvalResult
    report: Report


def _pipeline_logs_to_prefect() -> None:
    """Warnings of ``pipeline.*`` (e.g. a skipped corrupt checkpoint, workers' warnings relayed by the
    driver) go to the terminal and the flow-run log, as ``PREFECT_LOGGING_EXTRA_LOGGERS=pipeline`` would."""
    target = logging.getLogger("pipeline")
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in target.handlers:
            target.addHandler(handler)


_pipeline_logs_to_prefect()


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only failures a second try may fix. A UserError (bad
    config or data, a refused file, a diverged run) is deterministic and fails at once, unless it
    says it is ``transient`` (a run or data directory busy with another process)."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(exc, UserError) or exc.transient


@task(name="prepare-data", cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(days=30),
      persist_result=True, retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient_failure)
def prepare_data_task(data: DataConfig, out_dir: str) -> PreparedData:
    """Prepare the dataset (cached: same spec and code ⇒ the stored result is returned)."""
    from pipeline.data import prepare

    prepared = prepare(data, out_dir)
    get_run_logger().info("data %s: %s (%d train, %d test)", "cached" if prepared.cached else "prepared",
                          prepared.path, prepared.meta.n_train, prepared.meta.n_test)
    return prepared


@task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=transient_failure)
def train_task(cfg: RunConfig, data: PreparedData) -> TrainResult:
    """Train with resume=True: a retry or a re-run continues from the latest checkpoint."""
    from pipeline.engine import train

    relay = ProgressRelay(artifact_key(cfg.run_name, "training"), f"Training {cfg.run_name}")
    result = train(cfg, data, resume=True, progress=relay)
    if result.skipped:
        get_run_logger().info("run %s already trained to epoch %d; skipped", cfg.run_name, result.epochs)
    publish_epochs(artifact_key(cfg.run_name, "epochs"), RunDir(Path(result.run_dir)).epochs())
    return result


@task(name="sample", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient_failure)
def sample_task(trained: TrainResult, cfg: SampleConfig) -> SampleSet:
    from pipeline.sampling import sample

    name = Path(trained.run_dir).name
    relay = ProgressRelay(artifact_key(name, "sampling"), f"Sampling {cfg.chains} chains × {cfg.steps} steps")
    result = sample(trained.run_dir, cfg, progress=relay, reuse=True)
    from pipeline.readings import rounded

    if result.skipped:
        get_run_logger().info("samples of this model with these settings exist (%s); skipped", result.path)
    get_run_logger().info("samples: %s; diagnostics: %s", result.path, rounded(result.diagnostics))
    return result


@task(name="evaluate", retries=1, retry_delay_seconds=5, retry_condition_fn=transient_failure)
def evaluate_task(trained: TrainResult, samples: SampleSet | None, cfg: EvaluateConfig) -> EvalResult:
    """Score ``samples`` (the sample task's output); without it, the run's own sample. Like every
    stage after training, it is skipped when its stored output was made from the same inputs."""
    from pipeline.evaluation import evaluate

    result = evaluate(trained.run_dir, cfg, samples, reuse=True)
    from pipeline.readings import summary_lines

    if result.skipped:
        get_run_logger().info("this sample was already evaluated with these settings (%s); skipped", result.path)
    for line in summary_lines(result.results):
        get_run_logger().info(line)
    publish_metrics(artifact_key(Path(trained.run_dir).name, "metrics"), result.results)
    return result


@task(name="report")
def report_task(trained: TrainResult, evaluation: EvalResult | None, samples: SampleSet | None) -> Report:
    from pipeline.report import build_report

    report = build_report(trained.run_dir, evaluation, samples, reuse=True)
    if report.skipped:
        get_run_logger().info("the report of these results exists (%s); skipped", report.markdown_path)
    publish_report(artifact_key(Path(trained.run_dir).name, "report"), report.markdown, report.figures)
    return report


def _prepare(config: RunConfig) -> PreparedData:
    """The prepared data; a cache hit whose output was deleted since is prepared again."""
    from pipeline.data.meta import is_prepared

    out_dir = str(data_dir(config))
    prepared = prepare_data_task(config.data, out_dir)
    if not is_prepared(Path(prepared.path)):
        get_run_logger().warning("cached prepared data %s is gone; preparing it again", prepared.path)
        prepared = prepare_data_task.with_options(refresh_cache=True)(config.data, out_dir)
    return prepared


@flow(name="prepare-data")
def prepare_data(config: RunConfig) -> PreparedData:
    return _prepare(config)


@flow(name="train")
def train_flow(config: RunConfig) -> TrainResult:
    return train_task(config, _prepare(config))


@flow(name="sample")
def sample_flow(run_dir: str, config: SampleConfig) -> SampleSet:
    return sample_task(TrainResult.of_run(run_dir), config)


@flow(name="evaluate")
def evaluate_flow(run_dir: str, config: EvaluateConfig) -> EvalResult:
    return evaluate_task(TrainResult.of_run(run_dir), None, config)


@flow(name="report")
def report_flow(run_dir: str) -> Report:
    return report_task(TrainResult.of_run(run_dir), None, None)


@flow(name="boltzgan-pipeline")
def pipeline_flow(config: RunConfig) -> PipelineResult:
    """prepare → train → sample → evaluate → report for one RunConfig (a form in the Prefect UI)."""
    check_before_training(config)
    data = _prepare(config)
    trained = train_task(config, data)
    samples = sample_task(trained, config.sample)
    evaluation = evaluate_task(trained, samples, config.evaluate)
    report = report_task(trained, evaluation, samples)
    return PipelineResult(trained.run_dir, data, trained, samples, evaluation, report)


@flow(name="boltzgan-preset")
def run_preset(preset: str = "demo", overrides: list[str] | None = None) -> PipelineResult:
    """The pipeline for a shipped preset plus ``section.key=value`` overrides (for deployments)."""
    from pipeline.config import load_config

    return pipeline_flow(load_config(preset, overrides or []))
