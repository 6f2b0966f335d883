"""A Ray worker's torch threads, given back while its cores are contested (``resources.yield_cores``).

A worker runs ``resources.cpus_per_worker`` OpenMP threads. Every parallel region (each GEMM, each
elementwise op over a batch) ends at a barrier that waits for the slowest thread, so when another
process takes part of one core, the thread sharing it holds up all the others at every region: on
this 2-core machine a 2-thread worker beside one busy normal-priority process ran at 13 % of its
speed alone, where one thread on the free core would run at about half.

:class:`ThreadGovernor` watches how long this process's threads sat runnable but not running
(``run_delay``, the second field of Linux's ``/proc/self/task/*/schedstat``): that time is what
contention costs and nothing else, independent of how busy the machine is for other reasons.
While the wait per second of wall time exceeds ``WAIT_SHARE`` of the threads in use, it drops one
thread; every ``probe_s`` at a reduced count it tries one more and keeps it only while the wait
stays low. It never goes above the configured count nor below one, and it reads the files at most
once per ``interval_s``, so it costs a clock read per step. Where schedstat cannot be read (not
Linux, or a kernel without schedstats) it does nothing.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable

WAIT_SHARE = 0.25  # waiting more than a quarter of each thread's time means the cores are shared


def process_run_delay_s() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU (None if unknown)."""
    total, seen = 0, False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
            seen = True
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9 if seen else None


class ThreadGovernor:
    """Lowers and restores a worker's torch thread count with the contention it measures."""

    def __init__(self, threads: int, set_threads: Callable[[int], None],
                 run_delay: Callable[[], float | None] = process_run_delay_s,
                 clock: Callable[[], float] = time.monotonic, interval_s: float = 1.0, probe_s: float = 10.0):
        self.max_threads = self.threads = max(1, threads)
        self.set_threads, self.run_delay, self.clock = set_threads, run_delay, clock
        self.interval_s, self.probe_s = interval_s, probe_s
        self.last_t = clock()
        self.last_wait = run_delay()
        self.reduced_at: float | None = None  # when the count last went down (for the next probe)
        self.probing = False

    @property
    def active(self) -> bool:
        """False when there is nothing to govern (one thread) or nothing to read."""
        return self.max_threads > 1 and self.last_wait is not None

    def tick(self) -> None:
        """Call once per training step; acts at most once per ``interval_s``."""
        if not self.active:
            return
        now = self.clock()
        if now - self.last_t < self.interval_s:
            return
        wait = self.run_delay()
        if wait is None:
            return
        share = (wait - self.last_wait) / (now - self.last_t) / self.threads
        self.last_t, self.last_wait = now, wait
        if share > WAIT_SHARE and self.threads > 1:
            self._set(self.threads - 1)  # contested (a failed probe lands here too)
            self.reduced_at, self.probing = now, False
        elif self.probing:
            self.probing = False  # the extra thread ran without waiting: keep it
            self.reduced_at = now if self.threads < self.max_threads else None
        elif self.reduced_at is not None and now - self.reduced_at >= self.probe_s:
            self._set(self.threads + 1)
            self.probing = True

    def _set(self, n: int) -> None:
        self.threads = n
        self.set_threads(n)
