"""Both batch feeds deliver exactly the rows pipeline.sharding assigns, in the same order."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from pipeline.feed import DeviceFeed, MappedFeed, open_feed
from pipeline.sharding import local_batches

N, D, BATCH, SEED = 103, 6, 10, 3


@pytest.fixture
def rows(tmp_path) -> np.ndarray:
    """A read-only float32 memory map, as pipeline.data.open_split returns."""
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((N, D), dtype=np.float32))
    return np.load(path, mmap_mode="r")


def _feed(rows: np.ndarray, in_memory: bool, world: int = 1, rank: int = 0):
    return open_feed(rows, BATCH, world, rank, SEED, (2, 3), torch.device("cpu"), 1e6 if in_memory else 0)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("world", [1, 3])
def test_feeds_give_the_sharded_rows_and_cover_the_epoch_once(rows, in_memory, world):
    seen = []
    for rank in range(world):
        feed = _feed(rows, in_memory, world, rank)
        assert isinstance(feed, DeviceFeed if in_memory else MappedFeed)
        expected = list(local_batches(N, BATCH, world, rank, SEED, epoch=2))
        got = list(feed.epoch(2))
        assert len(got) == len(expected)
        for (x, lb), want in zip(got, expected):
            assert np.array_equal(lb.indices, want.indices) and lb.weight == want.weight
            assert torch.equal(x, torch.from_numpy(np.asarray(rows[want.indices])).reshape(-1, 2, 3))
            seen.extend(lb.indices.tolist())
    assert sorted(seen) == list(range(N))  # every example exactly once (103 = 10 full batches + 3)


def test_both_paths_resume_mid_epoch_with_the_same_batches(rows):
    a = [x for x, _ in _feed(rows, True).epoch(1, start=4)]
    b = [x for x, _ in _feed(rows, False).epoch(1, start=4)]
    assert len(a) == len(b) == 7 and all(torch.equal(p, q) for p, q in zip(a, b))


def test_prefetch_thread_stops_when_the_consumer_stops_early(rows):
    before = threading.active_count()
    batches = _feed(rows, False).epoch(0)
    next(batches)
    batches.close()  # what a `break` or an exception in the training loop does
    assert threading.active_count() == before


def test_prefetch_errors_reach_the_training_thread(rows):
    feed = _feed(rows, False)
    feed.train_x = None  # reading a batch now fails in the background thread
    with pytest.raises(TypeError):
        next(feed.epoch(0))


def test_budget_picks_the_path(rows):
    budget = rows.nbytes / 2**20
    assert open_feed(rows, BATCH, 1, 0, SEED, (D,), torch.device("cpu"), budget).in_memory
    assert not open_feed(rows, BATCH, 1, 0, SEED, (D,), torch.device("cpu"), budget * 0.99).in_memory
