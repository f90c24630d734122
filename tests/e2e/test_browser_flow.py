"""The whole loop in real Chromium, as a new user would do it, twice, with the guided walkthrough on.

First: create a run from the tiny preset, train the supernet, search, brush the scatterplot, prune from the
selection, start the next round, retrain, download model.py; a spot check runs beside it all, its two answers
read the same on the Retrain page and in the model card, and its advice ("retrain several") is what the
walkthrough names and what the press starts. Second, on a new run without a spot check: the walkthrough
names one network and the press retrains one. Screenshots of each page go to test-artifacts/e2e/."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from bench.browser import click, nav, no_errors, settle, wait_text
from nasnav.analysis import trust
from nasnav.config import load_config, save_config
from nasnav.store.records import read_space
from nasnav.store.run_dir import RunDir, arch_key
from nasnav.ui import queue as jobq

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


def walkthrough_count(page, where: str) -> int:
    """The number of networks the walkthrough's next step on this page says a press retrains."""
    box = page.locator(f".st-key-guide_{where}")
    expect(box).to_contain_text("from scratch", timeout=30_000)
    found = re.search(r"retrain (\d+) networks? from scratch", box.inner_text())
    assert found, box.inner_text()
    return int(found.group(1))


def choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def least_used_component(run: RunDir) -> tuple[str, str]:
    """The component whose pruning drops the fewest of the candidates a spot check tries as the round's best
    (the one-shot top 8, the top 2 counting most): pruning it keeps the spot check's advice in the space."""
    cands = pd.read_csv(run.round_dir(0) / "candidates.csv")
    top = trust.top_candidates(list(cands["arch"].astype(str)), list(cands["one_shot_acc"]), trust.TOP_M)
    space = read_space(run, 0, kind="image")
    uses = {(s.name, c): 100 * sum(c in a.split("/")[i].split("+") for a in top[:2])
            + sum(c in a.split("/")[i].split("+") for a in top)
            for i, s in enumerate(space.stages) if len(s.candidates) > 1 for c in s.candidates}
    return min(uses, key=uses.get)


def create_run(page, runs: Path, name: str) -> RunDir:
    nav(page, "Home")
    choose(page, "Preset", "tiny")
    expect(page.get_by_label("Run name").first).to_have_value(name, timeout=10_000)
    click(page, "Create run")
    wait_text(page, "Open run:", 30_000)
    deadline = time.time() + 30
    while not (runs / name / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (runs / name / "config.yaml").exists()
    return RunDir(runs / name)


def train_and_search(page, run: RunDir) -> None:
    nav(page, "2 · Supernet training")
    click(page, "Start training")
    wait_text(page, "supernet: finished")
    wait_text(page, "Epochs done", 30_000)
    assert (run.round_dir(0) / "supernet.ckpt").exists()
    nav(page, "3 · Explore")
    click(page, "Start search")
    wait_text(page, "search: finished")
    wait_text(page, "scored candidates (coloured)", 30_000)
    settle(page, 1.0)


def brush(page) -> None:
    """Drag a rectangle over the left half of the plot area (the colour legend sits at the right); once more,
    wider, if the chart was redrawn under the drag (a busy machine) and no selection came of it."""
    for right in (0.45, 0.70):
        settle(page)
        chart = page.get_by_test_id("stVegaLiteChart").first
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.10, box["y"] + box["height"] * 0.05
        x1, y1 = box["x"] + box["width"] * right, box["y"] + box["height"] * 0.75
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=8)
        page.mouse.move(x1, y1, steps=8)
        page.mouse.up()
        try:
            wait_text(page, "Mean one-shot acc", 20_000)
            break
        except Exception:
            if right == 0.70:
                raise
    settle(page, 1.0)


