"""Browser end-to-end fixtures: the app on a free port and system Chromium driven by Playwright.

Without Chromium (or the playwright package) the tests skip with a notice, unless
NASNAV_REQUIRE_BROWSER=1 (set by .ci/run): then they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium: NASNAV_CHROMIUM if set (only that), else /usr/bin/chromium or on PATH."""
    if os.environ.get("NASNAV_CHROMIUM"):
        cands = [os.environ["NASNAV_CHROMIUM"]]
    else:
        cands = ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in cands if c and Path(c).exists()), None)


def _missing(why: str) -> None:
    if os.environ.get("NASNAV_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser end-to-end test required (NASNAV_REQUIRE_BROWSER=1) but {why}")
    pytest.skip(f"NOTICE: browser end-to-end test skipped: {why} (apt-get install chromium to run it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        _missing("Chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app as `make run` starts it (`python -m nasnav.ui.launch`), NASNAV_RUNS in a temporary folder; yields (url, runs root)."""
    runs = tmp_path_factory.mktemp("e2e_runs")
    port = free_port()
    # jobs inherit this environment; one torch thread each: the browser and the app share the 2 cores
    env = {**os.environ, "NASNAV_RUNS": str(runs), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = open(runs.parent / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasnav.ui.launch", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"streamlit did not start; see {runs.parent / 'streamlit.log'}")
    yield url, runs
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()
