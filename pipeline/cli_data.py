"""``boltzgan data prepare|info``: the prepare stage from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Prepare datasets (Hugging Face datasets, Arrow on disk).", no_args_is_help=True)
out_console = Console(soft_wrap=True)


@app.command()
def prepare(
    source: Annotated[str, typer.Argument(help="digits | idx:DIR | hf:NAME[:CONFIG] | imagefolder:DIR | "
                                               "parquet:PATH | disk:PATH | toy:ring8 | toy:grid25")],
    out: Annotated[Path, typer.Option(help="Directory for the prepared dataset (created; reused when the "
                                           "same spec was prepared there before).")],
    scale: Annotated[str, typer.Option(help="symmetric = pixels in [-1, 1] (GANs, EBMs); unit = [0, 1].")] = "symmetric",
    binarize: Annotated[str, typer.Option(help="none | threshold | stochastic: {0,1} pixels for Bernoulli "
                                               "models (threshold at --threshold, or a seeded Bernoulli draw).")] = "none",
    threshold: Annotated[float, typer.Option(help="Threshold on [0, 1] intensities for --binarize threshold.")] = 0.5,
    test_fraction: Annotated[float, typer.Option(help="Test share when the source has no test split.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, stochastic binarisation and toy data.")] = 0,
    image_size: Annotated[Optional[int], typer.Option(help="Resize images to N×N (with --resize).")] = None,
    resize: Annotated[str, typer.Option(help="refuse (fail on mixed sizes) | bilinear | nearest.")] = "refuse",
    channels: Annotated[str, typer.Option(help="keep | gray | rgb.")] = "keep",
    limit: Annotated[Optional[int], typer.Option(help="Keep only the first N training examples.")] = None,
    toy_samples: Annotated[int, typer.Option(help="Number of points for toy: sources.")] = 10_000,
) -> None:
    """Prepare SOURCE into --out: train/test splits, scaled or binarised images, metadata."""
    from pipeline.config import validate_config
    from pipeline.data import prepare as prepare_stage

    cfg = validate_config({"data": dict(source=source, scale=scale, binarize=binarize, threshold=threshold,
                                        test_fraction=test_fraction, seed=seed, image_size=image_size,
                                        resize=resize, channels=channels, limit=limit,
                                        toy_samples=toy_samples)}).data
    started = time.perf_counter()
    data = prepare_stage(cfg, out)
    m = data.meta
    state = "cached (same spec already prepared here)" if data.cached else "prepared"
    out_console.print(f"{state}: {m.n_train} train + {m.n_test} test, shape {tuple(m.shape)}, "
                      f"values in {list(m.value_range)}, binarize={m.binarize}, split: {m.split}\n"
                      f"-> {data.path}  ({time.perf_counter() - started:.1f} s)", highlight=False)


@app.command()
def info(directory: Path) -> None:
    """Print the metadata of a prepared dataset."""
    from pipeline.data import load_prepared

    out_console.print_json(load_prepared(directory).meta.model_dump_json())
