"""Exact sharding: every example once per epoch, same global batches for any world size."""

import numpy as np
import pytest

from pipeline.sharding import local_batches, num_batches


@pytest.mark.parametrize("n,batch,world", [(103, 10, 1), (103, 10, 2), (103, 10, 3), (100, 25, 4), (7, 3, 2)])
def test_every_example_once_per_epoch(n, batch, world):
    seen = []
    for rank in range(world):
        seen += [i for lb in local_batches(n, batch, world, rank, seed=0, epoch=1) for i in lb.indices]
    dropped = n - sum(min(batch, n - b * batch) for b in range(num_batches(n, batch, world)))
    assert len(seen) == len(set(seen)) == n - dropped
    assert dropped < world  # only a trailing batch smaller than the world is dropped


def test_global_batches_do_not_depend_on_world_size():
    one = [set(lb.indices) for lb in local_batches(50, 8, 1, 0, seed=3, epoch=2)]
    two = [set(a.indices) | set(b.indices)
           for a, b in zip(local_batches(50, 8, 2, 0, seed=3, epoch=2), local_batches(50, 8, 2, 1, seed=3, epoch=2))]
    assert one == two


def test_weights_make_the_ddp_average_a_global_mean():
    # the last global batch (2 examples of 50 % 8) splits 1/1 over 3 workers... weights sum to world
    world = 3
    per_rank = [list(local_batches(50, 8, world, r, seed=0, epoch=0)) for r in range(world)]
    for batches in zip(*per_rank):
        total = sum(len(lb.indices) for lb in batches)
        assert sum(lb.weight for lb in batches) == pytest.approx(world)
        for lb in batches:
            assert lb.weight == pytest.approx(len(lb.indices) * world / total)


def test_epochs_are_shuffled_differently():
    a = np.concatenate([lb.indices for lb in local_batches(40, 5, 1, 0, seed=0, epoch=0)])
    b = np.concatenate([lb.indices for lb in local_batches(40, 5, 1, 0, seed=0, epoch=1)])
    assert sorted(a) == sorted(b) and not np.array_equal(a, b)


def test_resume_mid_epoch_skips_done_batches():
    full = list(local_batches(30, 4, 1, 0, seed=0, epoch=0))
    rest = list(local_batches(30, 4, 1, 0, seed=0, epoch=0, start=3))
    assert [lb.index for lb in rest] == [lb.index for lb in full[3:]]
