"""The report stage: a Markdown summary plus PNG figures of a run (samples, curves, MCMC traces)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline import artifacts  # noqa: E402


@dataclass
class Report:
    markdown_path: str
    markdown: str
    figures: dict[str, str] = field(default_factory=dict)  # name -> PNG path


def build_report(run_dir: str | Path) -> Report:
    run_dir = Path(run_dir)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    samples = _samples(run_dir)
    if samples is not None:
        figures["samples"] = _save(_sample_figure(samples), out / "samples.png")
    density = run_dir / "eval" / "density.npz"
    if density.exists():  # 2-D energies: the exactly normalised density beside the samples
        figures["density"] = _save(_density_figure(density, samples), out / "density.png")
    epochs = artifacts.read_jsonl(run_dir / "metrics.jsonl")
    if epochs:
        figures["curves"] = _save(_curves_figure(epochs), out / "curves.png")
    traces = _energy_traces(run_dir)
    if traces is not None:
        figures["trace"] = _save(_trace_figure(traces, run_dir), out / "trace.png")
    text = _markdown(run_dir, epochs, figures)
    path = artifacts.write_text(out / "report.md", text)
    return Report(str(path), text, {k: str(v) for k, v in figures.items()})


def _samples(run_dir: Path) -> np.ndarray | None:
    from pipeline.sampling import load_samples

    if (run_dir / "samples" / "manifest.json").exists():
        return load_samples(run_dir, 64)
    return None


def _save(fig, path: Path) -> Path:
    with artifacts.atomic_path(path) as tmp:
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
    fig, axes = plt.subplots(side, side, figsize=(side, side))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            img = (imgs[i] - lo) / max(hi - lo, 1e-8)
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


def _energy_traces(run_dir: Path) -> np.ndarray | None:
    files = sorted((run_dir / "samples").glob("block-*.npz"))
    if not files:
        return None
    with np.load(files[0]) as f:
        return f["energy"][:8]


def _trace_figure(traces: np.ndarray, run_dir: Path):
    fig, ax = plt.subplots(figsize=(8, 3))
    for t in traces:
        ax.plot(t, lw=0.8)
    diag = run_dir / "samples" / "diagnostics.json"
    title = "energy traces (first chains)"
    if diag.exists():
        d = json.loads(diag.read_text()).get("energy", {})
        if d:
            title += f" — R̂ {d['rhat']:.3f}, bulk ESS {d['ess_bulk']:.0f}, tail ESS {d['ess_tail']:.0f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("(free) energy")
    fig.tight_layout()
    return fig


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _markdown(run_dir: Path, epochs: list[dict[str, Any]], figures: dict[str, Path]) -> str:
    lines = [f"# Report: {run_dir.name}", ""]
    state = run_dir / "state.json"
    if state.exists():
        s = json.loads(state.read_text())
        lines += [f"Trained for {s['epoch']} epochs ({s['step']} steps).", ""]
    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.exists():
        lines += ["## Metrics", "", "| metric | value | features / method | samples | real | note |",
                  "|---|---:|---|---:|---:|---|"]
        for r in json.loads(metrics_path.read_text())["results"]:
            note = r["reason"] if not r["available"] else _extra_note(r)
            lines.append(f"| {r['metric']} | {_fmt(r['value'])} | {r['extractor']} | {r['num_samples']} | "
                         f"{r['num_real'] or '—'} | {note} |")
        lines.append("")
    diag = run_dir / "samples" / "diagnostics.json"
    if diag.exists():
        d = json.loads(diag.read_text())
        e = d.get("energy", {})
        if e:
            lines += ["## MCMC diagnostics (energy traces, all chains)", "",
                      f"R̂ {e['rhat']:.4f} · bulk ESS {e['ess_bulk']:.0f} · tail ESS {e['ess_tail']:.0f} · "
                      f"{e['chains']} chains × {e['draws']} draws", ""]
    if epochs:
        last = epochs[-1]
        lines += ["## Last epoch", "", "| " + " | ".join(last) + " |", "|" + "---|" * len(last),
                  "| " + " | ".join(_fmt(v) for v in last.values()) + " |", ""]
    for name, path in figures.items():
        lines += [f"![{name}]({Path(path).name})", ""]
    return "\n".join(lines)


def _extra_note(r: dict[str, Any]) -> str:
    extra = r.get("extra") or {}
    if "std" in extra:
        return f"± {extra['std']:.3g}"
    if "log_z_reverse" in extra:
        return (f"log Ẑ {extra['log_z']:.3f} (forward) ≤ {extra['log_z_reverse']:.3f} (reverse); "
                f"grid {extra['log_z_grid']:.3f}")
    if "quadrature_error" in extra:
        return f"log Z {extra['log_z']:.3f} ± {extra['quadrature_error']:.1e} (grid)"
    if "log_likelihood_lower" in extra:
        return f"bounds [{extra['log_likelihood_lower']:.2f}, {extra['log_likelihood_upper']:.2f}], log Ẑ {extra['log_z']:.2f}"
    if "log_z" in extra:
        return f"log Z {extra['log_z']:.2f}"
    if "sample_init" in extra:
        return f"{extra['sampler']} chains from {extra['sample_init']}, {extra.get('chain_steps', '?')} steps"
    return extra.get("meaning", "")
