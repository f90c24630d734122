"""Explore page render time in Chromium with many scored candidates.

    python bench/explore_render.py                    # 5,000 candidates, 3 page loads, 3 brushes
    python bench/explore_render.py --candidates 60 --reps 1 --quick --no-write   # smoke test

Builds a real run (digits data, the digits preset's space with a fifth stage so that it holds more
than 5,000 architectures; supernet trained briefly: the scores are real one-shot scores, their
quality does not matter here), scores ``--candidates`` architectures with the engine, computes
fitness and projection, then serves the app as `make run` does (``python -m nasnav.ui.launch``) and opens the Explore page
in system Chromium through Playwright:

- **load**: from navigation until the scatterplot is drawn and Streamlit has finished the script
  run (the status widget is gone): the first load of a fresh server process (it fills the caches);
  a new tab beside the open app (the browser has Streamlit's frontend cached, as a user's has); a new
  tab in an empty browser profile (the frontend and its chart library are fetched and compiled
  again), measured side by side with a bare Streamlit page holding one small chart, the floor any
  Streamlit page pays there;
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
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.browser import CHROMIUM_FLAGS, Server, browser_or_skip, chromium_path  # noqa: E402
from bench.common import log, markdown_table, median_spread, report, set_threads  # noqa: E402


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


BARE_PAGE = """import pandas as pd
import streamlit as st

st.title("bare")
st.line_chart(pd.DataFrame({"y": [1, 3, 2]}))
"""


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
    exe, sync_playwright = chromium_path(), browser_or_skip("explore_render")
    if sync_playwright is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        run_path, t_build = make_run(root, args.candidates, args.quick)
        log(f"[explore] run with {args.candidates} candidates built in {t_build:.0f} s")
        env = {**os.environ, "NASNAV_RUNS": str(root), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        bare_script = Path(tmp) / "bare_page.py"
        bare_script.write_text(BARE_PAGE)
        app = Server([sys.executable, "-m", "nasnav.ui.launch"], env, Path(tmp) / "streamlit.log")
        bare = Server([sys.executable, "-m", "streamlit", "run", str(bare_script)], env, Path(tmp) / "bare.log")
        app_url, bare_url = app.url, bare.url
        url = f"{app_url}/explore?run={run_path.name}"
        first, cold, warm, ref, brushes, failed = [], [], [], [], [], 0
        # inside the plot area: a drag that starts on the axis (left 8 %) draws no rectangle
        boxes = [(0.10, 0.05, 0.45, 0.75), (0.15, 0.10, 0.50, 0.80), (0.12, 0.08, 0.42, 0.70)]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
                view = {"viewport": {"width": 1400, "height": 1000}}
                for i in range(args.reps + 1):
                    # a new tab in an empty browser profile: nothing cached, the frontend is fetched again
                    page = browser.new_page(**view)
                    (first if i == 0 else cold).append(load_time(page, url))
                    if page.get_by_test_id("stException").count():
                        raise RuntimeError("the Explore page shows an exception")
                    if i > 0:
                        try:
                            brushes.append(brush_time(page, boxes[(i - 1) % len(boxes)]))
                        except Exception as e:  # noqa: BLE001 (a brush that selected nothing: counted, not fatal)
                            failed += 1
                            log(f"[explore] brush {i}: no selection summary ({type(e).__name__})")
                        page.close()
                        page = browser.new_page(**view)
                        ref.append(load_time(page, bare_url))
                    log(f"[explore] load {i}: {(first + cold)[-1]:.2f} s" + (
                        f", bare page {ref[-1]:.2f} s, brush {brushes[-1] if brushes else float('nan'):.2f} s"
                        if i else ""))
                    page.close()
                # a browser that has the app open: new tabs reuse its cached frontend
                profile = browser.new_context(**view)
                opened = profile.new_page()
                opened.goto(f"{app_url}/?run={run_path.name}")
                settle(opened)
                for _ in range(args.reps):
                    page = profile.new_page()
                    warm.append(load_time(page, url))
                    page.close()
                log(f"[explore] new tab beside the open app: {', '.join(f'{x:.2f}' for x in warm)} s")
                navs = [nav_time(opened, app_url, run_path.name) for _ in range(args.reps)]
                log(f"[explore] in-app navigation: {', '.join(f'{x:.2f}' for x in navs)} s")
                profile.close()
                browser.close()
        finally:
            app.stop()
            bare.stop()
    ratio = float(np.median(cold)) / float(np.median(ref)) if cold and ref else float("nan")
    rows = [
        {"measure": f"Explore page, first load on a fresh server ({args.candidates:,} candidates)",
         "seconds": f"{first[0]:.2f}"},
        {"measure": f"Home -> Explore by the sidebar in an open app ({args.reps})", "seconds": median_spread(navs)},
        {"measure": f"a new tab opening Explore, beside the open app ({args.reps})", "seconds": median_spread(warm)},
        {"measure": f"a new tab opening Explore in an empty browser profile ({args.reps})",
         "seconds": median_spread(cold)},
        {"measure": f"the same, a bare Streamlit page with one small chart (the frontend's own start; {args.reps})",
         "seconds": median_spread(ref)},
        {"measure": "Explore / bare page, empty profile", "seconds": f"{ratio:.2f}x"},
        {"measure": f"brush a rectangle -> selection summary shown ({len(brushes)} of {args.reps} brushes"
                    + (f"; {failed} showed no summary within 120 s" if failed else "") + ")",
         "seconds": median_spread(brushes) if brushes else "-"},
    ]
    body = (f"A run on digits with {args.candidates:,} scored candidates (fitness and {np.str_('mds')} projection "
            f"done; built in {t_build:.0f} s); `python -m nasnav.ui.launch` and system Chromium ({exe}) through "
            "Playwright on the same machine, viewport 1400x1000.\n\n" + markdown_table(rows))
    report(f"Explore page render ({args.candidates:,} candidates, Chromium)", body, write=not args.no_write,
           group="tiny" if args.quick else "digits", params=vars(args),
           metrics={"build_s": round(t_build, 1), "first_load_s": round(first[0], 2),
                    "new_tab_s": round(float(np.median(warm)), 2) if warm else None,
                    "empty_profile_s": round(float(np.median(cold)), 2) if cold else None,
                    "bare_page_s": round(float(np.median(ref)), 2) if ref else None,
                    "navigation_s": round(float(np.median(navs)), 2) if navs else None})


if __name__ == "__main__":
    main()
