"""NodeReduce: the shared-memory sum over one machine's workers equals the exact sum, bit for bit
the same on every worker, over many calls (both parity slots reused); a worker whose peer died
raises instead of waiting forever; the product's chooser picks it for CPU groups on one machine."""

from __future__ import annotations

import os
import platform
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.ports import free_port

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="the shared-memory path is for x86-64; elsewhere gloo is used (tested by "
                                       "the engine's 1-vs-2-worker test)")


def _group(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _sums(rank: int, world: int, port: int, out: dict) -> None:
    from pipeline.node_reduce import NodeReduce, group_all_reduce

    _group(rank, world, port)
    n = 1001
    reduce = group_all_reduce(torch.zeros(n))
    assert getattr(reduce, "__self__", None).__class__ is NodeReduce
    results = []
    for call in range(7):  # odd count: both parity slots, each reused
        flat = torch.randn(n, generator=torch.Generator().manual_seed(100 * call + rank))
        reduce(flat)
        want = sum(torch.randn(n, generator=torch.Generator().manual_seed(100 * call + r)) for r in range(world))
        results.append((torch.allclose(flat, want, atol=1e-5), flat.clone()))
    out[rank] = results
    dist.barrier()
    dist.destroy_process_group()


def test_sums_exactly_and_every_worker_gets_the_same_bits():
    world = 3
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_sums, args=(world, free_port(), out), nprocs=world)
        results = dict(out)
    for call in range(7):
        assert all(results[r][call][0] for r in range(world)), call
        assert all(torch.equal(results[0][call][1], results[r][call][1]) for r in range(world)), call


def _dies(rank: int, port: int, out: dict) -> None:
    from pipeline.node_reduce import NodeReduce

    _group(rank, 2, port)
    reducer = NodeReduce(10, rank, 2)
    reducer.all_reduce(torch.ones(10))
    if rank == 1:
        os._exit(0)  # gone before the second call
    started = time.monotonic()
    try:
        reducer.all_reduce(torch.ones(10))
        out[0] = "returned"
    except RuntimeError as exc:
        out[0] = (str(exc), time.monotonic() - started)


def test_a_dead_peer_raises_within_seconds():
    with mp.Manager() as manager:
        out = manager.dict()
        ctx = mp.start_processes(_dies, args=(free_port(), out), nprocs=2, join=False)
        for p in ctx.processes:
            p.join(60)
        message, waited = out[0]
    assert "exited mid-step" in message and waited < 10
