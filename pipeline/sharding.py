"""Exact data sharding for data-parallel training.

Each epoch draws one seeded permutation of the training set and cuts it into *global* batches of
``train.batch_size``; worker r takes the r-th near-equal slice of each global batch. Hence every
example is seen exactly once per epoch across workers, the global batches are the same for any
number of workers, and :class:`pipeline.recipes.base.Batch.weight` makes DDP's gradient average
equal the gradient of the global-batch mean (so 1 and N workers take the same step).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalBatch:
    indices: np.ndarray  # rows of the training split for this worker
    weight: float  # local_size * world / global_size
    index: int  # position of the global batch within the epoch


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training set in ``epoch`` (same on every worker)."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def num_batches(n: int, batch_size: int, world: int) -> int:
    """Global batches per epoch: a trailing batch smaller than the world size is dropped."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= world else 0)


def local_batches(n: int, batch_size: int, world: int, rank: int, seed: int, epoch: int,
                  start: int = 0, batch_world: int | None = None) -> Iterator[LocalBatch]:
    """This worker's share of every global batch of ``epoch``, from global batch ``start`` on.

    ``batch_world`` (at least ``world``) is the world size whose trailing-batch rule decides the
    batch count: an elastic run passes its largest size, so its global batches, and so its step
    count, are the same whatever size it has when.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world of size {world}")
    order = epoch_permutation(n, seed, epoch)
    for b in range(start, num_batches(n, batch_size, max(world, batch_world or world))):
        glob = order[b * batch_size:(b + 1) * batch_size]
        mine = np.array_split(glob, world)[rank]
        yield LocalBatch(indices=np.sort(mine), weight=len(mine) * world / len(glob), index=b)
