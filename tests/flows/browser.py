"""A minimal headless-Chromium driver over the DevTools protocol (tests only).

Debian's chromium is started with the flags this sandboxed, offline machine needs; pages are
driven with Page.navigate / Runtime.evaluate / Page.captureScreenshot over a websocket."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from tests.ports import free_port

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000"]


class Browser:
    def __init__(self, binary: str = "chromium"):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen([shutil.which(binary) or binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--remote-debugging-port={self.port}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.ws = connect(self._page_ws_url(), max_size=64 * 2**20)
        except BaseException:
            self._stop()
            raise
        self.ids = itertools.count(1)

    def _page_ws_url(self) -> str:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
                    pages = [p for p in json.load(r) if p.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        res = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                        returnByValue=True)
        return res["result"].get("value", "")

    def form_values(self) -> str:
        """The values of the page's inputs and text areas (innerText does not show them), one a line."""
        js = "[...document.querySelectorAll('input, textarea')].map(e => e.value).join('\\n')"
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value", "")

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        raise AssertionError(f"page never showed {needles}; last text: {text[:2000]}")

    def click_text(self, label: str) -> None:
        """Click the first tab, button or link whose visible text is exactly ``label``."""
        js = ("(() => { const el = [...document.querySelectorAll('[role=tab], .p-tab, button, a')]"
              f".find(e => e.innerText && e.innerText.trim() === {json.dumps(label)});"
              " if (!el) return false; el.click(); return true; })()")
        if not self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value"):
            raise AssertionError(f"no clickable element labelled {label!r}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        """Chromium forks helper processes (GPU, renderers): end them all, not just the parent."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["pkill", "-f", f"--user-data-dir={self.profile}"], check=False)
        shutil.rmtree(self.profile, ignore_errors=True)
