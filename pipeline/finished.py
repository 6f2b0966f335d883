"""Is a stage's output already complete for exactly these inputs?

Each stage after training records a *key* in the file that marks its output complete (the sample
manifest, eval/metrics.json): a hash of its configuration and of the files it read (the trained
``model.pt``, the sample manifest). A re-run with the same key returns the stored output instead of
recomputing it, so re-running a finished flow skips every finished stage, while a retrained model or
a changed setting invalidates exactly the stages downstream of it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KEY = "stage_key"


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stage_key(**inputs: Any) -> str:
    """A stable hash of JSON-able inputs (configs as dumps, files as digests)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recorded_key(marker: str | Path) -> str | None:
    """The key stored in a stage's completion marker (a JSON object), or None."""
    path = Path(marker)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get(KEY) if isinstance(data, dict) else None
