"""Plain UI logic: chart selection -> architectures, run-directory UI state (selections, pending
decision, job queue), the walkthrough's next step, and the space editor's model."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from nasnav.config import load_config, preset_path
from nasnav.steering.actions import Action, Op
from nasnav.store.io import read_json, write_json, write_yaml
from nasnav.store.run_dir import RunDir
from nasnav.ui import guide, selection, space_edit, state
from nasnav.ui import queue as jobq
from nasnav.workflow.runs import create_run


@pytest.fixture
def pts():
    return pd.DataFrame({"arch": ["a", "b", "c", "d"], "x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0],
                         "one_shot_acc": [0.5, 0.9, 0.7, None], "scored": [True, True, True, False]})


@pytest.fixture
def run(tmp_path):
    return create_run(load_config(preset_path("tiny")), tmp_path / "r")


def test_brush_selects_points_inside_best_first(pts):
    sel = {"brush": {"x": [0.5, 3.5], "y": [0.5, 3.5]}}
    assert selection.archs_from_selection(sel, pts) == ["b", "c"]  # d is not scored
    assert selection.archs_from_selection(sel, pts, scored_only=False) == ["b", "c", "d"]
    assert selection.archs_from_selection({"brush": {"x": [3.5, 0.5]}}, pts) == ["b", "c"]  # reversed, x only


def test_clicks_and_attribute_style_events(pts):
    event = SimpleNamespace(brush={}, pick=[{"arch": "a"}, {"arch": "c"}])
    assert selection.archs_from_selection(event, pts) == ["c", "a"]
    both = {"brush": {"x": [0.9, 1.1], "y": [0.9, 1.1]}, "pick": [{"arch": "a"}]}
    assert selection.archs_from_selection(both, pts) == ["b", "a"]
    assert selection.archs_from_selection({}, pts) == []
    assert selection.archs_from_selection(None, pts) == []
    assert selection.archs_from_selection({"pick": [{"arch": "zzz"}]}, pts) == []


def test_an_empty_rectangle_is_told_apart_from_no_selection(pts):
    empty = {"brush": {"x": [8.0, 9.0], "y": [8.0, 9.0]}}
    assert selection.archs_from_selection(empty, pts) == [] and selection.is_drawn(empty)
    assert selection.is_drawn(SimpleNamespace(brush={}, pick=[{"arch": "zzz"}]))
    for nothing in (None, {}, {"brush": {}, "pick": []}, SimpleNamespace(brush={}, pick=[])):
        assert not selection.is_drawn(nothing)


def test_components_used_and_readable_actions(small_space):
    used = selection.components_used(small_space, ["conv3x3/conv1x1+skip/dilconv3x3", "skip/conv1x1/dilconv3x3"])
    assert used[("s1", "conv3x3")] == 0.5 and used[("s2", "conv1x1")] == 1.0 and used[("s3", "dilconv3x3")] == 1.0
    assert selection.describe_action(Action(Op.PRUNE, "s1", "skip")) == "Prune **skip** in stage **s1**"
    assert "Pin **conv3x3+skip**" in selection.describe_action(Action(Op.PIN, "s2", choice=("conv3x3", "skip")))
    assert selection.describe_action(Action(Op.RESTORE, "s3", "dilconv3x3")) == "Restore **dilconv3x3** in stage **s3**"
    text = selection.describe_evidence({"gap": 0.031, "ci": [-0.05, -0.01], "n": 12})
    assert "gap 0.031" in text and "[-0.0500, -0.0100]" in text and "{" not in text
    row = {"stage": "s1", "component": "skip", "fitness": -0.031, "ci_low": -0.05, "ci_high": -0.01, "frequency": 12,
           "mean_with": 0.7, "mean_without": 0.73, "top_with": 0.8, "in_top": 0, "pruned": False}
    text = selection.describe_evidence(row)
    assert text.startswith("fitness -0.0310 [-0.0500, -0.0100] · seen in 12 candidates") and "pruned" not in text
    narrowing = {"stage": "s2", "component": "skip", "elite_share": 0.0417}
    assert selection.describe_evidence(narrowing) == "4% of the best candidates' vote in stage s2"


def test_saved_selections_and_pending_decision_live_in_the_run(run):
    assert state.saved_selections(run) == {}
    state.save_selection(run, "good", ["a", "b", "a"])
    assert state.saved_selections(RunDir(run.path)) == {"good": ["a", "b"]}
    with pytest.raises(ValueError, match="name"):
        state.save_selection(run, " ", ["a"])
    state.delete_selection(run, "good")
    assert state.saved_selections(run) == {}
    assert state.add_pending(run, [Action(Op.PRUNE, "s1", "skip", reason="r", evidence={"x": 1})]) == 1
    assert state.add_pending(run, [Action(Op.RESTORE, "s1", "skip"),
                                   Action(Op.PIN, "s2", choice=("conv3x3",))]) == 2  # restore replaces prune
    assert [a.op for a in state.pending(run)] == [Op.RESTORE, Op.PIN]
    assert state.pending(RunDir(run.path))[0].evidence is None  # a reload reads the same, without evidence
    # the file keeps today's JSON records
    assert read_json(run.path / state.PENDING_FILE) == [{"op": "restore", "stage": "s1", "component": "skip"},
                                                         {"op": "pin", "stage": "s2", "choice": "conv3x3"}]
    state.remove_pending(run, 0)
    assert [a.op for a in state.pending(run)] == [Op.PIN]
    write_json(run.path / state.PENDING_FILE, [{"op": "delete", "stage": "s1"}, "junk",
                                               {"op": "prune", "stage": "s1", "component": "skip"}])
    assert state.pending(run) == [Action(Op.PRUNE, "s1", "skip")]  # what is not an action is left out
    state.clear_pending(run)
    assert state.pending(run) == []


def test_run_names_and_free_names(tmp_path):
    assert state.check_run_name(" digits-1 ") == "digits-1"
    for bad in ("", "../x", "a b", "-x", "x/y"):
        with pytest.raises(ValueError, match="run name"):
            state.check_run_name(bad)
    (tmp_path / "tiny-1").mkdir()
    assert state.free_name(tmp_path, "tiny") == "tiny-2"


def test_job_queue_runs_one_job_at_a_time_and_pauses_after_a_failure(run, monkeypatch):
    started = []

    def fake_start(r, job, args):
        started.append((job, args))
        r.write_status(state="running", job=job, pid=None)
        return 1

    monkeypatch.setattr(jobq, "start_job", fake_start)
    live = {"job": None}
    monkeypatch.setattr(jobq, "running_job", lambda r: live["job"])
    items = jobq.retrain_items(run, ["a/b", "c/d", "e/f"], seeds=2)
    assert [i["job"] for i in items] == ["retrain", "retrain", "retrain"]  # each retrain job exports its network
    assert items[0]["args"] == ["retrain", str(run.path), "--arch", "a/b", "--seeds", "2"]
    jobq.enqueue(run, items)
    jobq.enqueue(run, items[:1])  # duplicates are not queued twice
    assert len(jobq.items(run)) == 3
    assert jobq.advance(run)["arch"] == "a/b"
    assert jobq.current(run)["job"] == "retrain"
    live["job"] = {"pid": 1, "job": "retrain"}
    assert jobq.advance(run) is None  # busy
    live["job"] = None
    run.write_status(state="failed", job="retrain")
    assert jobq.advance(run) is None  # paused after a failure
    assert jobq.resume(run)["arch"] == "c/d"
    run.write_status(state="done", job="retrain")
    assert jobq.advance(run)["arch"] == "e/f"
    jobq.clear(run)
    assert jobq.items(run) == []
    assert len(started) == 3


def test_walkthrough_next_step_follows_the_run(run):
    assert guide.next_step(None).action == "Create run"
    assert guide.next_step(run) == guide.Step(guide.SUPERNET, "Start training", guide.next_step(run).why)
    # a stopped training is resumed, not started again (issue 18, item 3)
    last = run.round_dir(0) / "lightning" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    run.write_status(state="stopped", job="supernet")
    assert guide.next_step(run).action == "Resume training"
    run.write_status(state="done", job="supernet")
    (run.round_dir(0) / "supernet.ckpt").write_bytes(b"x")
    assert guide.next_step(run).action == "Start search"
    write_json(run.round_dir(0) / "search.json", {"state": "stopped"})
    run.write_status(state="stopped", job="search")
    assert guide.next_step(run).action == "Resume search"
    run.write_status(state="done", job="search")
    (run.round_dir(0) / "candidates.csv").write_text("arch,one_shot_acc\na,0.5\n")
    assert guide.next_step(run).action == "Keep only what the selection uses"
    write_yaml(run.ensure_round_dir(1) / "space.yaml", {"stages": []})
    run.set_current_round(1)
    assert guide.next_step(run).action == "Start next round"
    (run.round_dir(1) / "supernet.ckpt").write_bytes(b"x")
    (run.round_dir(1) / "candidates.csv").write_text("arch,one_shot_acc\na,0.5\n")
    assert guide.next_step(run).action == "Retrain & export"
    final = run.final_dir("a")
    final.mkdir(parents=True)
    (final / "metrics.json").write_text("{}")
    assert guide.next_step(run).action == "Export"
    (final / "model.py").write_text("")
    assert guide.next_step(run).action == "Download model.py"
    assert all(page in guide.EXPLAIN for page in guide.PAGE_FILES)


def test_walkthrough_actions_name_buttons_that_exist():
    """Every action the walkthrough can point at is the label of a button on its page (item 3)."""
    repo = Path(__file__).resolve().parents[1]
    ui = "".join(p.read_text() for p in [*(repo / "nasnav" / "ui").glob("*.py"), *(repo / "pages").glob("*.py")])
    for name in ("CREATE_RUN", "START_TRAINING", "RESUME_TRAINING", "START_SEARCH", "RESUME_SEARCH", "NEXT_ROUND",
                 "KEEP_SELECTION", "RETRAIN_EXPORT", "EXPORT", "DOWNLOAD"):
        label = getattr(guide, name)
        assert f"guide.{name}" in ui or f'"{label}"' in ui.replace("guide.py", ""), label


def test_space_editor_edits_validate_and_save(run):
    cfg = load_config(preset_path("tiny"))
    draft = space_edit.draft_from(cfg.to_dict()["space"])
    ids = [s["_id"] for s in draft["stages"]]
    space_edit.add_stage(draft, ["conv3x3", "maxpool3x3", "skip"])
    assert draft["stages"][-1]["name"] == "s4" and space_edit.problems(draft, "image") == []
    space_edit.move_stage(draft, ids[0], +1)
    assert [s["name"] for s in draft["stages"]][:2] == ["s2", "s1"]
    space_edit.remove_stage(draft, draft["stages"][-1]["_id"])
    assert "_id" not in space_edit.clean(draft)["stages"][0]
    draft["stages"][0]["candidates"] = []
    # in the editor's words: the stage's own name and card, not a 0-based config key (issue 18, item 4)
    assert "stage 's2' (card 1) components: empty; give at least one component" in space_edit.problems(draft, "image")
    assert not any("stages[" in p for p in space_edit.problems(draft, "image"))
    draft["stages"][0]["candidates"] = ["linear"]  # a tabular component in an image space
    assert any("unknown component 'linear'" in p for p in space_edit.problems(draft, "image"))
    draft["stages"][0]["candidates"] = ["conv3x3", "skip"]
    draft["stages"][0]["max_active"] = 5
    assert any("'at most': 5 exceeds" in p for p in space_edit.problems(draft, "image"))
    draft["stages"][0]["max_active"] = None
    assert space_edit.order_like(["skip", "conv1x1", "conv3x3"], ["conv3x3", "skip"], ["conv1x1", "conv3x3", "skip"]) \
        == ["conv3x3", "skip", "conv1x1"]
    new_cfg = space_edit.build_config(cfg.to_dict(), draft, {"max_samples": 300})
    assert new_cfg.data.max_samples == 300 and new_cfg.space.stages[0].name == "s2"
    space_edit.save_to_run(run, new_cfg)
    from nasnav.workflow.runs import round_space

    assert round_space(run, new_cfg, 0).stages[0].name == "s2"
    (run.round_dir(0) / "supernet.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="cannot change the space"):
        space_edit.save_to_run(run, new_cfg)
    with pytest.raises(ValueError, match="expected a space"):
        space_edit.space_from_upload({"data": {}}, "x.yaml")
    assert space_edit.space_from_upload(cfg.to_dict(), "c.yaml")["stages"]


def test_the_job_poll_sees_a_finished_job_let_go_of_the_run(run):
    """A job writes its final status a moment before it releases the lock and exits: the page's poll
    signature must change again then, or the job controls stay in their "running" state."""
    import subprocess
    import sys

    from nasnav.store.io import write_json
    from nasnav.store.process import pid_start
    from nasnav.ui.widgets import _signature

    run.write_status(job="round", state="done", message="round finished")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json(run.lock_path, {"pid": proc.pid, "pid_start": pid_start(proc.pid), "job": "round"})
        holding = _signature(run)
    finally:
        proc.kill()
        proc.wait()
    released = _signature(run)
    assert holding[:3] == released[:3] and holding != released


def test_a_new_job_carries_nothing_of_the_previous_ones_status(run):
    """Issue 18, item 6: no 'epoch 100/100' of the supernet on the search's progress line, and
    messages do not repeat the job's name (the page shows '<job>: <message>')."""
    from nasnav.jobs.context import job

    run.write_status(state="done", job="supernet", message="finished", extra={"epoch": 100, "epochs": 100})
    with job(run, "search"):
        status = run.read_status()
        assert status["extra"] == {} and status["message"] == "started" and status["job"] == "search"
    assert run.read_status()["message"] == "finished"


