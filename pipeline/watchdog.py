"""Children die with the driver: a watchdog process that kills what a ``boltzgan`` command started.

``boltzgan run`` starts Ray (GCS, raylet, agents, workers) and Prefect's embedded server as
child processes. When the driver is SIGKILLed nothing in it runs, so neither Ray's nor Prefect's
shutdown hooks fire and the children are re-parented and live on. ``prctl(PR_SET_PDEATHSIG)``
would need to be set inside each child, which Ray and Prefect spawn themselves, and a process
group kill needs someone alive to send it. So :func:`guard_children` starts a small watchdog in
its own session: it records the driver's descendants (pid and start time, so a reused pid is
never hit) twice a second and, once the driver is gone, for whatever reason, terminates the
recorded ones that still run (and their children), then kills what ignores SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0


def guard_children() -> subprocess.Popen | None:
    """Start the watchdog for this process (once per process); returns it, or None when disabled
    (BOLTZGAN_NO_WATCHDOG=1) or already running."""
    global _started
    if _started is not None or os.environ.get("BOLTZGAN_NO_WATCHDOG") == "1":
        return None
    _started = subprocess.Popen([sys.executable, "-m", "pipeline.watchdog", str(os.getpid())],
                                stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    return _started


_started: subprocess.Popen | None = None


def watch(driver_pid: int) -> int:
    """The watchdog's loop (runs in its own process)."""
    import psutil

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return 0
    me = os.getpid()
    known: dict[int, psutil.Process] = {}
    while _alive(driver):
        try:
            for proc in driver.children(recursive=True):
                if proc.pid != me:
                    known.setdefault(proc.pid, proc)
        except psutil.Error:
            break
        time.sleep(POLL_SECONDS)
    _reap(list(known.values()), me)
    return 0


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(recorded: list, me: int) -> None:
    """SIGTERM the recorded processes still running (and their current children), then SIGKILL."""
    import psutil

    victims = {p.pid: p for p in recorded if _alive(p)}
    for proc in list(victims.values()):
        try:
            victims.update({c.pid: c for c in proc.children(recursive=True) if c.pid != me})
        except psutil.Error:
            pass
    for proc in victims.values():
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, stubborn = psutil.wait_procs(list(victims.values()), timeout=GRACE_SECONDS)
    for proc in stubborn:
        try:
            proc.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1])))
