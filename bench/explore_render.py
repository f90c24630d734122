"""Explore page render time in Chromium with many scored candidates.

    python bench/explore_render.py                    # 5,000 candidates, 3 page loads, 3 brushes
    python bench/explore_render.py --candidates 60 --reps 1 --quick --no-write   # smoke test

Builds a real run (digits data, the digits preset's space with a fifth stage so that it holds more
than 5,000 architectures; supernet trained briefly: the scores are real one-shot scores, their
quality does not matter here), scores ``--candidates`` architectures with the engine, computes
fitness and projection, then serves the app as `make run` does (``python -m nasnav.ui.launch``) and opens the Explore page
in system Chromium through Playwright:

- **load**: from navigation until the scatterplot is drawn and Streamlit has finished the script
  run (the status widget is gone); the first load of a fresh server process is reported apart (it
  imports torch and Lightning and fills the caches); a new tab also loads Streamlit's frontend and
  its chart library again;
- **navigation**: in an app already open (what a user does), from a click on the sidebar's Explore
  link on the Home page until the same point;
- **brush -> selection**: from releasing a rectangle drag over the scatterplot until the selection
  summary ("Mean one-shot acc"), or the notice that the rectangle holds no candidate, is on the page.

Needs Chromium (``/usr/bin/chromium`` or ``NASNAV_CHROMIUM``) and the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, log, markdown_table, median_spread, report, set_threads  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    cands = [os.environ["NASNAV_CHROMIUM"]] if os.environ.get("NASNAV_CHROMIUM") else [
        "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in cands if c and Path(c).exists()), None)


def make_run(root: Path, n: int, quick: bool) -> tuple[Path, float]:
    """A run under ``root`` with n scored candidates in round 0, fitness and projection done."""
    from nasnav.config import config_from_dict, preset_path
    from nasnav.store.io import read_yaml
    from nasnav.workflow.analysis import analyze_round
    from nasnav.workflow.runs import create_run
    from nasnav.workflow.search import score_candidates
    from nasnav.workflow.supernet import train_supernet

    raw = read_yaml(preset_path("tiny" if quick else "digits"))
    if not quick:
        raw["space"]["stages"].append({"name": "s5", "candidates": ["conv1x1", "conv3x3", "skip"], "select": "one",
                                       "channels": 64})
    raw["name"] = "bench explore"
    raw["supernet"]["epochs"] = 1
    raw["search"]["strategy"] = "random"
    raw["search"]["budget"] = n
    cfg = config_from_dict(raw)
    if cfg.search_space().size() < n:
        raise ValueError(f"the space holds {cfg.search_space().size()} architectures, fewer than {n}")
    run = create_run(cfg, root / "bench-explore")
    t = time.time()
    train_supernet(run, cfg, 0)
    score_candidates(run, cfg, 0, budget=n)
    analyze_round(run, cfg, 0)
    return run.path, time.time() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page, timeout: int = 120_000) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def load_time(page, url: str) -> float:
    t = time.perf_counter()
    page.goto(url)
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=120_000)
    time.sleep(0.2)  # let a status widget appear if the script is still running
    settle(page)
    return time.perf_counter() - t - 0.2


def nav_time(page, base: str, run: str) -> float:
    """In an open app (the frontend already loaded, as a user has it): Home, then the sidebar's Explore
    link, until the scatterplot is drawn and the script run has finished."""
    page.goto(f"{base}/?run={run}")
    settle(page)
    t = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_text("3 · Explore").click()
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=120_000)
    time.sleep(0.2)
    settle(page)
    return time.perf_counter() - t - 0.2


def brush_time(page, frac: tuple[float, float, float, float]) -> float:
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    x0, y0 = box["x"] + box["width"] * frac[0], box["y"] + box["height"] * frac[1]
    x1, y1 = box["x"] + box["width"] * frac[2], box["y"] + box["height"] * frac[3]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    t = time.perf_counter()
    page.mouse.up()
    # the summary of a selection, or the notice that the rectangle holds no scored candidate
    page.get_by_text(re.compile("Mean one-shot acc|holds no scored candidate")).first.wait_for(timeout=120_000)
    settle(page)
    return time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3, help="page loads (and brushes) after the first")
    ap.add_argument("--threads", type=int, default=None, help="torch threads while building the run")
    ap.add_argument("--quick", action="store_true", help="smoke test: the tiny preset's space")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    exe = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if exe is None or sync_playwright is None:
        print("explore_render: needs Chromium and the playwright package; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        run_path, t_build = make_run(root, args.candidates, args.quick)
        log(f"[explore] run with {args.candidates} candidates built in {t_build:.0f} s")
        port = free_port()
        env = {**os.environ, "NASNAV_RUNS": str(root), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        logf = open(Path(tmp) / "streamlit.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nasnav.ui.launch", "--server.port", str(port), "--server.headless",
             "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while time.time() < deadline:
                try:
                    if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.3)
            url = f"{base}/explore?run={run_path.name}"
            loads, brushes, failed = [], [], 0
            # inside the plot area: a drag that starts on the axis (left 8 %) draws no rectangle
            boxes = [(0.10, 0.05, 0.45, 0.75), (0.15, 0.10, 0.50, 0.80), (0.12, 0.08, 0.42, 0.70)]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
                for i in range(args.reps + 1):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    loads.append(load_time(page, url))
                    if page.get_by_test_id("stException").count():
                        raise RuntimeError("the Explore page shows an exception")
                    if i > 0:
                        try:
                            brushes.append(brush_time(page, boxes[(i - 1) % len(boxes)]))
                        except Exception as e:  # noqa: BLE001 (a brush that selected nothing: counted, not fatal)
                            failed += 1
                            log(f"[explore] brush {i}: no selection summary ({type(e).__name__})")
                    log(f"[explore] load {i}: {loads[-1]:.2f} s" + (f", brush {brushes[-1]:.2f} s" if brushes else ""))
                    page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                navs = [nav_time(page, base, run_path.name) for _ in range(args.reps)]
                log(f"[explore] in-app navigation: {', '.join(f'{x:.2f}' for x in navs)} s")
                page.close()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            logf.close()
    rows = [
        {"measure": f"Explore page, first load on a fresh server ({args.candidates:,} candidates)",
         "seconds": f"{loads[0]:.2f}"},
        {"measure": f"Explore page load in a new tab, later loads ({args.reps})", "seconds": median_spread(loads[1:])},
        {"measure": f"Home -> Explore by the sidebar in an open app ({args.reps})", "seconds": median_spread(navs)},
        {"measure": f"brush a rectangle -> selection summary shown ({len(brushes)} of {args.reps} brushes"
                    + (f"; {failed} showed no summary within 120 s" if failed else "") + ")",
         "seconds": median_spread(brushes) if brushes else "-"},
    ]
    body = (f"A run on digits with {args.candidates:,} scored candidates (fitness and {np.str_('mds')} projection "
            f"done; built in {t_build:.0f} s); `python -m nasnav.ui.launch` and system Chromium ({exe}) through "
            "Playwright on the same machine, viewport 1400x1000.\n\n" + markdown_table(rows))
    report(f"Explore page render ({args.candidates:,} candidates, Chromium)", body, write=not args.no_write,
           group="tiny" if args.quick else "digits", params=vars(args),
           metrics={"build_s": round(t_build, 1), "first_load_s": round(loads[0], 2),
                    "new_tab_s": round(float(np.median(loads[1:])), 2) if len(loads) > 1 else None,
                    "navigation_s": round(float(np.median(navs)), 2) if navs else None})


if __name__ == "__main__":
    main()
