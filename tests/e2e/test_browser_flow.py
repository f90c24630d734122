"""The whole loop in real Chromium, as a new user would do it: create a run from the tiny preset,
train the supernet, search, brush the scatterplot, prune from the selection, start the next
round, retrain the best, download model.py; a spot check runs beside it all, and its two answers read the
same on the Retrain page and in the model card. Screenshots of each page go to test-artifacts/e2e/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.browser import click, nav, no_errors, settle, wait_text

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"

pytestmark = pytest.mark.e2e
JOB_TIMEOUT = 120_000  # ms; each tiny job takes seconds, most of it importing torch


def shot(page, name: str, height: int = 2200) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its own container, so the
    viewport is made tall for the picture)."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    settle(page, 1.5)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)
    settle(page, 0.5)


def metric(page, label: str) -> str:
    """The value an st.metric with this label shows."""
    box = page.get_by_test_id("stMetric").filter(has_text=label).first
    box.wait_for(timeout=30_000)
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def test_whole_loop_in_chromium(page, app_server):
    url, runs = app_server
    t0 = time.time()
    page.goto(url)
    page.get_by_test_id("stApp").wait_for()
    wait_text(page, "Create from a preset", 30_000)
    no_errors(page)

    # Home: create a run from the tiny preset
    page.get_by_test_id("stSelectbox").filter(has_text="Preset").click()
    page.get_by_role("option", name="tiny", exact=True).click()
    settle(page)
    click(page, "Create run")
    wait_text(page, "Open run:", 30_000)
    assert (runs / "tiny-1" / "config.yaml").exists()
    # the name box offers the next free name, not the one just taken (issue 18, item 16)
    expect(page.get_by_label("Run name").first).to_have_value("tiny-2", timeout=10_000)
    shot(page, "1_home")
    no_errors(page)

    # 1 · Search space: the lego view of the run
    nav(page, "1 · Search space")
    wait_text(page, "Architectures", 30_000)
    assert metric(page, "Architectures") == "120"  # the tiny preset's 4 x (4 + 6) x 3
    assert int(metric(page, "Params, largest").replace(",", "")) > int(metric(page, "Params, smallest").replace(",", ""))
    shot(page, "2_search_space")
    no_errors(page)

    # 2 · Supernet training
    nav(page, "2 · Supernet training")
    click(page, "Start training")
    wait_text(page, "supernet: finished")
    wait_text(page, "Epochs done", 30_000)
    assert (runs / "tiny-1" / "rounds" / "000" / "supernet.ckpt").exists()
    shot(page, "3_supernet")
    no_errors(page)

    # 3 · Explore: search, brush, prune from the selection, next round
    nav(page, "3 · Explore")
    click(page, "Start search")
    wait_text(page, "search: finished")
    wait_text(page, "scored candidates (coloured)", 30_000)
    settle(page, 1.0)
    # the spot check runs beside the main job: start it, then keep exploring (brush, prune, next round)
    page.get_by_role("tab", name="Spot check").first.click()
    settle(page)
    click(page, "Run spot check")
    settle(page, 1.0)
    assert (runs / "tiny-1" / "spotcheck.lock").exists()
    # no saved selection yet: no "Selection" radio with a single option (issue 18, item 8)
    assert page.get_by_role("radiogroup").filter(has_text="chart selection").count() == 0
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    # drag a rectangle over the left half of the plot area (the colour legend sits at the right)
    x0, y0 = box["x"] + box["width"] * 0.10, box["y"] + box["height"] * 0.05
    x1, y1 = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.75
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    wait_text(page, "Mean one-shot acc", 30_000)
    settle(page, 1.0)
    shot(page, "4_explore_selection")
    # a saved selection is at once a source to choose and an operand of Set operations, without a reload (item 2)
    click(page, "Save selection")
    expect(page.get_by_role("radiogroup").filter(has_text="saved: selection 1")).to_have_count(1, timeout=20_000)
    page.get_by_role("tab", name="Set operations").first.click()
    wait_text(page, "Selection A", 20_000)
    settle(page, 1.0)  # the tab's rerun is over before the next click (a click during it can be lost)
    assert page.get_by_role("textbox", name="Save selection as").input_value() == "selection 2"
    click(page, "Keep only what the selection uses")
    page.get_by_role("tab", name="Decisions").first.click()
    settle(page)
    wait_text(page, "Auto-pilot suggestions", 20_000)
    wait_text(page, "Track record: on 6 tuning tables", 20_000)  # the suite's record beside the proposal (issue 15)
    shot(page, "4b_explore_decisions")
    # the pending decision holds the prunes: its Apply button comes alive
    expect(page.get_by_role("button", name="Apply decision", exact=True)).to_be_enabled(timeout=20_000)
    click(page, "Apply decision")
    page.get_by_role("button", name="Start next round", exact=True).wait_for(timeout=30_000)
    assert (runs / "tiny-1" / "rounds" / "001" / "space.yaml").exists()
    click(page, "Start next round")
    wait_text(page, "round: finished")
    assert (runs / "tiny-1" / "rounds" / "001" / "candidates.csv").exists()
    settle(page, 2.0)
    page.get_by_role("tab", name="Rounds").first.click()
    settle(page)
    shot(page, "5_explore_round1")
    no_errors(page)

    # the pruned space is what the search-space page now shows
    nav(page, "1 · Search space")
    pruned = int(metric(page, "Architectures").replace(",", ""))
    assert 1 <= pruned < 120, pruned
    wait_text(page, "pruned: ", 30_000)
    no_errors(page)

    # 4 · Retrain the best and download model.py
    nav(page, "4 · Retrain & export")
    page.get_by_role("button", name="Retrain").first.click()
    settle(page)
    wait_text(page, "retrain: finished")
    download = page.get_by_role("button", name="model.py", exact=True)
    download.wait_for(timeout=30_000)
    with page.expect_download() as dl:
        download.click()
    target = ARTIFACTS / "model.py"
    dl.value.save_as(target)
    assert "nn.Module" in target.read_text()
    val, test = float(metric(page, "Validation accuracy (chose it)")), float(metric(page, "Test accuracy (reported only)"))
    assert 0.2 < val <= 1 and 0.2 < test <= 1, (val, test)  # 10 classes: well above chance after 8 epochs
    shot(page, "6_retrain")
    no_errors(page)
    assert time.time() - t0 < 240, "the end-to-end flow should take a few minutes at most"

    # the spot check's two answers, the same words on the Explore tab, the Retrain page and the model card
    deadline = time.time() + 120
    summary = runs / "tiny-1" / "rounds" / "000" / "spotcheck.json"
    while time.time() < deadline and '"state": "done"' not in (summary.read_text() if summary.exists() else ""):
        time.sleep(1)
    answers = json.loads(summary.read_text())["answers"]
    nav(page, "4 · Retrain & export")
    for a in answers.values():
        wait_text(page, a["text"][:60], 30_000)
    nav(page, "3 · Explore")  # round 1 is current: its spot-check tab quotes round 0's answers
    page.get_by_role("tab", name="Spot check").first.click()
    for a in answers.values():
        wait_text(page, a["text"][:60], 30_000)
    (card,) = (runs / "tiny-1" / "final").glob("*/model_card.md")
    assert all(a["text"] in card.read_text() for a in answers.values())
    no_errors(page)
