"""Training batches for one worker: its exact share of every global batch, at no per-step cost.

Both feeds yield the batches :func:`pipeline.sharding.local_batches` defines (the same rows in the
same order), so the sharding guarantees (every example once per epoch, the same global batches for
any worker count, 1 worker = N workers update) hold whichever is used:

- :class:`DeviceFeed` when the training split fits ``resources.data_in_memory_mb``: the split is
  copied once into one contiguous tensor on the worker's device (GPU memory when ``use_gpu``), each
  epoch's batch indices go to the device in one transfer, and a batch is one ``index_select``.
- :class:`MappedFeed` otherwise: rows are gathered from the memory-mapped Arrow file by a
  background thread a few batches ahead, so reading overlaps the training step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from pipeline.sharding import LocalBatch, local_batches

PREFETCH = 4  # batches the memory-mapped feed reads ahead


class Feed(Protocol):
    in_memory: bool

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, LocalBatch]]:
        """(x of shape (b, *shape) on the device, its LocalBatch) for global batches ``start``.. of ``epoch``."""


class _Plan:
    """Where this worker's rows come from: sizes, world, seed and the example shape."""

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int, shape: tuple[int, ...],
                 device: torch.device, batch_world: int | None = None):
        self.n, self.batch_size, self.world, self.rank, self.seed = n, batch_size, world, rank, seed
        self.shape, self.device, self.batch_world = tuple(shape), device, batch_world

    def batches(self, epoch: int, start: int) -> Iterator[LocalBatch]:
        return local_batches(self.n, self.batch_size, self.world, self.rank, self.seed, epoch, start,
                             self.batch_world)


class DeviceFeed:
    """The whole training split as one tensor on the device; batches are index lookups."""

    in_memory = True

    def __init__(self, train_x: np.ndarray, plan: _Plan):
        self.plan = plan
        # a real copy (of a memory map, np.ascontiguousarray would return the map itself)
        self.data = torch.from_numpy(np.array(train_x, dtype=np.float32, order="C", copy=True)).to(plan.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, LocalBatch]]:
        plan = self.plan
        batches = list(plan.batches(epoch, start))
        if not batches:
            return
        # one host→device copy of the epoch's indices, then views into it
        index = torch.from_numpy(np.concatenate([lb.indices for lb in batches]).astype(np.int64)).to(plan.device)
        offset = 0
        for lb in batches:
            rows = index[offset:offset + len(lb.indices)]
            offset += len(lb.indices)
            yield self.data.index_select(0, rows).reshape(-1, *plan.shape), lb


class MappedFeed:
    """Rows gathered from the memory map by a background thread, ``PREFETCH`` batches ahead."""

    in_memory = False

    def __init__(self, train_x: np.ndarray, plan: _Plan):
        self.train_x, self.plan = train_x, plan
        self.pin = plan.device.type == "cuda"

    def _read(self, lb: LocalBatch) -> Tensor:
        x = torch.from_numpy(np.asarray(self.train_x[lb.indices]))
        return x.pin_memory() if self.pin else x

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, LocalBatch]]:
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()
        done = object()

        def offer(item: object) -> bool:
            """Queue ``item`` unless the consumer has gone; False once it has."""
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for lb in self.plan.batches(epoch, start):
                    if not offer((self._read(lb), lb)):
                        return
                offer(done)
            except BaseException as exc:  # surfaced in the training thread
                offer(exc)

        reader = threading.Thread(target=produce, name="boltzgan-prefetch", daemon=True)
        reader.start()
        try:
            while (item := ready.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                x, lb = item
                yield x.to(self.plan.device, non_blocking=self.pin).reshape(-1, *self.plan.shape), lb
        finally:
            stop.set()
            reader.join()


def open_feed(train_x: np.ndarray, batch_size: int, world: int, rank: int, seed: int, shape: tuple[int, ...],
              device: torch.device, memory_mb: float, batch_world: int | None = None) -> Feed:
    """A :class:`DeviceFeed` when the split takes at most ``memory_mb`` MB, else a :class:`MappedFeed`.
    ``batch_world``: the world size whose trailing-batch rule counts the batches (elastic runs)."""
    plan = _Plan(train_x.shape[0], batch_size, world, rank, seed, shape, device, batch_world)
    fits = train_x.nbytes <= memory_mb * 2**20
    return DeviceFeed(train_x, plan) if fits else MappedFeed(train_x, plan)
