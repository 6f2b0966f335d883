"""End to end in a browser: a real `prefect server start`, the pipeline flow reporting to it, and the
flow-run page loaded in headless Chromium showing the completed run and its artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.flows.browser import Browser, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed here when missing (the test set-up installs it, as root)."""
    if not shutil.which("chromium"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"chromium cannot be installed here ({' '.join(cmd)}: {done.stderr[-300:]})")
    return shutil.which("chromium")


def _latest_flow_run(api: str) -> dict:
    body = json.dumps({"limit": 1, "offset": 0, "sort": "START_TIME_DESC"}).encode()
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)[0]


def test_flow_run_page_shows_completed_run_and_artifacts(chromium, prefect_server, tmp_path):
    api, env = prefect_server.api, prefect_server.env
    run = subprocess.run(
        [str(Path(sys.executable).parent / "boltzgan"), "run", "demo", "--set", f"output.root={tmp_path / 'runs'}",
         "--set", "train.epochs=2", "--set", "sample.chains=40", "--set", "sample.steps=40", "--set", "sample.burn_in=10",
         "--set", "evaluate.num_samples=40", "--set", "evaluate.ais_schedule=linear:300"],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    flow_run = _latest_flow_run(api)
    assert flow_run["state"]["type"] == "COMPLETED"
    browser = Browser(chromium)
    try:
        browser.goto(f"{api.removesuffix('/api')}/runs/flow-run/{flow_run['id']}")
        browser.wait_for_text(flow_run["name"], "Completed", "Artifacts", timeout=90)
        browser.click_text("Artifacts")
        text = browser.wait_for_text("demo-report", "demo-metrics", "demo-epochs", timeout=60)
        shot = browser.screenshot(tmp_path / "flow-run-artifacts.png")
    finally:
        browser.close()
    assert "demo-training" in text and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
