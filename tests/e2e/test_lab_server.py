"""The lab server in real Chromium, logins through a real OpenID Connect provider on 127.0.0.1
(oidc-provider-mock): alice's run is hers alone until she shares it, then bob reads it and can change
nothing, not even by URL; the job limit queues her second job and shows where it waits; the admin
stops her job. Then 8 browser sessions load pages side by side while a search runs: no errors
(their load times are bench/lab_load.py's, in BENCHMARKS.md). One server for the module."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.browser import click, no_errors, settle, wait_text
from bench.lab import PAGES, concurrent_loads, login, make_run
from nasnav.config import load_config, preset_path
from nasnav.jobs import commands
from nasnav.jobs.control import running_job, start_job, stop_job
from nasnav.store.io import read_json
from nasnav.store.run_dir import RunDir
from nasnav.workflow import access

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ALICE, BOB, ROOT = "alice@lab.test", "bob@lab.test", "root@lab.test"
LAB = access.Lab.from_settings({"admins": [ROOT]}, logins=True)


@pytest.fixture(scope="module")
def pages(browser, lab, load_run):
    url = lab[0]
    return {who: login(browser, url, who) for who in (ALICE, BOB, ROOT)}


@pytest.fixture(scope="module")
def load_run(lab):
    """Bob's shared run for the load test (360 architectures, as bench/lab_load.py's); its one-epoch
    supernet trains from the start of the module, as bob's one job, while the other tests run."""
    run = make_run(lab[1], "load", BOB, epochs=1, stages=1, shared=True)
    proc = subprocess.Popen([sys.executable, "-m", "nasnav", "supernet", str(run.path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    yield run, proc
    proc.kill()


def listed_runs(page, url: str, pick: str | None = None) -> list[str]:
    """The runs Home's "Open a run" tab offers this user (``pick``: then choose that one there)."""
    page.goto(url)
    page.get_by_role("tab", name="Open a run").click()
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Run", exact=True))
    box.or_(page.get_by_text("No runs of yours yet")).first.wait_for(timeout=30_000)  # the list, or that there is none
    settle(page, 0.5)
    if box.count() == 0:
        return []
    box.click()
    names = page.get_by_role("option").all_inner_texts()
    if pick:
        page.get_by_role("option", name=pick, exact=True).click()
        settle(page)
    else:
        page.keyboard.press("Escape")
    return sorted(n.strip() for n in names)


def stop(page, run: RunDir) -> None:
    """Press Stop on the run's Supernet page until its job is gone (a click while a poll reruns the page can be
    lost), then the page says so."""
    for _ in range(3):
        expect(page.get_by_role("button", name="Stop", exact=True)).to_be_enabled(timeout=30_000)
        settle(page, 1.0)
        click(page, "Stop")
        deadline = time.time() + 20
        while running_job(run) and time.time() < deadline:
            time.sleep(0.3)
        if running_job(run) is None:
            break
    assert running_job(run) is None
    wait_text(page, "stopped", 30_000)


def test_a_run_is_private_to_its_owner_even_by_url(lab, pages):
    url, runs, _ = lab
    alice, bob = pages[ALICE], pages[BOB]
    alice.get_by_test_id("stSelectbox").filter(has_text="Preset").click()
    alice.get_by_role("option", name="tiny", exact=True).click()
    settle(alice)
    click(alice, "Create run")
    wait_text(alice, "Open run:", 30_000)
    assert read_json(runs / "tiny-1" / "owner.json")["owner"] == ALICE

    assert listed_runs(bob, url) == ["load"]  # his own only
    for path in ("", "supernet", "explore"):  # a link to her run, on any page
        bob.goto(f"{url}/{path}?run=tiny-1")
        wait_text(bob, "run 'tiny-1': not yours and not shared with you", 20_000)
        assert bob.get_by_text("Open run: tiny-1").count() == 0
        expect(bob).not_to_have_url(re.compile("run=tiny-1"), timeout=10_000)  # the link is taken off the address
        no_errors(bob)


def test_a_shared_run_is_read_only_for_others(lab, pages):
    url, runs, _ = lab
    alice, bob = pages[ALICE], pages[BOB]
    assert listed_runs(alice, url, pick="tiny-1") == ["load", "tiny-1"]  # bob's is shared
    alice.get_by_text("Shared read-only with everyone logged in").click()
    settle(alice, 1.0)
    assert read_json(runs / "tiny-1" / "owner.json")["shared"] is True

    assert listed_runs(bob, url) == ["load", "tiny-1"]
    bob.goto(f"{url}/supernet?run=tiny-1")
    wait_text(bob, "Read-only: this run is alice@lab.test's", 20_000)
    expect(bob.get_by_role("button", name="Start training", exact=True)).to_be_disabled()
    bob.goto(f"{url}/search_space?run=tiny-1")
    wait_text(bob, "Read-only: this run is alice@lab.test's", 20_000)
    click(bob, "Save space")  # the button is there (the space is editable), the server refuses
    wait_text(bob, "only its owner or an admin may change the space of it", 20_000)
    assert not (runs / "tiny-1" / "rounds" / "000" / "lightning").exists()
    no_errors(bob)


def test_the_job_limit_queues_and_only_owner_or_admin_stop(lab, pages):
    url, runs, _ = lab
    alice, bob, root = pages[ALICE], pages[BOB], pages[ROOT]
    access.share(LAB.user(ALICE), make_run(runs, "long", ALICE, epochs=500), True)
    alice.goto(f"{url}/supernet?run=long")
    click(alice, "Start training")
    wait_text(alice, "supernet", 20_000)
    # her second job, long enough to be still running when she stops it: 1 job per user, so it waits
    second = make_run(runs, "second", ALICE, epochs=500)
    alice.goto(f"{url}/supernet?run=second")
    click(alice, "Start training")
    wait_text(alice, "Queued: place 1 of 1", 20_000)
    assert running_job(second) is None

    bob.goto(f"{url}/supernet?run=long")
    wait_text(bob, "Read-only", 20_000)
    expect(bob.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    assert running_job(RunDir(runs / "long")) is not None

    root.goto(f"{url}/supernet?run=long")  # an admin sees and stops any run
    stop(root, RunDir(runs / "long"))
    # the freed slot goes to alice's waiting job (the server's queue thread starts it); she stops it
    deadline = time.time() + 60
    while running_job(second) is None:
        assert time.time() < deadline, "the queued job did not start when the slot freed up"
        time.sleep(0.5)
    alice.goto(f"{url}/supernet?run=second")
    stop(alice, second)
    no_errors(alice)
    no_errors(root)


@pytest.mark.timeout(900)
def test_eight_sessions_load_pages_while_a_search_runs(browser, lab, pages, load_run):
    """Home (the lightest page) and Explore (the heaviest, reading what the search writes); bench/lab_load.py
    times every page."""
    url, runs, log = lab
    run, training = load_run
    assert training.wait(timeout=120) == 0
    search = start_job(run, "search", commands.search(run, "random", 100_000))
    try:
        states = [pages[(ALICE, BOB)[i % 2]].context.storage_state() for i in range(8)]
        assert (running_job(run) or {}).get("pid") == search
        rows = concurrent_loads(browser, states, url, run.name, {p: PAGES[p] for p in ("Home", "Explore")})
        alice = pages[ALICE]  # and she cannot decide on bob's shared run
        alice.goto(f"{url}/explore?run={run.name}")
        alice.get_by_role("tab", name="Decisions").first.click()
        settle(alice)
        click(alice, "Prune")
        wait_text(alice, "only its owner or an admin may change it", 20_000)
    finally:
        stop_job(run, timeout=10)
    assert [r for r in rows if r["errors"]] == []  # none late (TIMEOUT_MS), no error box, no script error
    assert len(rows) == 8 * 2 and all(r["seconds"] > 0 for r in rows)
    # the app's own errors: a script's uncaught exception, the pages' guard, any traceback through our code (a
    # browser tab leaving mid-handshake makes Streamlit's server log a websocket traceback of its own: not ours)
    text = log.read_text()
    ours = [line for line in text.splitlines() if line.strip().startswith('File "') and
            any(f"{REPO / part}" in line for part in ("nasnav", "pages", "app.py"))]
    assert "Uncaught app execution" not in text and "unexpected error" not in text and not ours, text[-3000:]


def test_runs_without_an_owner_are_for_admins_only(lab, pages):
    url, runs, _ = lab
    access.create_run(access.LOCAL, load_config(preset_path("tiny")), runs / "old")  # as the CLI makes one
    assert "old" in listed_runs(pages[ROOT], url) and "old" not in listed_runs(pages[ALICE], url)
    pages[BOB].goto(f"{url}/?run=old")
    wait_text(pages[BOB], "run 'old': not yours and not shared with you", 20_000)
