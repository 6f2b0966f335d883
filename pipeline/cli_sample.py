"""``boltzgan sample RUN_DIR``: the sampling stage from the command line (mounted by ``pipeline.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.config import SampleConfig


def sample_config(run_dir: Path, options: dict[str, int | None], overrides: list[str] | None) -> SampleConfig:
    """The run's ``sample`` section with ``--set`` overrides, then the named options on top.

    Options become ``sample.KEY=VALUE`` overrides so that bad values are reported like any config
    error (the key, the value, the fix).
    """
    from pipeline.rundir import RunDir

    run = RunDir.at(str(run_dir))
    if not run.has_config():
        raise UserError(f"sample: {run_dir} is not a run directory (no saved config); pass the directory of a "
                        f"trained run (runs/<name>), e.g. `boltzgan sample runs/demo`")
    named = [f"sample.{k}={v}" for k, v in options.items() if v is not None]
    return run.read_config([*(overrides or []), *named]).sample


def sample_cmd(
    run_dir: Annotated[str, typer.Argument(help="A trained run directory (<output.root>/<run name>), or the "
                                                "run's folder in output.storage (s3://bucket/prefix/RUN).")],
    chains: Annotated[Optional[int], typer.Option(help="Number of chains.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Transitions per chain.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Ray workers (0 = in this process).")] = None,
    burn_in: Annotated[Optional[int], typer.Option(help="Transitions discarded at the start of each chain.")] = None,
    thin: Annotated[Optional[int], typer.Option(help="Keep every THIN-th draw after burn-in.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the whole sample (any worker count).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a value of the run's config, e.g. --set sample.chains_per_block=100")] = None,
) -> None:
    """Run MCMC chains of a trained run in parallel; writes RUN_DIR/samples and diagnostics."""
    from rich.console import Console

    from pipeline.progress import RichProgress
    from pipeline.sampling import sample

    console = Console(stderr=True, soft_wrap=True)
    cfg = sample_config(run_dir, dict(chains=chains, steps=steps, workers=workers, burn_in=burn_in, thin=thin,
                                      seed=seed), set_)
    from pipeline.watchdog import guard_children

    guard_children()  # Ray processes started for the chains die with this command
    with RichProgress(console, "sampling") as bar:
        result = sample(run_dir, cfg, progress=bar.update)
    console.print(f"samples: {result.path} ({result.chains} chains × {result.draws_per_chain} draws, "
                  f"{result.seconds:.1f} s)", highlight=False)
    energy = result.diagnostics.get("energy", {})
    if energy:
        console.print(f"energy trace: R-hat {energy['rhat']:.3f}, bulk ESS {energy['ess_bulk']:.0f}, "
                      f"tail ESS {energy['ess_tail']:.0f} over {energy['chains']} chains", highlight=False)
        if energy["rhat"] > 1.01:  # the threshold Vehtari et al. (2021) recommend
            console.print("[yellow]R-hat > 1.01: the chains disagree; raise --steps/--burn-in before trusting "
                          "the sample[/]")
    if "acceptance_rate" in result.diagnostics:
        acc = result.diagnostics["acceptance_rate"]
        console.print(f"acceptance rate after burn-in: {acc['mean']:.3f} (chains {acc['min']:.3f}–{acc['max']:.3f})",
                      highlight=False)
    if "step_size" in result.diagnostics:
        console.print(f"adapted step size: {result.diagnostics['step_size']['mean']:.3g}", highlight=False)
