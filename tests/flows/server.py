"""A real ``prefect server start`` on a free loopback port for the slow integration tests, plus the few
REST calls they make (urllib, so the test process's own Prefect settings are never touched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ports import free_port

BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
RETRY_CODES = {429, 502, 503}
RETRIES = 6  # 1 + 2 + 4 + 8 + 8 + 8 s at most


@dataclass
class PrefectServer:
    api: str
    home: Path
    env: dict[str, str]  # what a client process needs: PREFECT_HOME, PREFECT_API_URL, no telemetry

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call, retried on the codes Prefect's own client retries (429, 502, 503): the server
        answers 503 when SQLite is busy, e.g. while a cancelled run's processes write their last states."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(RETRIES + 1):
            req = urllib.request.Request(f"{self.api}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    text = r.read()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_CODES or attempt == RETRIES:
                    raise
                time.sleep(min(2 ** attempt, 8))

    def deployment(self, flow: str, name: str, timeout: float = 120) -> dict:
        """The deployment ``flow/name``, waiting for a serving process or `prefect deploy` to register it."""
        deadline = time.time() + timeout
        while True:
            try:
                return self.call("GET", f"/deployments/name/{flow}/{name}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.time() > deadline:
                    raise
            time.sleep(1)

    def run_deployment(self, deployment_id: str, parameters: dict | None = None) -> str:
        body = {"parameters": parameters} if parameters is not None else {}
        return self.call("POST", f"/deployments/{deployment_id}/create_flow_run", body)["id"]

    def flow_run(self, run_id: str) -> dict:
        return self.call("GET", f"/flow_runs/{run_id}")

    def wait_for_state(self, run_id: str, types: set[str], timeout: float) -> dict:
        deadline = time.time() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state"]["type"] in types or time.time() > deadline:
                return run
            time.sleep(1)

    def cancel(self, run_id: str) -> None:
        """What the UI's Cancel button and `prefect flow-run cancel` do: propose CANCELLING."""
        self.call("POST", f"/flow_runs/{run_id}/set_state",
                  {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})

    def with_subflows(self, run_id: str) -> list[str]:
        """``run_id`` and the ids of the subflow runs it started (the preset flow calls the pipeline)."""
        children = self.call("POST", "/flow_runs/filter",
                             {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}, "limit": 50})
        return [run_id] + [c["id"] for c in children]

    def artifact_keys(self, run_id: str) -> set[str]:
        arts = self.call("POST", "/artifacts/filter", {"flow_runs": {"id": {"any_": self.with_subflows(run_id)}}})
        return {a["key"] for a in arts if a.get("key")}

    def logs(self, run_id: str) -> list[str]:
        rows = self.call("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": self.with_subflows(run_id)}},
                                                  "limit": 200, "sort": "TIMESTAMP_ASC"})
        return [r["message"] for r in rows]


@contextmanager
def prefect_server(home: Path) -> Iterator[PrefectServer]:
    """Start a server with its own PREFECT_HOME (SQLite there) and stop it afterwards."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_UI_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(api, proc, home)
        yield PrefectServer(api, home, dict(env, PREFECT_API_URL=api))
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; waits until the process is gone."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_healthy(api: str, proc: subprocess.Popen, home: Path, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
