"""Progress display in the driver (Ray workers render progress bars badly, so they only report)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RichProgress:
    """A context manager whose ``update(event)`` consumes engine/sampler progress events."""

    def __init__(self, console: Console, label: str):
        self.console = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, transient=False)
        self.task = self.progress.add_task(label, total=None, info="")

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if "total" in event:
            self.progress.update(self.task, total=event["total"])
        if "step" in event:
            self.progress.update(self.task, completed=event["step"])
        if "done" in event:
            self.progress.update(self.task, completed=event["done"])
        metrics = event.get("metrics", {})
        if kind == "epoch":
            shown = "  ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:6])
            self.console.print(f"epoch {event['epoch']}: {shown}", highlight=False)
        elif kind == "worker":
            self.console.print(f"worker {event['rank']}/{event['world']} on node {event['node'][:8]} "
                               f"({event['device']})", highlight=False)
        elif kind in {"restart", "diverged", "warning"}:
            self.console.print(f"[yellow]{event['message']}[/]")
        elif metrics:
            self.progress.update(self.task, info=" ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:3]))
