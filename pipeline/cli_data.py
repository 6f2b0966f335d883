"""``boltzgan data prepare|info``: the prepare stage from the command line.

Options mirror :class:`pipeline.config.DataConfig` (choices and defaults are read from it, so the
two cannot drift apart). User errors print ``error: <one paragraph>`` and exit with code 2.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.config import DataConfig
from pipeline.errors import UserError

app = typer.Typer(help="Prepare datasets (Hugging Face datasets, Arrow files on disk) and inspect them.",
                  no_args_is_help=True)

_FIELDS = DataConfig.model_fields


def _default(name: str):
    return _FIELDS[name].default


# The Literal types of DataConfig, so --help lists the same choices the config accepts.
Scale = _FIELDS["scale"].annotation
Binarize = _FIELDS["binarize"].annotation
Resize = _FIELDS["resize"].annotation
Channels = _FIELDS["channels"].annotation
BadImages = _FIELDS["bad_images"].annotation


@contextmanager
def _user_errors() -> Iterator[None]:
    """One paragraph on stderr and exit code 2 instead of a traceback."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def prepare(
    source: Annotated[str, typer.Argument(
        help="digits (scikit-learn 8×8) | idx:DIR (MNIST-format files, .gz or raw) | hf:NAME[:CONFIG] (Hub, its "
             "cache, or a local dataset folder) | imagefolder:DIR | parquet:PATH | disk:PATH (save_to_disk) | "
             "toy:ring8 | toy:grid25", show_default=False)],
    out: Annotated[Path, typer.Option(
        help="Directory for the prepared dataset: created if absent, reused when it holds the same spec, "
             "refused when it holds anything else.", show_default=False)],
    scale: Annotated[Scale, typer.Option(
        help="Pixel range: symmetric = [-1, 1] (GANs, EBMs), unit = [0, 1]. "
                                          "Ignored when binarising.")] = _default("scale"),
    binarize: Annotated[Binarize, typer.Option(
        help="{0,1} pixels for Bernoulli models: threshold = 1 where the [0, 1] "
                                             "intensity > --threshold; stochastic = one seeded Bernoulli(intensity) "
                                             "draw.")] = _default("binarize"),
    threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Threshold on [0, 1] intensities for --binarize threshold.")] = _default("threshold"),
    test_fraction: Annotated[float, typer.Option(
        help="Share of examples held out for test when the source has no test split (digits, imagefolder, ...).")
    ] = _default("test_fraction"),
    seed: Annotated[int, typer.Option(
        help="Seed of the random train/test split, of --binarize stochastic and of toy: points.")] = _default("seed"),
    image_size: Annotated[Optional[int], typer.Option(
        help="Bring every image to N×N (needs --resize bilinear|nearest when sizes differ).", show_default=False)
    ] = _default("image_size"),
    resize: Annotated[Resize, typer.Option(
        help="What to do with images of another size than --image-size (or the first "
                                           "image): refuse = stop with an error, bilinear, nearest.")
    ] = _default("resize"),
    channels: Annotated[Channels, typer.Option(
        help="keep the source's channels, gray (BT.601 luma) or rgb (gray repeated).")
    ] = _default("channels"),
    limit: Annotated[Optional[int], typer.Option(
        help="Keep only the first N training examples (quick runs); the test split is kept whole.",
        show_default=False)] = _default("limit"),
    toy_samples: Annotated[int, typer.Option(
        help="Number of points drawn for toy: sources.")] = _default("toy_samples"),
    bad_images: Annotated[BadImages, typer.Option(
        help="An image file that cannot be decoded: refuse = stop and name it, skip = leave it out with a "
             "warning.")] = _default("bad_images"),
) -> None:
    """Prepare SOURCE into --out: train/test splits, scaled or binarised images, meta.json."""
    from pipeline.config import validate_config
    from pipeline.data import prepare as prepare_stage

    started = time.perf_counter()
    with _user_errors():
        cfg = validate_config({"data": {"source": source, "scale": scale, "binarize": binarize,
                                        "threshold": threshold, "test_fraction": test_fraction, "seed": seed,
                                        "image_size": image_size, "resize": resize, "channels": channels,
                                        "limit": limit, "toy_samples": toy_samples,
                                        "bad_images": bad_images}}).data
        data = prepare_stage(cfg, out)
    m = data.meta
    state = "cached (this spec was already prepared there)" if data.cached else "prepared"
    lo, hi = m.value_range
    values = f"binarised ({m.binarize})" if m.binarize != "none" else f"values in [{lo:g}, {hi:g}]"
    typer.echo(f"{state}: {m.n_train:,} train + {m.n_test:,} test, shape {tuple(m.shape)}, {values}, "
               f"split: {m.split}{f', resized: {m.resize}' if m.resize else ''}\n"
               f"  -> {data.path}  ({time.perf_counter() - started:.1f} s)")


@app.command()
def info(directory: Annotated[Path, typer.Argument(help="A directory written by `data prepare`.")]) -> None:
    """Print the metadata (meta.json) of a prepared dataset."""
    from pipeline.data import load_prepared

    with _user_errors():
        meta = load_prepared(directory).meta
    typer.echo(meta.model_dump_json(indent=2))


if __name__ == "__main__":
    app()
