"""Numbers for people: rounding for log lines and summaries, each quality number beside the reference
that gives it a meaning (in the same units), and a one-line reading of it.

References: FID beside its real-data floor (FID between real train and real test images on the same
features and counts), KID beside its own floor (KID between real train and test images, same subsets),
a likelihood beside the independent-pixel baseline (:mod:`pipeline.evaluation.references`).

KID is read against the floor's subset spread: KID is unbiased, so two real sets score about 0, and the
spread of the floor's subset estimates is how far KID wanders between sets of the same distribution at
these sizes. (The model's own spread grows with its distance from the data and would make a poor
model look "indistinguishable".)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FLOOR = "fid_real_train_vs_test"
KID_FLOOR = "kid_real_train_vs_test"
BASELINE = "log_likelihood_baseline"
REFERENCE_METRICS = {FLOOR, KID_FLOOR, BASELINE}


def fmt(value: Any) -> str:
    """A number as a person reads it: 263.29, 0.1284, -143.30, 1.2e-05; None as 'unavailable'."""
    if value is None:
        return "unavailable"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 100_000 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.3g}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def rounded(obj: Any, digits: int = 4) -> Any:
    """``obj`` (dicts/lists of numbers) with every float rounded to ``digits`` significant digits
    (the integer part is never rounded away)."""
    if isinstance(obj, float) and math.isfinite(obj) and obj != 0:
        return round(obj, max(0, digits - 1 - int(math.floor(math.log10(abs(obj))))))
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(rounded(v, digits) for v in obj)
    return obj


def _get(result: Any, key: str, default: Any = None) -> Any:
    """A field of a metric result, typed (MetricResult) or as its dict (eval/metrics.json)."""
    return result.get(key, default) if isinstance(result, dict) else getattr(result, key, default)


@dataclass
class Reading:
    """One quality number with its reference and what it means."""

    metric: str
    value: float | None
    reference: str = ""  # e.g. "floor 44.03 (real train vs test)"
    reading: str = ""  # e.g. "samples are far from the data (6.0× the floor)"


def fid_reading(fid: float, floor: float) -> str:
    """How far samples are from the data, measured in multiples of the real-data floor."""
    if floor <= 1e-9:
        return "no floor to compare with (the floor is 0)"
    ratio = fid / floor
    times = f"{ratio:.1f}× the floor"
    if ratio <= 1.5:
        return f"near the floor: samples are about as close to the test images as real images are ({times})"
    if ratio <= 3:
        return f"close to the data ({times})"
    if ratio <= 10:
        return f"data-like but clearly distinguishable from real images ({times})"
    return f"samples are far from the data ({times})"


def likelihood_reading(ll: float, baseline: float) -> str:
    gain = ll - baseline
    if gain > 0:
        return f"{gain:.1f} nats per example better than independent pixels"
    return f"no better than independent pixels ({-gain:.1f} nats worse): the model has learnt little structure"


def kid_reading(kid: float, floor: float, floor_std: float | None) -> str:
    """Whether KID stands out from what two real sets of the same sizes score (its floor)."""
    if not floor_std or floor_std <= 0:
        return f"{kid - floor:.3g} above the floor (no spread to compare with)"
    spreads = (kid - floor) / floor_std
    if spreads <= 2:
        return f"indistinguishable from real images at this sample size (within 2 spreads of the floor: {spreads:.1f})"
    return f"distinguishable from real images ({spreads:.1f} spreads of the floor above it)"


def readings(results: list[Any]) -> dict[str, Reading]:
    """Metric name -> its reading, for the metrics that have a reference among ``results``."""
    by = {_get(r, "metric"): r for r in results if _get(r, "value") is not None}
    val = {name: _get(r, "value") for name, r in by.items()}
    out: dict[str, Reading] = {}
    if "fid" in val and FLOOR in val:
        out["fid"] = Reading("fid", val["fid"], f"floor {fmt(val[FLOOR])} (real train vs test images)",
                             fid_reading(val["fid"], val[FLOOR]))
    if "kid" in val and KID_FLOOR in val:
        spread = (_get(by[KID_FLOOR], "extra") or {}).get("std")
        out["kid"] = Reading("kid", val["kid"], f"floor {fmt(val[KID_FLOOR])} ± {fmt(spread)} (real train vs test images)",
                             kid_reading(val["kid"], val[KID_FLOOR], spread))
    if "log_likelihood" in val and BASELINE in val:
        out["log_likelihood"] = Reading("log_likelihood", val["log_likelihood"],
                                        f"baseline {fmt(val[BASELINE])} (independent pixels)",
                                        likelihood_reading(val["log_likelihood"], val[BASELINE]))
    return out


def summary_lines(results: list[Any]) -> list[str]:
    """One line per metric for a terminal or a log: value, features and counts, reference, reading.

    The reference metrics themselves are folded into the line of the metric they explain."""
    notes = readings(results)
    lines = []
    for r in results:
        name = _get(r, "metric")
        if ((name == FLOOR and "fid" in notes) or (name == KID_FLOOR and "kid" in notes)
                or (name == BASELINE and "log_likelihood" in notes)):
            continue
        line = f"{name} = {fmt(_get(r, 'value'))}  ({_get(r, 'extractor')}, {_get(r, 'num_samples')} samples)"
        if name in notes:
            line += f"  vs {notes[name].reference}: {notes[name].reading}"
        elif _get(r, "reason"):
            line += f"  {_get(r, 'reason')}"
        lines.append(line)
    return lines
