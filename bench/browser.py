"""A headless Streamlit server and the system Chromium, for the Explore render benchmark and the
browser end-to-end test (``tests/e2e``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium: NASNAV_CHROMIUM if set (only that), else /usr/bin/chromium or on PATH."""
    if os.environ.get("NASNAV_CHROMIUM"):
        cands = [os.environ["NASNAV_CHROMIUM"]]
    else:
        cands = ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in cands if c and Path(c).exists()), None)


def browser_or_skip(script: str):
    """Playwright's ``sync_playwright`` when Chromium and the package are there, else None (``script`` says
    it is skipped)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium_path() is None or sync_playwright is None:
        print(f"{script}: needs Chromium and the playwright package; skipped")
        return None
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A background process, its output in ``log_path``, ready when ``ready_url`` answers (and ``ok`` accepts the
    answer); RuntimeError naming ``what`` after ``wait`` s without one. ``pid``; ``stop()`` ends it."""

    def __init__(self, cmd: list[str], log_path: Path, ready_url: str, what: str, wait: float,
                 ok=lambda body: True, **popen):
        self._log = open(log_path, "w")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, **popen)
        self.pid = self._proc.pid
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                if ok(urllib.request.urlopen(ready_url, timeout=2).read()):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{what} did not start within {wait:.0f} s; see {log_path}")

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._log.close()


class Server(Process):
    """``cmd`` (a Streamlit command line, e.g. ``python -m nasnav.ui.launch``) on a free port of
    127.0.0.1 (``address``; None: whatever the command itself listens on), headless, its output in
    ``log_path``; started at once, ready when the constructor returns (RuntimeError after ``wait`` s
    without an answer). ``url``, ``port``, ``pid``; ``stop()`` ends it. ``port``: this one instead of a free
    one (a login's redirect address names it before the server starts)."""

    def __init__(self, cmd: list[str], env: dict, log_path: Path, wait: float = 90.0,
                 address: str | None = "127.0.0.1", cwd: Path = ROOT, port: int | None = None):
        port = port or free_port()
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        where = ["--server.address", address] if address else []  # None: the command's own default
        super().__init__([*cmd, "--server.port", str(port), "--server.headless", "true", *where,
                          "--browser.gatherUsageStats", "false"], log_path, f"{self.url}/_stcore/health",
                         "streamlit", wait, ok=lambda body: body == b"ok", cwd=cwd, env=env)


# ---- a Streamlit page in Playwright -----------------------------------------------------------------------
def settle(page, seconds: float = 0.4) -> None:
    """Wait until Streamlit is not running the script (the status widget disappears)."""
    time.sleep(seconds)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def nav(page, title: str) -> None:
    """Click the sidebar's link to a page."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    settle(page, 1.0)


def no_errors(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, "an exception box is on the page"


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    settle(page)


def wait_text(page, text: str, timeout: int = 120_000) -> None:
    t = time.time()
    page.get_by_text(text).first.wait_for(timeout=timeout)
    print(f"  [{time.strftime('%H:%M:%S')}] '{text}' after {time.time() - t:.1f} s")
