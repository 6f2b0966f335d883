"""What a downstream stage's output was made from, so that a re-run of a finished pipeline can skip it.

Every stage after training records a key beside its output: a hash of the exported model's bytes
(its ``model.pt.sha256``), the stage's own config section and the keys of the outputs it consumed.
A flow re-run (``reuse=True``) whose key matches the stored one returns the stored result instead of
recomputing it; anything that changes the model (more epochs, a new training), a setting of the stage,
or an upstream output (a new sample) changes the key, and the stage runs again. The stage commands of
the CLI recompute unconditionally: a person who asks for a stage gets it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from pipeline.rundir import RunDir


def stage_key(run: RunDir, section: BaseModel | None, *upstream: str | None) -> str:
    """The key of a stage of ``run`` configured by ``section`` that consumed the ``upstream`` keys."""
    parts: list[Any] = [run.model_digest(), section.model_dump(mode="json") if section is not None else None,
                        list(upstream)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
