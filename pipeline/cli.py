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
          data_dir: Annotated[Optional[Path], typer.Option(help="Use this prepared-data directory.")] = None) -> None:
    """Prepare the data (cached) and train PRESET with Ray Train + Accelerate."""
    from pipeline.data import load_prepared, prepare
    from pipeline.engine import train as train_stage
    from pipeline.progress import RichProgress

    cfg = _config(preset, set_)
    data = load_prepared(data_dir) if data_dir else prepare(cfg.data, default_data_dir(cfg))
    console.print(f"data: {data.path} ({'cached' if data.cached else 'prepared'})")
    with RichProgress(console, "training") as bar:
        result = train_stage(cfg, data, resume=resume, progress=bar.update)
    console.print(f"[bold]done[/]: {result.steps} steps, {result.epochs} epochs; model: {result.model_path}")
    console.print(f"checkpoint: {result.checkpoint}; continue with: boltzgan train {preset} --resume")


def default_data_dir(cfg) -> Path:
    """Where a run's prepared data lives unless ``data.dir`` says otherwise."""
    if cfg.data.dir:
        return Path(cfg.data.dir)
    return Path(cfg.output.root).expanduser().resolve() / "data" / f"{_slug(cfg.data.source)}-{cfg.fingerprint('data')}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:40]


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
