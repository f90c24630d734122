"""A lab server on 127.0.0.1, for the lab-server browser test and the load benchmark: a real OpenID
Connect provider (the ``oidc-provider-mock`` package, its users one click each on its login form), the
app with logins configured in a secrets.toml of its own, a browser logged in through the provider, and
the load time of many browser sessions opening the same page side by side."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from bench.browser import Process, Server, free_port
from nasnav.config import config_from_dict, load_config, preset_path
from nasnav.store.run_dir import RunDir
from nasnav.workflow import access

PAGES = {  # page name -> (URL path, texts its script writes last, one of them: the page has loaded when it is there)
    "Home": ("", ["Continue with the open run"]),
    "Search space": ("search_space", ["New run name"]),
    "Supernet": ("supernet", ["The template network being trained"]),
    "Explore": ("explore", ["Select candidates on the scatterplot to compare", "Fitness appears once candidates"]),
    "Retrain": ("retrain", ["Results"]),
}
TIMEOUT_MS = 180_000  # a page not loaded by then counts as an error


class Provider(Process):
    """oidc-provider-mock on a free port of 127.0.0.1; each user (an e-mail: subject and email claim) is a
    button on its login form. ``url``; ``stop()`` ends it."""

    def __init__(self, users: list[str], log_path: Path, wait: float = 30.0):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
        for u in users:
            cmd += ["--user-claims", json.dumps({"sub": u, "email": u, "name": u.split("@")[0].title()})]
        super().__init__(cmd, log_path, f"{self.url}/.well-known/openid-configuration",
                         "the OpenID Connect provider", wait)


def make_run(runs: Path, name: str, owner: str, epochs: int, stages: int = 0, shared: bool = False) -> RunDir:
    """A run of ``owner``'s on the tiny preset (``stages`` more stages of 3 components each, ``epochs`` of
    supernet training), made on disk as the app makes one."""
    raw = load_config(preset_path("tiny")).to_dict()
    raw["supernet"]["epochs"] = epochs
    raw["space"]["stages"] += [{"name": f"x{i}", "candidates": ["conv3x3", "conv1x1", "skip"], "select": "one",
                                "channels": 16} for i in range(stages)]
    user = access.User(owner)
    run = access.create_run(user, config_from_dict(raw, f"run {name}"), runs / name)
    if shared:
        access.share(user, run, True)
    return run


def write_secrets(path: Path, app_port: int, provider: str, admins: list[str], per_user: int, total: int) -> Path:
    """The secrets.toml of a lab server (README, "A lab server"), for the provider at ``provider``."""
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "nasnav"\nclient_secret = "lab-test"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n\n'
        "[nasnav]\n"
        f"admins = {json.dumps(admins)}\njobs_per_user = {per_user}\njobs_total = {total}\n")
    return path


def lab_server(tmp: Path, runs: Path, provider: Provider, env: dict, admins: list[str], per_user: int = 1,
               total: int = 4) -> Server:
    """The app as `make run` starts it, with logins through ``provider`` and its runs in ``runs``."""
    port = free_port()
    conf = write_secrets(tmp / "secrets.toml", port, provider.url, admins, per_user, total)
    cmd = [sys.executable, "-m", "nasnav.ui.launch", "--secrets.files", str(conf)]
    return Server(cmd, {**env, "NASNAV_RUNS": str(runs)}, tmp / "streamlit.log", wait=60, port=port)


def login(browser, url: str, user: str):
    """A new browser context logged in as ``user`` through the provider's form; returns its page."""
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name=user, exact=True).click()  # the provider's one-click user
    page.get_by_text(f"Logged in as {user.split('@')[0].title()} ({user})").wait_for(timeout=30_000)
    return page


_READY = """(marks) => {  // when one of the page's closing texts is there (its script has run to its end)
  const mark = marks[location.pathname.replace(/^\\/+|\\/+$/g, "")] || [];
  const t = setInterval(() => {
    if (document.body && mark.some((m) => document.body.innerText.includes(m))) {
      window.__nasnavReady = performance.now(); clearInterval(t);
    }
  }, 20);
}"""


def concurrent_loads(browser, states: list[dict], url: str, run: str, pages: dict = PAGES) -> list[dict]:
    """Open each page in every session at once (one context per session, from a logged-in storage state)
    and time it from navigation to loaded (``PAGES``: its closing text); returns {"page", "session", "seconds",
    "errors"}: exception boxes, error boxes and script errors on the page, and a page not loaded in
    ``TIMEOUT_MS`` (its seconds NaN)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # only here: the module serves without it too

    marks = {path: mark for path, mark in pages.values()}
    contexts = [browser.new_context(viewport={"width": 1440, "height": 1100}, storage_state=s) for s in states]
    for c in contexts:
        c.add_init_script(f"({_READY})({json.dumps(marks)})")
    tabs = [c.new_page() for c in contexts]
    script_errors = {i: [] for i in range(len(tabs))}
    for i, tab in enumerate(tabs):
        tab.on("pageerror", lambda e, i=i: script_errors[i].append(str(e)))
    rows = []
    try:
        for name, (path, _) in pages.items():
            for tab in tabs:  # all sessions navigate before any is waited for: the server serves them side by side
                tab.goto(f"{url}/{path}?run={run}", wait_until="commit", timeout=TIMEOUT_MS)
            for i, tab in enumerate(tabs):
                try:
                    tab.wait_for_function("() => window.__nasnavReady !== undefined", timeout=TIMEOUT_MS)
                    seconds, late = tab.evaluate("() => window.__nasnavReady") / 1000, 0
                except PlaywrightTimeout:
                    seconds, late = float("nan"), 1
                boxes = tab.get_by_test_id("stException").count() + tab.get_by_test_id("stAlertContentError").count()
                rows.append({"page": name, "session": i, "seconds": seconds, "errors": boxes + late + len(script_errors[i])})
                script_errors[i].clear()
    finally:
        for c in contexts:
            c.close()
    return rows
