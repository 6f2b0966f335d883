"""A SIGKILLed ``boltzgan run`` leaves no Ray or Prefect process behind (pipeline.watchdog)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmd(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def test_the_watchdog_kills_the_children_of_a_killed_driver():
    """Without Ray or Prefect: all three children of a SIGKILLed driver end, one ignoring SIGTERM."""
    code = ("import subprocess, sys, time\n"
            "from pipeline.watchdog import guard_children\n"
            "guard_children()\n"
            "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']) for _ in range(2)]\n"
            "kids.append(subprocess.Popen([sys.executable, '-c', "
            "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)']))\n"
            "print('ready', flush=True); time.sleep(300)\n")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert driver.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # the watchdog records descendants twice a second
    kids = [p for p in _descendants(driver.pid) if "time.sleep(300)" in _cmd(p)]
    assert len(kids) == 3
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    gone, alive = psutil.wait_procs(kids, timeout=30)
    assert not alive, [_cmd(p) for p in alive]


@pytest.mark.ray
@pytest.mark.slow
def test_a_sigkilled_boltzgan_run_leaves_no_ray_or_prefect_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"  # a loaded test machine
    boltzgan = Path(sys.executable).with_name("boltzgan")
    driver = subprocess.Popen([str(boltzgan), "run", "demo", "--set", f"output.root={tmp_path}",
                               "--set", "train.epochs=200", "--set", "resources.num_workers=1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("w"),
                              start_new_session=True)
    deadline = time.time() + 400
    seen: dict[int, psutil.Process] = {}
    while time.time() < deadline:
        for p in _descendants(driver.pid):
            seen.setdefault(p.pid, p)
        names = " ".join(_cmd(p) for p in seen.values())
        if "raylet" in names and "gcs_server" in names and "prefect" in names and "RayTrainWorker" in names:
            break
        assert driver.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        time.sleep(1)
    else:
        pytest.fail(f"Ray and Prefect never both appeared: {sorted({_cmd(p)[:60] for p in seen.values()})}")
    time.sleep(1.5)
    started = [p for p in _descendants(driver.pid) if "pipeline.watchdog" not in _cmd(p)]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _, alive = psutil.wait_procs(started, timeout=60)
    assert not alive, [_cmd(p)[:100] for p in alive]