def apply_and_next_round(page, run: RunDir, prune: tuple[str, str] | None = None) -> None:
    """Apply the pending decision (the prunes of "Keep only what the selection uses"); with ``prune``, instead
    drop it and prune just that component."""
    page.get_by_role("tab", name="Decisions").first.click()
    settle(page)
    wait_text(page, "Auto-pilot suggestions", 20_000)
    # the pending decision holds the prunes: its Apply button comes alive
    expect(page.get_by_role("button", name="Apply decision", exact=True)).to_be_enabled(timeout=20_000)
    if prune:
        click(page, "Clear")
        expect(page.get_by_role("button", name="Apply decision", exact=True)).to_be_disabled(timeout=20_000)
        choose(page, "Stage", prune[0])
        choose(page, "Component", prune[1])
        click(page, "Prune")
        expect(page.get_by_role("button", name="Apply decision", exact=True)).to_be_enabled(timeout=20_000)
    click(page, "Apply decision")
    page.get_by_role("button", name="Start next round", exact=True).wait_for(timeout=30_000)
    assert (run.round_dir(1) / "space.yaml").exists()
    click(page, "Start next round")
    wait_text(page, "round: finished")
    assert (run.round_dir(1) / "candidates.csv").exists()
    settle(page, 2.0)


def retrain_as_the_walkthrough_says(page, run: RunDir) -> int:
    """Explore's and Retrain's walkthrough name the same count; a press of Retrain & export queues exactly
    that many networks; the queue is cleared after the first (each takes seconds); returns the count."""
    nav(page, "3 · Explore")
    said = walkthrough_count(page, "explore")
    nav(page, "4 · Retrain & export")
    assert walkthrough_count(page, "retrain") == said
    click(page, "Retrain & export")
    deadline = time.time() + 30
    while jobq.current(run) is None and time.time() < deadline:  # the press's rerun may still be on its way
        time.sleep(0.2)
    queued = ([jobq.current(run)] if jobq.current(run) else []) + jobq.items(run)
    assert {i["job"] for i in queued} == {"retrain"}, queued
    started = {arch_key(i["arch"]) for i in queued} | set(run.finals())  # one may have finished already
    assert len(started) == said, (started, said)  # what the press started
    if len(started) > 1:
        click(page, "Clear queue")  # one retrained network is enough for the rest of the walk
    wait_text(page, "retrain: finished")
    return said


