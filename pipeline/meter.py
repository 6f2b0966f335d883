"""Step metrics kept on the device and read back rarely, with the divergence check riding along.

A recipe's ``train_step`` returns 0-d tensors; :class:`StepMeter` sums them where they live and
:meth:`StepMeter.read` turns everything into Python numbers with one host synchronisation (one
``tolist``). The non-finite check and the recipes' declared guards (``Recipe.metric_limits``)
are computed on the device first, and under DDP their flags are summed across workers in the same
read (one small all-reduce), so every worker stops at the same step when any of them diverged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Reading:
    """What one read-back found: epoch means so far, the latest step's values, any divergence."""

    means: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


class StepMeter:
    """Per-epoch sums of step metrics on ``device`` (Python numbers are summed on the host)."""

    def __init__(self, device: torch.device, limits: dict[str, tuple[float, str]] | None = None):
        self.device = device
        self.limits = dict(limits or {})
        self.sums: dict[str, Tensor] = {}
        self.last: dict[str, Tensor] = {}
        self.peaks: dict[str, Tensor] = {}
        self.host_sums: dict[str, float] = {}
        self.host_last: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.problem: str | None = None  # a recipe's own TrainingDiverged, held until the read-back
        self.dirty = False

    def add(self, metrics: dict[str, Any]) -> None:
        """Accumulate one step's metrics (device ops only)."""
        for k, v in metrics.items():
            if isinstance(v, Tensor):
                v = v.detach().reshape(()).float()
                self.sums[k] = self.sums[k] + v if k in self.sums else v
                self.last[k] = v
                if k in self.limits:
                    peak = v.abs()
                    self.peaks[k] = torch.maximum(self.peaks[k], peak) if k in self.peaks else peak
            else:
                self.host_sums[k] = self.host_sums.get(k, 0.0) + float(v)
                self.host_last[k] = float(v)
            self.counts[k] = self.counts.get(k, 0) + 1
        self.dirty = True

    def fail(self, message: str) -> None:
        """Remember the first divergence a recipe raised; reported (and agreed on) at the next read."""
        self.problem = self.problem or message

    def read(self, reduce: Any = None) -> Reading:
        """Everything as Python numbers, after one host sync; ``reduce`` (a sum over workers, or
        None for one worker) makes the divergence verdict a collective one."""
        keys, guarded = list(self.sums), [k for k in self.limits if k in self.peaks]
        zero = torch.zeros(0, device=self.device)
        sums = torch.stack([self.sums[k] for k in keys]) if keys else zero
        last = torch.stack([self.last[k] for k in keys]) if keys else zero
        peaks = torch.stack([self.peaks[k] for k in guarded]) if guarded else zero
        bounds = torch.stack([torch.full((), self.limits[k][0], device=self.device) for k in guarded]) \
            if guarded else zero  # fills, not host→device copies
        raised = torch.full((), float(self.problem is not None), device=self.device)
        flags = torch.stack([(~torch.isfinite(sums)).any().float(),
                             ((peaks > bounds) | ~torch.isfinite(peaks)).any().float(), raised])
        if reduce is not None:
            flags = reduce(flags)
        values = torch.cat([flags, sums, last, peaks]).tolist()  # the one host synchronisation
        self.dirty = False
        n = len(keys)
        flag_v, sum_v, last_v, peak_v = values[:3], values[3:3 + n], values[3 + n:3 + 2 * n], values[3 + 2 * n:]
        means = {k: s / self.counts[k] for k, s in zip(keys, sum_v)}
        means |= {k: s / self.counts[k] for k, s in self.host_sums.items()}
        reading = Reading(means, dict(zip(keys, last_v)) | self.host_last)
        if sum(flag_v) > 0:
            reading.problem = self._describe(keys, sum_v, guarded, peak_v)
        return reading

    def _describe(self, keys: list[str], sums: list[float], guarded: list[str], peaks: list[float]) -> str:
        found = [self.problem] if self.problem else []
        bad = [f"{k}={s / self.counts[k]}" for k, s in zip(keys, sums) if not _finite(s)]
        if bad:
            found.append("non-finite " + ", ".join(bad))
        for k, p in zip(guarded, peaks):
            bound, setting = self.limits[k]
            if not (_finite(p) and p <= bound):
                found.append(f"|{k}| reached {p:.3g} > {bound:g} ({setting})")
        return "; ".join(found) or "a non-finite metric or a guard on another worker"


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
