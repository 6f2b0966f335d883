"""``train.lr_schedule``: the learning rate as a pure function of the global step.

A pure function of (step, total) rather than a ``torch.optim.lr_scheduler`` object, so that a
resumed or restarted run (any worker count) lands on exactly the rate it would have had without
the interruption, with no scheduler state to checkpoint. Each parameter group keeps its own base
rate under ``"base_lr"`` (saved with the optimiser's state), so the GAN's two optimisers and any
recipe that rescales its rate after a divergence restart (the EBM) keep their ratios.

Why it matters: persistent chains (PCD) follow the model only while it changes slowly, and a rate
that decays to zero at the end lets the last updates settle instead of chasing the chains'
noise (Tieleman 2008 decays it linearly); it is how the demo's RBM reaches recognisable digits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The multiplier of the base rate for the step that starts at ``step`` (0-based) of ``total``.

    linear: 1 at step 0, 1/total at the last step; cosine: ½(1 + cos(π·step/total)).
    """
    if schedule == "constant" or total <= 0:
        return 1.0
    done = min(max(step, 0), total) / total
    if schedule == "linear":
        return 1.0 - done
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * done))
    raise ValueError(f"train.lr_schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")


def apply_lr(optimizers: Iterable[torch.optim.Optimizer], schedule: str, step: int, total: int) -> None:
    """Set every parameter group's rate for this step (nothing to do for ``constant``)."""
    if schedule == "constant":
        return
    factor = lr_factor(schedule, step, total)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


def rescale_base_lr(group: dict, value: float) -> None:
    """Set a group's rate before any schedule: its ``base_lr`` when scheduled, else ``lr``."""
    group["base_lr" if "base_lr" in group else "lr"] = value
