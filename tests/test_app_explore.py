"""AppTest of page 3 (explore): renders empty and finished; prune -> apply -> undo / redo -> next
round; selections (saved, combined, keep-only); render time with 5,000 candidates."""

import time

import numpy as np
import pandas as pd
import pytest
from test_app_support import finished_copy, ok, page, texts, wait_job_gone

from nasnav.config import config_from_dict, load_config, preset_path
from nasnav.jobs.control import running_job
from nasnav.steering.actions import Action, Op
from nasnav.store.io import read_yaml, write_csv
from nasnav.store.run_dir import RunDir
from nasnav.ui import state
from nasnav.workflow.runs import create_run


def decisions_proposal(path):
    from nasnav.workflow.decisions import proposal

    run = RunDir(path)
    return proposal(run, load_config(run.config_path), now=True)


def test_without_a_run_it_points_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = ok(page("3_explore.py").run())
    assert "No run is open" in texts(at)


def test_fresh_run_explains_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = create_run(load_config(preset_path("tiny")), tmp_path / "fresh")
    at = ok(page("3_explore.py", run.path).run())
    assert at.button(key="ex_search_start").disabled  # no supernet yet
    assert "Train this round's supernet first" in texts(at)
    assert "Fitness appears once candidates are scored" in texts(at)


def test_finished_run_renders_every_view(tmp_path_factory, tmp_path, monkeypatch):
    run = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(run.parent))
    at = ok(page("3_explore.py", run).run())
    assert "16 scored candidates (coloured)" in texts(at)
    charts = len(at.get("vega_lite_chart"))  # the scatterplot and the open tab's (fitness) charts
    for name in ("Pareto front", "Rounds"):  # only the open tab runs (lazy tabs)
        at.session_state["ex_tabs"] = name
        charts += len(ok(at.run()).get("vega_lite_chart")) - 1
    assert charts >= 5  # scatter, fitness vs frequency, heatmap, pareto, timeline
    at.session_state["ex_tabs"] = "Fitness"
    ok(at.run())
    assert "Nothing selected" in texts(at)
    assert not at.button(key="ex_search_start").disabled
    assert "Not measured: no spot check" in texts(at)  # under the map: what its colours can be trusted for
    assert not at.error


def test_spot_check_tab_shows_both_answers_and_runs_beside_the_main_job(tmp_path_factory, tmp_path, monkeypatch):
    from nasnav.analysis import trust
    from nasnav.jobs.control import stop_job
    from nasnav.store.io import write_json

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    rng = np.random.default_rng(0)
    truth = np.linspace(0.5, 0.98, 20)
    answers = {"prune": trust.prune_answer(truth + rng.normal(0, 0.03, 20), truth[:, None] + rng.normal(0, 0.004, (20, 2)),
                                           epochs=3),
               "pick": trust.pick_answer(np.linspace(0.9, 0.8, 8), 0.97 + rng.normal(0, 0.004, (8, 2)), epochs=3)}
    write_json(path / "rounds" / "000" / "spotcheck.json", {"state": "done", "epochs": 3, "seeds": 2, "answers": answers})
    at = ok(page("3_explore.py", path, ex_tabs="Spot check").run())
    shown = texts(at)
    assert answers["prune"]["text"] in shown and answers["pick"]["text"] in shown  # both, in the check's own words
    assert "Prune by fitness: yes" in shown and "equivalent within" in shown
    assert trust.short_line(answers) in shown  # the line under the map says the same
    run = RunDir(path)
    at.button(key="ex_spot_start").click().run()
    ok(at)
    try:
        assert running_job(run, "spotcheck") is not None and running_job(run) is None  # searching stays possible
        assert not at.button(key="ex_search_start").disabled and at.button(key="ex_spot_start").disabled
    finally:
        stop_job(run, lane="spotcheck")
    # a check that says "running" with no job left (killed, machine down) is shown as interrupted
    write_json(path / "rounds" / "000" / "spotcheck.json", {"state": "running", "epochs": 3, "seeds": 2, "answers": {}})
    at = ok(page("3_explore.py", path, ex_tabs="Spot check").run())
    assert "Spot check interrupted (its job is gone)" in texts(at) and "Spot check running" not in texts(at)


