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

from tests.flows.browser import Browser

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


def test_flow_run_page_shows_completed_run_and_artifacts(chromium, prefect_server, shared_runs, tmp_path):
    api, env = prefect_server.api, prefect_server.env
    run = subprocess.run(
        [str(Path(sys.executable).parent / "boltzgan"), "run", "demo", "--set", f"output.root={shared_runs}",
         "--set", "train.epochs=2", "--set", "sample.chains=40", "--set", "sample.steps=40", "--set", "sample.burn_in=10",
         "--set", "evaluate.num_samples=40", "--set", "evaluate.ais_schedule=linear:300"],
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fid = " in run.stderr and "vs floor" in run.stderr, run.stderr[-2000:]  # rounded, with a reading
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


REGISTER = """
from flows.pipeline import run_preset
print(run_preset.to_deployment(name="ui-form", parameters={"preset": "demo", "overrides": ["train.epochs=1"]}).apply())
"""


def test_deployment_run_form_shows_the_preset_and_overrides_fields(chromium, prefect_server, tmp_path):
    """The deployment's custom-run form (what a user fills in to start a run by hand)."""
    done = subprocess.run([sys.executable, "-c", REGISTER], env=prefect_server.env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    deployment_id = done.stdout.strip().splitlines()[-1]
    browser = Browser(chromium)
    try:
        browser.goto(f"{prefect_server.api.removesuffix('/api')}/deployments/deployment/{deployment_id}/run")
        deadline = time.time() + 90
        seen = ""
        while time.time() < deadline and not _form_ready(seen):
            time.sleep(0.5)
            seen = browser.text() + "\n" + browser.form_values()
        shot = browser.screenshot(tmp_path / "deployment-run-form.png")
    finally:
        browser.close()
    assert _form_ready(seen), seen[:2000]
    print(f"screenshot: {shot}")


def _form_ready(seen: str) -> bool:
    """The form's fields are labelled by parameter name and pre-filled with the deployment's defaults."""
    return "preset" in seen.lower() and "overrides" in seen.lower() and "demo" in seen and "train.epochs=1" in seen