def test_whole_loop_in_chromium(page, app_server):
    url, runs = app_server
    t0 = time.time()
    page.goto(url + "/?guide=1")  # the guided walkthrough, on for the whole session
    page.get_by_test_id("stApp").wait_for()
    wait_text(page, "Create from a preset", 30_000)
    no_errors(page)

    # Home: create a run from the tiny preset
    run = create_run(page, runs, "tiny-1")
    # the name box offers the next free name, not the one just taken (issue 18, item 16)
    expect(page.get_by_label("Run name").first).to_have_value("tiny-2", timeout=10_000)
    # a spot check long enough to tell the top candidates apart: its advice is to retrain several
    cfg = load_config(run.config_path)
    cfg.retrain.spotcheck_epochs = 8
    save_config(cfg, run.config_path)
    shot(page, "1_home")
    no_errors(page)

    # 1 · Search space: the lego view of the run
    nav(page, "1 · Search space")
    wait_text(page, "Architectures", 30_000)
    assert metric(page, "Architectures") == "120"  # the tiny preset's 4 x (4 + 6) x 3
    assert int(metric(page, "Params, largest").replace(",", "")) > int(metric(page, "Params, smallest").replace(",", ""))
    shot(page, "2_search_space")
    no_errors(page)

    # 2 · Supernet training, 3 · Explore: search
    train_and_search(page, run)
    shot(page, "3_explore_scored")
    # the caption above the scatterplot is not covered by the chart's toolbar (issue 27)
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.hover()
    toolbar = page.get_by_test_id("stElementToolbar").filter(has=page.locator("button")).first
    toolbar.wait_for(state="visible", timeout=10_000)
    caption = page.get_by_text("scored candidates (coloured)").first.bounding_box()
    bar = toolbar.bounding_box()
    assert (caption["y"] >= bar["y"] + bar["height"] or caption["y"] + caption["height"] <= bar["y"]
            or caption["x"] >= bar["x"] + bar["width"] or caption["x"] + caption["width"] <= bar["x"]), (caption, bar)
    # the spot check runs beside the main job: start it, then keep exploring (brush, prune, next round)
    page.get_by_role("tab", name="Spot check").first.click()
    settle(page)
    click(page, "Run spot check")
    # the map's line says so from the click on (issue 27; test_app_explore checks it before the job writes)
    page.get_by_text("Spot check running").first.wait_for(timeout=20_000)
    assert (run.path / "spotcheck.lock").exists()
    # no saved selection yet: no "Selection" radio with a single option (issue 18, item 8)
    assert page.get_by_role("radiogroup").filter(has_text="chart selection").count() == 0
    brush(page)
    shot(page, "4_explore_selection")
    # a saved selection is at once a source to choose and an operand of Set operations, without a reload (item 2)
    click(page, "Save selection")
    expect(page.get_by_role("radiogroup").filter(has_text="saved: selection 1")).to_have_count(1, timeout=20_000)
    # a click made while the tab's rerun runs is not lost (issue 27): no waiting it out
    page.get_by_role("tab", name="Set operations").first.click()
    page.get_by_role("button", name="Keep only what the selection uses", exact=True).click()
    wait_text(page, "Selection A", 20_000)
    # during a rerun Streamlit may show the old copy of the input beside the new one: both must read "selection 2"
    expect(page.get_by_role("textbox", name="Save selection as").first).to_have_value("selection 2", timeout=20_000)
    expect(page.get_by_role("textbox", name="Save selection as").last).to_have_value("selection 2", timeout=20_000)
    page.get_by_role("tab", name="Decisions").first.click()
    wait_text(page, "Track record: on 6 tuning tables", 20_000)  # the suite's record beside the proposal (issue 15)
    shot(page, "4b_explore_decisions")
    # the Keep worked (its decision is pending); the spot check's advice should stay in the next round's space:
    # prune one component its best candidates barely use instead
    apply_and_next_round(page, run, prune=least_used_component(run))
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

    # the spot check's answers: its advice is what the walkthrough names and the press starts
    deadline = time.time() + 180
    summary = run.round_dir(0) / "spotcheck.json"
    while time.time() < deadline and '"state": "done"' not in (summary.read_text() if summary.exists() else ""):
        time.sleep(1)
    answers = json.loads(summary.read_text())["answers"]
    assert answers["pick"]["verdict"] in ("yes", "no"), answers["pick"]["text"]  # several to retrain
    nav(page, "4 · Retrain & export")
    expect(page.get_by_role("radiogroup").filter(has_text="as the spot check advises")).to_have_count(1)
    several = retrain_as_the_walkthrough_says(page, run)
    assert several > 1
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

    # the spot check's two answers, the same words on the Explore tab, the Retrain page and the model card
    for a in answers.values():
        wait_text(page, a["text"][:60], 30_000)
    nav(page, "3 · Explore")  # round 1 is current: its spot-check tab quotes round 0's answers
    page.get_by_role("tab", name="Spot check").first.click()
    for a in answers.values():
        wait_text(page, a["text"][:60], 30_000)
    (card,) = (run.path / "final").glob("*/model_card.md")
    assert all(a["text"] in card.read_text() for a in answers.values())
    no_errors(page)
    print(f"  first walk: {time.time() - t0:.0f} s")

    # the second walk, on a new run without a spot check: the walkthrough names one network, one is retrained
    t1 = time.time()
    run = create_run(page, runs, "tiny-2")
    train_and_search(page, run)
    brush(page)
    click(page, "Keep only what the selection uses")
    apply_and_next_round(page, run)
    assert retrain_as_the_walkthrough_says(page, run) == 1
    assert len(run.finals()) == 1
    no_errors(page)
    print(f"  second walk: {time.time() - t1:.0f} s")


def test_own_components_appear_in_the_search_space_editor(page, app_server):
    """The app was started with examples/se_blocks.py (`--components`): the editor lists its components."""
    url, _ = app_server
    page.goto(url)
    page.get_by_test_id("stApp").wait_for()
    nav(page, "1 · Search space")
    wait_text(page, "Template network", 30_000)
    page.get_by_test_id("stExpander").filter(has_text="Components").first.click()
    table = page.get_by_test_id("stTable").filter(has_text="se_conv5x5")
    expect(table).to_contain_text("SEConv with a 5-wide convolution", timeout=10_000)
    expect(table).to_contain_text("se_blocks.py")
    no_errors(page)