def test_the_map_line_says_running_from_the_click_on(tmp_path_factory, tmp_path, monkeypatch):
    """Issue 27: the line under the map said "not measured" until the spot-check process had imported torch
    and written its first summary; the run's spot-check lock is taken at the click."""
    from nasnav.jobs.control import stop_job

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    at = ok(page("3_explore.py", path, ex_tabs="Spot check").run())
    assert "Not measured" in texts(at)
    try:
        at.button(key="ex_spot_start").click().run()
        ok(at)
        summary = path / "rounds" / "000" / "spotcheck.json"
        written = summary.exists() and "running" in summary.read_text()
        assert "Spot check running" in texts(at) and "Not measured" not in texts(at), written
    finally:
        stop_job(run, lane="spotcheck")
    wait_job_gone(path)


def test_the_auto_pilot_suggests_narrowing_and_says_why_when_it_has_nothing(tmp_path_factory, tmp_path, monkeypatch):
    from nasnav.store.io import write_yaml

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    at = ok(page("3_explore.py", path, ex_tabs="Decisions").run())  # the defaults: narrowing on the pass before the last
    assert "Keep in each stage only what the best-scoring candidates use" in texts(at)
    # one click takes them all (issue 18, item 7), in plain words, the page stays short
    assert "votes)" in texts(at) and "narrowing to at most" not in texts(at)
    # beside the proposal, what the steering suite measured for its kind (issue 15)
    assert "Track record: on 6 tuning tables" in texts(at) and "accepting such a narrowing kept a near-best" in texts(at)
    n = len(decisions_proposal(path).actions)
    at.button(key="ex_acc_all_0").click().run()
    assert len(state.pending(RunDir(path))) == n > 1
    conf = read_yaml(path / "config.yaml")
    conf.setdefault("steering", {})["rounds"] = 6  # the auto-pilot would search further; the analyst decides now
    write_yaml(path / "config.yaml", conf)
    at = ok(page("3_explore.py", path, ex_tabs="Decisions").run())
    assert "Keep in each stage only what the best-scoring candidates use" in texts(at)
    conf.setdefault("steering", {}).update(prune=False, narrow_to=0)
    write_yaml(path / "config.yaml", conf)
    at = ok(page("3_explore.py", path, ex_tabs="Decisions").run())
    assert "No suggestions: nothing clearly worse: pruning by fitness is off (steering.prune: false), and so is narrowing" in texts(at)


