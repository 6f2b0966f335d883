"""The report stage: a Markdown summary plus PNG figures of a run (samples, curves, MCMC traces).

It renders the typed results of the earlier stages (``EvalResult``, ``SampleSet``), handed to it by
the flow or read back from the run directory; numbers are never re-parsed from text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline import atomic  # noqa: E402
from pipeline.evaluation import EvalResult, density_path  # noqa: E402
from pipeline.evaluation.metrics import MetricResult  # noqa: E402
from pipeline.rundir import RunDir, SampleDir  # noqa: E402
from pipeline.sampling import SampleSet, load_samples  # noqa: E402


@dataclass
class Report:
    markdown_path: str
    markdown: str
    figures: dict[str, str] = field(default_factory=dict)  # name -> PNG path
    skipped: bool = False  # True when a re-run found it already built from the same inputs


def build_report(run_dir: str | Path | RunDir, evaluation: EvalResult | None = None,
                 samples: SampleSet | None = None, reuse: bool = False) -> Report:
    """Write ``report/`` of a run from the stages' results (read from the run when not given). With
    ``reuse``, a stored report built from the same model, sample and evaluation is returned as it is."""
    from pipeline.stage_keys import stage_key

    run = RunDir.at(run_dir)
    evaluation = evaluation if evaluation is not None else EvalResult.read(run)
    sample_dir = samples.dir if samples is not None else run.samples
    stored_sample = samples if samples is not None else SampleSet.read(sample_dir)
    key = stage_key(run, None, evaluation.key if evaluation else None,
                    stored_sample.key if stored_sample else None, len(run.epochs()))
    stored = run.read_report() if reuse else None
    if stored is not None and stored[1] == key:
        markdown, _, figures = stored
        return Report(str(run.report_path), markdown, figures, skipped=True)
    run.report_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    shown = load_samples(sample_dir, 64) if sample_dir.is_complete() else None
    if shown is not None:
        figures["samples"] = _save(_sample_figure(shown), run.figure_path("samples"))
    density = run.fetch(density_path(run))
    if density.exists():  # 2-D energies: the exactly normalised density beside the samples
        figures["density"] = _save(_density_figure(density, shown), run.figure_path("density"))
    epochs = run.epochs()
    if epochs:
        figures["curves"] = _save(_curves_figure(epochs), run.figure_path("curves"))
    diagnostics = sample_dir.read_diagnostics() if sample_dir.is_complete() else {}
    traces = _energy_traces(sample_dir)
    if traces is not None:
        figures["trace"] = _save(_trace_figure(traces, diagnostics), run.figure_path("trace"))
    for figure in figures.values():
        run.publish(figure)  # to output.storage, when the run has one
    text = _markdown(run, run.read_state(), evaluation, diagnostics, epochs, figures)
    shown_figures = {k: str(v) for k, v in figures.items()}
    path = run.write_report(text, key, shown_figures)
    return Report(str(path), text, shown_figures)


def _save(fig, path: Path) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _sample_figure(x: np.ndarray):
    if x.ndim == 2 and x.shape[1] == 2:  # 2-D toy points
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.6)
        ax.set_title(f"{len(x)} samples")
        ax.set_aspect("equal")
        return fig
    n = min(len(x), 64)
    side = int(np.ceil(np.sqrt(n)))
    imgs = x[:n]
    lo, hi = float(imgs.min()), float(imgs.max())
    fig, axes = plt.subplots(side, side, figsize=(side, side), squeeze=False)
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            img = (imgs[i] - lo) / max(hi - lo, 1e-8)
            img = img.reshape(-1)[None, None] if img.ndim == 1 else img
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def _density_figure(path: Path, samples: np.ndarray | None):
    """Samples (left) beside the model density exp(−E)/Z on the evaluation grid (right, log scale)."""
    with np.load(path) as f:
        xs, ys, log_p = f["xs"], f["ys"], f["log_p"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    if samples is not None and samples.ndim == 2 and samples.shape[1] == 2:
        left.scatter(samples[:, 0], samples[:, 1], s=4, alpha=0.6)
    left.set_title("samples", fontsize=9)
    left.set_xlim(extent[:2])
    left.set_ylim(extent[2:])
    im = right.imshow(np.maximum(log_p, log_p.max() - 20), origin="lower", extent=extent, cmap="viridis")
    right.set_title("log p_model (grid quadrature)", fontsize=9)
    fig.colorbar(im, ax=right, fraction=0.046)
    for ax in (left, right):
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def _curves_figure(epochs: list[dict[str, Any]]):
    keys = [k for k in epochs[0] if k not in ("epoch", "step", "epoch_seconds", "examples_per_sec")
            and isinstance(epochs[0][k], (int, float))][:8]
    cols = 2
    rows = max(1, int(np.ceil(len(keys) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(8, 2.4 * rows), squeeze=False)
    x = [e["epoch"] for e in epochs]
    for ax, key in zip(axes.ravel(), keys):
        ax.plot(x, [e.get(key, np.nan) for e in epochs], marker="o", ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _energy_traces(sample_dir: SampleDir) -> np.ndarray | None:
    if not sample_dir.blocks():
        return None
    return sample_dir.read_block(0, "energy")["energy"][:8]


def _trace_figure(traces: np.ndarray, diagnostics: dict[str, Any]):
    fig, ax = plt.subplots(figsize=(8, 3))
    for t in traces:
        ax.plot(t, lw=0.8)
    title = "energy traces (first chains)"
    d = diagnostics.get("energy", {})
    if d:
        title += f" — R̂ {d['rhat']:.3f}, bulk ESS {d['ess_bulk']:.0f}, tail ESS {d['ess_tail']:.0f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("(free) energy")
    fig.tight_layout()
    return fig


def fmt(v: Any) -> str:
    """A number as the report shows it (4 significant digits)."""
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _markdown(run: RunDir, state: dict[str, Any] | None, evaluation: EvalResult | None,
              diagnostics: dict[str, Any], epochs: list[dict[str, Any]], figures: dict[str, Path]) -> str:
    lines = [f"# Report: {run.name}", ""]
    if state:
        lines += [f"Trained for {state['epoch']} epochs ({state['step']} steps).", ""]
    if evaluation is not None:
        from pipeline.readings import fmt as rounded, readings

        notes = readings(evaluation.results)  # each quality number beside its reference, with a reading
        lines += ["## Metrics", ""]
        lines += [f"**{n.metric}** {rounded(n.value)} vs {n.reference}: {n.reading}.  " for n in notes.values()]
        lines += ["", "| metric | value | features / method | samples | real | note |",
                  "|---|---:|---|---:|---:|---|"]
        lines += [_metric_row(r) for r in evaluation.results]
        lines.append("")
    e = diagnostics.get("energy", {})
    if e:
        lines += ["## MCMC diagnostics (energy traces, all chains)", "",
                  f"R̂ {e['rhat']:.4f} · bulk ESS {e['ess_bulk']:.0f} · tail ESS {e['ess_tail']:.0f} · "
                  f"{e['chains']} chains × {e['draws']} draws", ""]
    if epochs:
        last = epochs[-1]
        lines += ["## Last epoch", "", "| " + " | ".join(last) + " |", "|" + "---|" * len(last),
                  "| " + " | ".join(fmt(v) for v in last.values()) + " |", ""]
    for name, path in figures.items():
        lines += [f"![{name}]({Path(path).name})", ""]
    return "\n".join(lines)


def _metric_row(r: MetricResult) -> str:
    return (f"| {r.metric} | {fmt(r.value)} | {r.extractor} | {r.num_samples} | {r.num_real or '—'} | "
            f"{r.note()} |")
