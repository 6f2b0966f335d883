"""ThreadGovernor: fewer threads while this process's threads wait for a CPU, the full count back
once they stop waiting, never above the configured count nor below one (a simulated clock and
run-queue wait; the real reader is checked on this machine's /proc)."""

from __future__ import annotations

from pipeline.cores import WAIT_SHARE, ThreadGovernor, process_run_delay_s


class Machine:
    """A fake process: its run-queue wait grows at ``contended`` seconds per thread-second when
    another process shares the cores, and not at all otherwise."""

    def __init__(self):
        self.t = 0.0
        self.wait = 0.0
        self.busy = False
        self.threads = 2
        self.history: list[int] = []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.history.append(n)

    def run(self, governor: ThreadGovernor, seconds: float, dt: float = 0.1) -> None:
        for _ in range(round(seconds / dt)):
            self.t += dt
            # 2 threads beside a busy process on 2 cores each wait about a third of the time; one
            # thread next to it has a core to itself
            if self.busy and self.threads > 1:
                self.wait += dt * self.threads / 3
            governor.tick()


def _governor(m: Machine, threads: int = 2) -> ThreadGovernor:
    m.threads = threads
    return ThreadGovernor(threads, m.set_threads, run_delay=lambda: m.wait, clock=lambda: m.t)


def test_an_idle_machine_keeps_every_thread():
    m = Machine()
    g = _governor(m)
    m.run(g, 60)
    assert m.history == [] and g.threads == 2


def test_contention_drops_a_thread_and_a_free_machine_gets_it_back():
    m = Machine()
    g = _governor(m)
    m.busy = True
    m.run(g, 2.5)
    assert g.threads == 1 and m.threads == 1
    m.run(g, 30)  # probes every 10 s fail while the other process runs, each for one interval
    assert g.threads == 1
    assert m.history.count(2) >= 2 and max(m.history) <= 2
    m.busy = False
    m.run(g, 12)
    assert g.threads == 2  # the next probe finds the cores free and keeps the thread
    m.run(g, 30)
    assert g.threads == 2 and m.history[-1] == 2


def test_never_above_the_configured_count_nor_below_one():
    m = Machine()
    g = _governor(m, threads=4)
    m.busy = True
    m.run(g, 20)
    assert min(m.history) >= 1 and max(m.history) <= 4
    m.busy = False
    m.run(g, 120)
    assert g.threads == 4


def test_one_thread_or_no_schedstat_means_nothing_to_govern():
    m = Machine()
    assert not ThreadGovernor(1, m.set_threads, run_delay=lambda: 0.0).active
    assert not ThreadGovernor(2, m.set_threads, run_delay=lambda: None).active


def test_the_threshold_is_a_share_of_each_thread():
    assert 0 < WAIT_SHARE < 1 / 3  # a third of each thread's time is the 2-threads-beside-one-process case


def test_this_machine_reports_run_queue_wait():
    wait = process_run_delay_s()
    assert wait is not None and wait >= 0