def test_prune_apply_undo_redo_and_next_round(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    at = ok(page("3_explore.py", path, ex_tabs="Decisions").run())
    at.selectbox(key="ex_dec_stage").set_value("s1").run()
    at.selectbox(key="ex_dec_comp_s1").set_value("skip").run()
    at.button(key="ex_dec_prune").click().run()
    ok(at)
    assert state.pending(run) == [Action(Op.PRUNE, "s1", "skip")]
    assert "Prune **skip** in stage **s1**" in texts(at)
    at.button(key="ex_apply").click().run()
    ok(at)
    assert run.current_round() == 1 and state.pending(run) == []
    space1 = read_yaml(run.round_dir(1) / "space.yaml")
    assert space1["stages"][0]["pruned"] == ["skip"]
    assert "Round 1's space is ready" in texts(at)
    at.session_state["ex_tabs"] = "Rounds"
    ok(at.run())
    at.button(key="ex_undo").click().run()
    ok(at)
    assert run.current_round() == 0
    assert at.session_state["ex_tabs"] == "Rounds"  # the page stays on the tab in use (issue 18, item 9)
    at.button(key="ex_redo").click().run()
    ok(at)
    assert run.current_round() == 1
    at.button(key="ex_round_start").click().run()
    ok(at)
    status = run.read_status()
    assert status["job"] == "round" and status["state"] == "running"
    time.sleep(0.5)
    at.button(key="ex_round_stop").click().run()
    ok(at)
    assert running_job(run) is None
    wait_job_gone(path)


def test_selections_keep_only_and_set_operations(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    cands = pd.read_csv(path / "rounds" / "000" / "candidates.csv").sort_values("one_shot_acc", ascending=False)
    top, rest = list(cands["arch"][:3]), list(cands["arch"][3:])
    state.save_selection(run, "top", top)
    state.save_selection(run, "rest", rest)
    at = ok(page("3_explore.py", path).run())
    at.radio(key="ex_sel_source").set_value("saved: top").run()
    ok(at)
    assert next(m.value for m in at.metric if m.label == "Selected") == "3"
    assert at.session_state["explore_selection"] == top
    at.button(key="ex_keep").click().run()
    ok(at)
    acts = state.pending(run)
    assert acts and all(a.op is Op.PRUNE for a in acts)
    used = {(i, c) for a in top for i, part in enumerate(a.split("/")) for c in part.split("+")}
    stages = [s["name"] for s in read_yaml(path / "rounds" / "000" / "space.yaml")["stages"]]
    assert not any((stages.index(a.stage), a.component) in used for a in acts)
    at.session_state["ex_tabs"] = "Set operations"
    ok(at.run())
    at.selectbox(key="ex_set_a").set_value("top")
    at.selectbox(key="ex_set_op").set_value("union")
    at.selectbox(key="ex_set_b").set_value("rest")
    at.button(key="ex_set_go").click().run()
    ok(at)
    assert sorted(state.saved_selections(run)["top ∪ rest"]) == sorted(top + rest)


def big_run(root, n=5000, seed=0) -> RunDir:
    """A run over a 16,807-architecture space with ``n`` scored candidates (synthetic scores)."""
    raw = load_config(preset_path("tiny")).to_dict()
    ops = ["conv3x3", "conv5x5", "sepconv3x3", "dilconv3x3", "maxpool3x3", "avgpool3x3", "skip"]
    raw["space"]["stages"] = [{"name": f"s{i}", "candidates": ops, "select": "one", "channels": 8} for i in range(1, 6)]
    raw["search"]["projection"] = "pca"  # the test measures rendering, not fitting an MDS reference
    cfg = config_from_dict(raw, "big")
    run = create_run(cfg, root / "big")
    space = cfg.search_space()
    rng = np.random.default_rng(seed)
    archs = list(dict.fromkeys(str(space.sample(rng)) for _ in range(3 * n)))[:n]
    df = pd.DataFrame({"round": 0, "arch": archs, "one_shot_acc": rng.uniform(0.3, 0.95, n), "val_loss": 1.0,
                       "params": rng.integers(2000, 60000, n), "flops": rng.integers(10**5, 10**6, n),
                       "strategy": "random", "generation": 0, "parent": "", "seconds": 0.01})
    for i, s in enumerate(space.stages):
        df[f"choice_{s.name}"] = [a.split("/")[i] for a in archs]
    write_csv(run.round_dir(0) / "candidates.csv", df)
    (run.round_dir(0) / "supernet.ckpt").write_bytes(b"placeholder")  # the page only checks it exists
    return run


@pytest.mark.slow
def test_renders_and_reruns_with_5000_candidates(tmp_path, monkeypatch):
    """The page copes with a big round (its speed is measured in bench/explore_render.py, not here)."""
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = big_run(tmp_path)
    at = ok(page("3_explore.py", run.path).run(timeout=120))
    assert "5,000 scored candidates" in texts(at)
    at.run(timeout=120)  # a rerun (e.g. a brush on the scatterplot) with everything cached
    assert "5,000 scored candidates" in texts(ok(at))
