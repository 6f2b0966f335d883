"""Fault injection for the Ray tests: kill one of this test's own Ray Train workers."""

from __future__ import annotations

import os
import signal

import psutil


def kill_a_train_worker(killed: list[int]) -> bool:
    """SIGKILL one Ray Train worker among this process's descendants (this test's own Ray only,
    never another run's workers); its pid goes to ``killed``. False when there is none yet."""
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "RayTrainWorker" in cmdline:
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)
            return True
    return False
