"""Deployments against a real `prefect server`: a served deployment (`boltzgan deploy`), the README's
process work-pool sequence (`prefect work-pool create`, `prefect deploy`, `prefect worker start`,
`prefect deployment run`), the typed-RunConfig `custom` deployment, and cancellation of a running
flow (its Ray processes must die, its last checkpoint must stay valid and a later run resumes).

The flow is loaded from source in a fresh process here, unlike the in-process flow tests."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline.atomic import read_jsonl
from pipeline.checkpoints import latest_valid, list_checkpoints
from pipeline.config import load_config
from tests.flows.server import BIN, PrefectServer, stop_process

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TINY = ["train.epochs=1", "resources.num_workers=0", "sample.workers=0", "sample.chains=20", "sample.steps=30",
        "sample.burn_in=10", "evaluate.num_samples=40", "evaluate.ais_runs=10", "evaluate.ais_schedule=linear:200"]
RUN_TIMEOUT = 1200  # generous: a loaded 2-core machine runs these several times slower


@contextmanager
def background(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A long-running command (serve, worker) of this test, stopped (SIGTERM, then SIGKILL) at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop_process(proc)


def _completed(server: PrefectServer, run_id: str, log: Path) -> dict:
    run = server.wait_for_state(run_id, {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}, RUN_TIMEOUT)
    assert run["state"]["type"] == "COMPLETED", (
        f"{run['state']}\nflow-run log:\n" + "\n".join(server.logs(run_id))[-4000:]
        + f"\n{log.name}:\n{log.read_text()[-3000:]}")
    return run


@pytest.fixture
def runs(shared_runs) -> Path:
    return shared_runs


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Deployments and schedules" code block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Deployments and schedules"):]
    block = section[section.index("```bash") + 7:]
    block = block[:block.index("```")]
    return [shlex.split(line.split("  #")[0]) for line in block.strip().splitlines()]


@pytest.fixture(scope="module")
def work_pool(prefect_server: PrefectServer, tmp_path_factory) -> Iterator[PrefectServer]:
    """The README's sequence, command by command: a process pool, the prefect.yaml deployments and a
    worker polling the pool (the `deployment run` lines are run by the tests, with tiny overrides)."""
    env = dict(prefect_server.env)
    worker = None
    for cmd in readme_commands():
        if cmd[0] == "export":
            name, value = cmd[1].split("=", 1)
            env[name] = str(ROOT) if value == "$PWD" else value
        elif cmd[:3] == [".venv/bin/prefect", "worker", "start"]:
            worker = cmd
        elif cmd[1:3] != ["deployment", "run"]:
            done = subprocess.run([str(ROOT / cmd[0]), *cmd[1:]], env=env, cwd=ROOT, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert worker, "the README's deployment section starts no worker"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with background([str(ROOT / worker[0]), *worker[1:]], env, log) as proc:
        prefect_server.worker_log = log
        prefect_server.worker_pid = proc.pid
        yield prefect_server


NOISE = ("PlacementGroupCleaner", "PreemptionWatcher", "Found multiple active Ray instances",
         "Failed to query Ray Train Controller")


def test_served_deployment_runs_to_completion(prefect_server, runs, tmp_path):
    overrides = [f"output.root={runs}", "output.run_name=served", *TINY]
    sets = [a for o in overrides for a in ("--set", o)]
    log = tmp_path / "serve.log"
    with background([str(BIN / "boltzgan"), "deploy", "demo", "--name", "served-demo", *sets],
                    prefect_server.env, log):
        deployment = prefect_server.deployment("boltzgan-preset", "served-demo")
        run_id = prefect_server.run_deployment(deployment["id"])
        _completed(prefect_server, run_id, log)
    assert {"served-report", "served-metrics", "served-epochs"} <= prefect_server.artifact_keys(run_id)
    assert (runs / "served" / "report" / "report.md").exists()
    assert json.loads((runs / "served" / "eval" / "metrics.json").read_text())["results"]
    logs = "\n".join(prefect_server.logs(run_id))
    assert "fid = " in logs and "vs floor" in logs, logs[-3000:]  # rounded, beside its reference
    terminal = log.read_text()
    assert not [n for n in NOISE if n in terminal + logs], terminal[-3000:]


def test_work_pool_deployment_from_prefect_yaml(work_pool, runs):
    deployment = work_pool.deployment("boltzgan-preset", "demo")
    assert deployment["work_pool_name"] == "boltzgan-process"
    overrides = [f"output.root={runs}", "output.run_name=pooled", *TINY]
    run_id = work_pool.run_deployment(deployment["id"], {"preset": "demo", "overrides": overrides})
    _completed(work_pool, run_id, work_pool.worker_log)
    assert {"pooled-report", "pooled-metrics"} <= work_pool.artifact_keys(run_id)
    assert (runs / "pooled" / "report" / "report.md").exists()


def test_custom_deployment_takes_a_typed_run_config(work_pool, runs):
    cfg = load_config("demo", [f"output.root={runs}", "output.run_name=typed", *TINY])
    deployment = work_pool.deployment("boltzgan-pipeline", "custom")
    run_id = work_pool.run_deployment(deployment["id"], {"config": cfg.model_dump(mode="json")})
    _completed(work_pool, run_id, work_pool.worker_log)
    assert (runs / "typed" / "report" / "report.md").exists()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (same pid *and* start time, zombies count as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_cancelling_a_run_stops_its_ray_workers_and_a_later_run_resumes(work_pool, runs):
    long = [f"output.root={runs}", "output.run_name=cancel", "train.epochs=5000", "train.checkpoint_every=1",
            "resources.num_workers=1", *TINY[2:]]
    deployment = work_pool.deployment("boltzgan-preset", "demo")
    run_id = work_pool.run_deployment(deployment["id"], {"preset": "demo", "overrides": long})
    storage = str(runs)
    _wait_for(lambda: latest_valid(list_checkpoints(storage, "cancel")), 300, "a first checkpoint")
    workers = _wait_for(lambda: [p for p in _descendants(work_pool.worker_pid)
                                 if "RayTrainWorker" in " ".join(_cmdline(p))], 60, "the Ray Train worker")
    ray_procs = [p for p in _descendants(work_pool.worker_pid) if p not in workers] + workers
    work_pool.cancel(run_id)
    run = work_pool.wait_for_state(run_id, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, 120)
    assert run["state"]["type"] == "CANCELLED", run["state"]
    cancelled_at = time.time()
    _wait_for(lambda: not _alive(ray_procs), 30, f"the run's processes to exit: {_alive(ray_procs)}")
    terminal = work_pool.worker_log.read_text()  # the run's Ray Train controller, workers, cleaner
    assert not [n for n in NOISE if n in terminal], terminal[-3000:]
    print(f"run's {len(ray_procs)} processes gone {time.time() - cancelled_at:.1f} s after CANCELLED")

    found = latest_valid(list_checkpoints(storage, "cancel"))
    assert found is not None, "cancellation left no valid checkpoint"
    epoch = found[1]["epoch"]
    before = len(read_jsonl(runs / "cancel" / "metrics.jsonl"))
    # One more epoch; no Inception weights here, so evaluation reports "unavailable" at once (not the point)
    resume = [o if not o.startswith("train.epochs=") else f"train.epochs={epoch + 1}" for o in long]
    resume += ["evaluate.feature=inception", "evaluate.likelihood=none"]
    again = work_pool.run_deployment(deployment["id"], {"preset": "demo", "overrides": resume})
    _completed(work_pool, again, work_pool.worker_log)
    resumed_epochs = [e["epoch"] for e in read_jsonl(runs / "cancel" / "metrics.jsonl")[before:]]
    assert resumed_epochs == [epoch + 1], f"expected one more epoch after {epoch}, got {resumed_epochs}"


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_readme_deployment_section_is_the_sequence_the_work_pool_test_runs():
    cmds = [" ".join(c) for c in readme_commands()]
    assert cmds[0] == "export BOLTZGAN_HOME=$PWD"
    assert ".venv/bin/prefect work-pool create boltzgan-process --type process" in cmds
    assert any(c.startswith(".venv/bin/prefect --no-prompt deploy --name demo") for c in cmds)
    assert ".venv/bin/prefect worker start --pool boltzgan-process" in cmds
    assert ".venv/bin/prefect deployment run boltzgan-preset/demo" in cmds
    assert yaml.safe_load((ROOT / "prefect.yaml").read_text())["pull"][0][
        "prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $BOLTZGAN_HOME }}"