def test_rounds_table_reads_as_words():
    """Issue 18, item 10: plain headers, no raw None for a prepared round."""
    from nasnav.ui.steer import rounds_table

    hist = pd.DataFrame({"round": [0, 1], "space_size": [120, None], "candidates": [24, 0],
                         "best_one_shot": [0.81234, float("nan")], "decisions": ["prune s1:skip", ""],
                         "current": [False, True], "source": ["analyst", ""], "supernet": [True, False]})
    table = rounds_table(hist)
    assert list(table.columns) == ["round", "architectures", "candidates scored", "best one-shot", "decision",
                                   "supernet", "current"]
    assert list(table["best one-shot"]) == ["0.8123", "not run yet"] and list(table["architectures"]) == ["120", "–"]
    assert "None" not in table.astype(str).to_string() and "nan" not in table.astype(str).to_string()


def test_clicks_made_during_a_rerun_are_kept():
    """Issue 27: the app runs with Streamlit's fast reruns off (a second script thread beside a running one
    could clear a click's trigger before it was read), and the buttons of the pages that poll (Explore,
    Retrain, the job panels) record clicks in callbacks (``widgets.button``)."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    settings = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert settings["runner"]["fastReruns"] is False
    for name in ("explore", "final", "steer", "predict_panels", "widgets"):
        code = (root / "nasnav" / "ui" / f"{name}.py").read_text()
        plain = [m for m in re.findall(r"(\w+(?:\[\d\])?)\.button\(", code) if m not in ("where", "widgets")]
        assert not plain, (name, plain)


def test_a_button_click_is_read_from_its_callback(tmp_path):
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from nasnav.ui import widgets

        c, _ = st.columns(2)
        if widgets.button(c, "Go", key="go"):
            st.session_state["n"] = st.session_state.get("n", 0) + 1
        st.session_state["_clicked_stale"] = 0.0  # a click recorded long ago whose button was never drawn
        if widgets.button(st, "Stale", key="stale"):
            st.session_state["stale_fired"] = True

    at = AppTest.from_function(script).run()
    assert "n" not in at.session_state
    at.button(key="go").click().run()
    assert at.session_state["n"] == 1
    at.run()  # a rerun without a click does not repeat it
    assert at.session_state["n"] == 1 and "stale_fired" not in at.session_state
