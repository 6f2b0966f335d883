"""The ``boltzgan`` command line. Each command calls one stage function (or the Prefect flow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import UserError

app = typer.Typer(help="boltzgan: train, sample and evaluate GANs, Boltzmann machines and EBMs.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
config_app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(stderr=True, soft_wrap=True)

SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a config value: section.key=value (repeatable), e.g. --set train.epochs=3")]


def _config(preset: str, overrides: list[str] | None):
    from pipeline.config import load_config

    return load_config(preset, overrides or [])


@app.command()
def presets() -> None:
    """List the presets shipped with boltzgan."""
    from pipeline.config import list_presets

    table = Table("preset", "description")
    for name, desc in list_presets().items():
        table.add_row(name, desc)
    Console().print(table)


@config_app.command("show")
def config_show(preset: str, set_: SetOpt = None) -> None:
    """Print the merged configuration of PRESET (with --set overrides applied) as YAML."""
    print(_config(preset, set_).to_yaml(), end="")


@app.command()
def train(preset: str, set_: SetOpt = None,
          resume: Annotated[bool, typer.Option(help="Continue the run from its latest checkpoint.")] = False,
          restart: Annotated[bool, typer.Option(
              help="With --resume: start again at epoch 1 when the run has no valid checkpoint.")] = False,
          data_dir: Annotated[Optional[Path], typer.Option(help="Use this prepared-data directory.")] = None) -> None:
    """Prepare the data (cached) and train PRESET with Ray Train + Accelerate."""
    from pipeline.data import load_prepared, prepare
    from pipeline.engine import train as train_stage
    from pipeline.progress import RichProgress
    from pipeline.rundir import data_dir as default_data_dir

    cfg = _config(preset, set_)
    _guard()
    data = load_prepared(data_dir) if data_dir else prepare(cfg.data, default_data_dir(cfg))
    console.print(f"data: {data.path} ({'cached' if data.cached else 'prepared'})")
    with RichProgress(console, "training") as bar:
        result = train_stage(cfg, data, resume=resume, progress=bar.update, restart=restart)
    console.print(f"[bold]done[/]: {result.steps} steps, {result.epochs} epochs; model: {result.model_path}")
    console.print(f"checkpoint: {result.checkpoint}; continue with: boltzgan train {preset} --resume")


@app.command()
def run(preset: str, set_: SetOpt = None) -> None:
    """Run the whole pipeline (prepare → train → sample → evaluate → report) as a Prefect flow.

    With no PREFECT_API_URL, Prefect starts an embedded server for the run; with it set, the run
    shows up in that server's UI. Ray starts locally unless resources.ray_address is set.
    """
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry (offline clusters)
    from flows.pipeline import pipeline_flow
    from pipeline.rundir import RunDir

    cfg = _config(preset, set_)
    _guard()
    console.print(f"running {preset} → {RunDir.of(cfg)}")
    out = pipeline_flow(cfg)
    from pipeline.readings import summary_lines

    console.print(f"[bold]report[/]: {out.report.markdown_path}")
    for line in summary_lines(out.evaluation.results):  # rounded, each beside its reference, with a reading
        console.print(f"  {line}", highlight=False)
    if os.environ.get("PREFECT_API_URL"):
        console.print(f"Prefect UI: {os.environ['PREFECT_API_URL'].removesuffix('/api')} (flow run 'boltzgan-pipeline')")
    else:
        console.print("This run used Prefect's embedded server (no UI). To watch runs in the UI: "
                      "`prefect server start`, then `export PREFECT_API_URL=http://127.0.0.1:4200/api` "
                      "and run again; open http://127.0.0.1:4200.")


def _sample_command() -> None:
    from pipeline.cli_sample import sample_cmd

    app.command("sample")(sample_cmd)


_sample_command()


@app.command()
def evaluate(run_dir: str, set_: SetOpt = None) -> None:
    """Compute FID/KID/IS (named features), likelihoods and toy metrics; writes RUN_DIR/eval/metrics.json.
    RUN_DIR may be the run's folder in output.storage (s3://bucket/prefix/RUN)."""
    from pipeline.evaluation import evaluate as evaluate_stage
    from pipeline.rundir import RunDir

    run = RunDir.at(run_dir)
    cfg = run.read_config(set_).evaluate
    _guard()
    result = evaluate_stage(run, cfg)
    from pipeline.readings import fmt, readings

    table = Table("metric", "value", "features / method", "samples", "note")
    for r in result.results:
        table.add_row(r.metric, fmt(r.value), r.extractor, str(r.num_samples), r.note())
    Console().print(table)
    for note in readings(result.results).values():  # each quality number beside its reference
        console.print(f"{note.metric} {fmt(note.value)} vs {note.reference}: {note.reading}", highlight=False)
    console.print(f"written: {result.path}")


@app.command()
def report(run_dir: str) -> None:
    """Write RUN_DIR/report/report.md with sample grid, training curves and MCMC trace figures.
    RUN_DIR may be the run's folder in output.storage (s3://bucket/prefix/RUN)."""
    from pipeline.report import build_report
    from pipeline.rundir import RunDir

    result = build_report(RunDir.at(run_dir))
    console.print(f"report: {result.markdown_path}; figures: {', '.join(result.figures.values()) or 'none'}")


@app.command()
def deploy(preset: str, set_: SetOpt = None,
           cron: Annotated[Optional[str], typer.Option(help="Cron schedule, e.g. '0 2 * * *'.")] = None,
           name: Annotated[Optional[str], typer.Option(help="Deployment name (default: the preset).")] = None) -> None:
    """Serve PRESET as a Prefect deployment from this process (optionally on a cron schedule).

    Needs PREFECT_API_URL pointing at a running server (`prefect server start`). For work pools
    and workers on a cluster use `prefect deploy --all` with prefect.yaml instead.
    """
    import os

    from flows.pipeline import run_preset

    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("deploy: PREFECT_API_URL is not set; start a server (`prefect server start`) and "
                        "export PREFECT_API_URL=http://127.0.0.1:4200/api first")
    _config(preset, set_)  # validate before serving
    run_preset.serve(name=name or preset, cron=cron, parameters={"preset": preset, "overrides": set_ or []})


def _guard() -> None:
    """Ray and Prefect processes this command starts die with it, even on SIGKILL (pipeline.watchdog)."""
    from pipeline.watchdog import guard_children

    guard_children()


def _mount_optional() -> None:
    """Sub-commands owned by other modules (data, sample, evaluate, report, run, deploy)."""
    from pipeline.cli_data import app as data_app

    app.add_typer(data_app, name="data")


def main() -> None:
    """Console-script entry: user errors are printed as one paragraph with exit code 2."""
    try:
        _mount_optional()
        app()
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
