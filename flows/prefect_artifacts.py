"""Prefect artifacts for a run: progress bars, metric tables and the report with its figures.

Keys must be lowercase letters, digits and dashes for the artifact to appear on the Artifacts page.
Images are embedded in Markdown as data URIs because ``create_image_artifact`` takes only a URL,
and a run's files are usually not served over HTTP.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from pipeline.evaluation.metrics import MetricResult


def artifact_key(*parts: str) -> str:
    """A valid artifact key from free text (lowercase, digits, dashes)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")[:100]


class ProgressRelay:
    """Turns engine/sampler progress events into a Prefect progress artifact and log lines.

    Updates are throttled (at most one per ``every`` seconds) so a fast loop does not flood the API.
    """

    def __init__(self, key: str, description: str, every: float = 2.0):
        self.logger = get_run_logger()
        self.artifact_id = create_progress_artifact(0.0, key=key, description=description)
        self.every = every
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "epoch":
            shown = ", ".join(f"{k}={v:.4g}" for k, v in event.get("metrics", {}).items())
            self.logger.info("epoch %s (step %s/%s): %s", event["epoch"], event["step"], event["total"], shown)
        elif kind == "worker":
            self.logger.info("worker %s/%s on node %s (%s)", event["rank"], event["world"], event["node"][:8],
                             event["device"])
        elif kind in ("restart", "diverged"):
            self.logger.warning(event["message"])
        done = event.get("step", event.get("done"))
        total = event.get("total")
        now = time.monotonic()
        if done is not None and total and (now - self.last >= self.every or done >= total):
            self.last = now
            update_progress_artifact(self.artifact_id, 100.0 * done / total)


def publish_epochs(key: str, epochs: list[dict[str, Any]]) -> None:
    if epochs:
        rows = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in e.items()} for e in epochs]
        create_table_artifact(rows, key=key, description="Per-epoch training metrics")


def publish_metrics(key: str, results: list[MetricResult]) -> None:
    rows = [{"metric": r.metric, "value": r.value, "features/method": r.extractor,
             "samples": r.num_samples, "note": r.note()} for r in results]
    create_table_artifact(rows, key=key, description="Evaluation metrics")


def publish_report(key: str, markdown: str, figures: dict[str, str]) -> None:
    """The report's Markdown with each figure inlined as a base64 PNG."""
    text = markdown
    for name, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        text = text.replace(f"]({Path(path).name})", f"](data:image/png;base64,{data})")
    create_markdown_artifact(text, key=key, description="Run report (metrics, samples, curves, traces)")
