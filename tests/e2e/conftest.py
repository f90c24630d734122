"""Browser end-to-end fixtures: the app on a free port and system Chromium driven by Playwright.

Without Chromium (or the playwright package) the tests skip with a notice, unless
NASNAV_REQUIRE_BROWSER=1 (set by .ci/run): then they fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.browser import CHROMIUM_FLAGS, Server, chromium_path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
OWN_COMPONENTS = REPO / "examples" / "se_blocks.py"  # the app starts with them, as `nasnav app --components`


def _missing(why: str) -> None:
    if os.environ.get("NASNAV_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser end-to-end test required (NASNAV_REQUIRE_BROWSER=1) but {why}")
    pytest.skip(f"NOTICE: browser end-to-end test skipped: {why} (apt-get install chromium to run it)")


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
    """The app as `make run` starts it (`python -m nasnav.ui.launch`), with the README's own components,
    NASNAV_RUNS in a temporary folder; yields (url, runs root)."""
    runs = tmp_path_factory.mktemp("e2e_runs")
    # jobs inherit this environment; one torch thread each: the browser and the app share the 2 cores
    env = {**os.environ, "NASNAV_RUNS": str(runs), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    try:
        server = Server([sys.executable, "-m", "nasnav.ui.launch", "--components", str(OWN_COMPONENTS)], env,
                        runs.parent / "streamlit.log", wait=60)
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server.url, runs
    server.stop()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


LAB_ADMIN = "root@lab.test"
LAB_USERS = ("alice@lab.test", "bob@lab.test", LAB_ADMIN)


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """A lab server: a real OpenID Connect provider (oidc-provider-mock) and the app with logins through it
    (admin root@lab.test, 1 job per user, 3 in all), its runs in a temporary folder; yields (url, runs, log)."""
    from bench.lab import Provider, lab_server

    try:
        import oidc_provider_mock  # noqa: F401
    except ImportError:
        _missing("the oidc-provider-mock package is not installed (requirements-dev.txt)")
    tmp = tmp_path_factory.mktemp("lab")
    runs = tmp / "runs"
    runs.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    provider = Provider(list(LAB_USERS), tmp / "provider.log")
    try:
        server = lab_server(tmp, runs, provider, env, admins=[LAB_ADMIN], per_user=1, total=3)
    except RuntimeError as e:
        provider.stop()
        pytest.fail(str(e))
    yield server.url, runs, tmp / "streamlit.log"
    server.stop()
    provider.stop()
