"""Page load times of a lab server while many browser sessions use it and a search runs.

    python bench/lab_load.py                                  # 8 sessions of 2 users, every page
    python bench/lab_load.py --sessions 2 --quick --no-write  # smoke test

Serves the app with logins (README, "A lab server") through a real OpenID Connect provider on
127.0.0.1 (oidc-provider-mock), logs two users in, makes a shared run of the tiny preset with four
more stages (9,720 architectures; one-epoch supernet) and starts a search on it (the page says whether it
outlasted the measurement). Then each page (Home, Search space, Supernet, Explore, Retrain, with that run open) is
opened in one session alone, and then in every session at once (one Chromium, one context per
session, all navigations started before any is waited for): the time from navigation until the
page's closing text is there (``bench.lab.concurrent_loads``).
Error boxes and script errors on any page are counted (the e2e test asserts there are none).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.browser import CHROMIUM_FLAGS, browser_or_skip, chromium_path  # noqa: E402
from bench.common import log, markdown_table, median_spread, report, set_threads  # noqa: E402
from bench.lab import PAGES, Provider, concurrent_loads, lab_server, login, make_run  # noqa: E402

USERS = ["alice@lab.test", "bob@lab.test"]


def measure(browser, url: str, run: str, sessions: int) -> tuple[list[dict], list[dict]]:
    """(alone, together): the loads of one session, then of ``sessions`` at once, sessions alternating users."""
    states = [login(browser, url, u).context.storage_state() for u in USERS]
    alone = concurrent_loads(browser, states[:1], url, run)
    together = concurrent_loads(browser, [states[i % len(states)] for i in range(sessions)], url, run)
    return alone, together


def options(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8, help="browser sessions at once")
    ap.add_argument("--quick", action="store_true", help="smoke test (recorded apart from the real run)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of this process (jobs: 1)")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = options(argv)
    sync_playwright = browser_or_skip("lab_load")
    if sync_playwright is None:
        return
    set_threads(args.threads)
    exe = chromium_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = tmp / "runs"
        runs.mkdir()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        run = make_run(runs, "load", USERS[0], epochs=1, stages=4, shared=True)
        subprocess.run([sys.executable, "-m", "nasnav", "supernet", str(run.path)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        provider = Provider(USERS, tmp / "provider.log")
        server = lab_server(tmp, runs, provider, env, admins=[], per_user=2, total=4)
        search = subprocess.Popen([sys.executable, "-m", "nasnav", "search", str(run.path), "--strategy", "random",
                                   "--budget", "100000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        load = os.getloadavg()[0]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
                alone, together = measure(browser, server.url, run.name, args.sessions)
                browser.close()
            ran_throughout = search.poll() is None
        finally:
            search.terminate()
            search.wait(timeout=30)
            server.stop()
            provider.stop()
    rows, errors = [], sum(r["errors"] for r in alone + together)
    for page in PAGES:
        one = [r["seconds"] for r in alone if r["page"] == page]
        many = [r["seconds"] for r in together if r["page"] == page]
        rows.append({"page": page, "1 session (s)": f"{one[0]:.2f}", f"{args.sessions} sessions at once (s)": median_spread(many),
                     "errors": str(sum(r["errors"] for r in together if r["page"] == page))})
        log(f"[lab] {page}: alone {one[0]:.2f} s, {args.sessions} at once {median_spread(many)} s")
    all_many = [r["seconds"] for r in together]
    body = (f"{args.sessions} browser sessions (one Chromium, one context each; users alternating between 2) open each "
            f"page at once, with a search running on the open run{'' if ran_throughout else ' (it ended before the last page)'}; "
            f"'median [min, max]' over the sessions, from navigation until the page's closing text (the end of its script) "
            f"is there. Load average at the start: {load:.1f}. Errors on the pages: {errors}.\n\n"
            + markdown_table(rows))
    report(f"Lab server under load ({args.sessions} sessions, Chromium)", body, write=not args.no_write, group="tiny",
           params=vars(args), metrics={"median_s": float(np.median(all_many)), "max_s": float(np.max(all_many)),
                                       "errors": errors, "sessions": args.sessions})


if __name__ == "__main__":
    main()
