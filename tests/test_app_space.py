"""AppTest of page 1 (search space): the editor without a run, live count, invalid edits, saving."""

import yaml
from test_app_support import finished_copy, ok, page, texts

from nasnav.config import load_config, preset_path
from nasnav.store.run_dir import RunDir
from nasnav.workflow.runs import create_run


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_editor_renders_without_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = ok(page("1_search_space.py").run())
    assert metric(at, "Architectures") == "2,058"  # the default preset (mnist1d): 7 x 7 x 7 x 6
    assert int(metric(at, "Params, largest").replace(",", "")) > 0
    assert len(at.get("graphviz_chart")) == 1
    assert at.button(key="sp_save_new") is not None


def test_edits_change_the_count_invalid_ones_cannot_be_saved_and_saving_writes_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = create_run(load_config(preset_path("tiny")), tmp_path / "fresh")
    at = ok(page("1_search_space.py", run.path).run())
    assert metric(at, "Architectures") == "120"
    stage1 = at.session_state["draft"]["stages"][0]["_id"]
    pills = at.pills(key=f"sp_{stage1}_cands")
    pills.set_value(["conv3x3", "skip"]).run()
    ok(at)
    assert metric(at, "Architectures") == "60"
    # remove every component of stage 1: explained in place, Save disabled
    at.pills(key=f"sp_{stage1}_cands").set_value([]).run()
    ok(at)
    assert any("components: empty" in e.value for e in at.error)  # in the editor's words
    assert at.button(key="sp_save").disabled and at.button(key="sp_save_new").disabled
    at.pills(key=f"sp_{stage1}_cands").set_value(["conv3x3", "skip"]).run()
    at.button(key="sp_add").click().run()
    ok(at)
    assert len(at.session_state["draft"]["stages"]) == 4
    at.button(key="sp_save").click().run()
    ok(at)
    saved = yaml.safe_load((run.round_dir(0) / "space.yaml").read_text())
    assert [s["name"] for s in saved["stages"]] == ["s1", "s2", "s3", "s4"]
    assert saved["stages"][0]["candidates"] == ["conv3x3", "skip"]
    cfg = yaml.safe_load(run.config_path.read_text())
    assert cfg["space"]["stages"][0]["candidates"] == ["conv3x3", "skip"]


def test_trained_run_is_read_only_but_can_be_saved_as_a_new_run(tmp_path_factory, tmp_path, monkeypatch):
    run = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(run.parent))
    before = (run / "rounds" / "000" / "space.yaml").read_text()
    at = ok(page("1_search_space.py", run).run())
    assert "Read-only for this run" in texts(at)
    assert not [b for b in at.button if b.key == "sp_save"]
    at.text_input(key="sp_new_name").set_value("copy").run()
    at.button(key="sp_save_new").click().run()
    ok(at)
    assert RunDir(run.parent / "copy").exists()
    assert at.session_state["run_path"] == str(run.parent / "copy")
    assert (run / "rounds" / "000" / "space.yaml").read_text() == before


def test_a_later_round_shows_its_own_space_with_pruned_components(tmp_path_factory, tmp_path, monkeypatch):
    """Issue 18, item 5: in round k > 0 the page shows round k's space, not round 0's, and no stale
    'train the supernet' link."""
    from nasnav.steering.actions import Action
    from nasnav.store.records import read_space
    from nasnav.workflow.decisions import apply_decision

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    cfg = load_config(run.config_path)
    space = read_space(run, run.current_round(), cfg.kind)
    stage = next(s for s in space.stages if len(s.active) > 1 and s.pinned is None)
    k = apply_decision(run, cfg, [Action.from_dict({"op": "prune", "stage": stage.name, "component": stage.active[-1]})])
    size = read_space(run, k, cfg.kind).size()
    at = ok(page("1_search_space.py", path).run())
    assert metric(at, "Architectures") == f"{size:,}"
    assert any("pruned: " in c.value and stage.active[-1] in c.value for c in at.caption)
    assert "train the supernet" not in texts(at)


def test_a_hostile_stage_name_typed_in_the_editor_is_refused_and_shown_as_text(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = create_run(load_config(preset_path("tiny")), tmp_path / "fresh")
    at = ok(page("1_search_space.py", run.path).run())
    stage1 = at.session_state["draft"]["stages"][0]["_id"]
    at.text_input(key=f"sp_{stage1}_name").set_value('x"""\n__import__("os")#[a](javascript:alert(1))<b>').run()
    ok(at)
    shown = " ".join(e.value for e in at.error)  # the Markdown the page hands to st.error
    assert "not a valid name" in shown and "use 1-64 ASCII letters" in shown
    assert "](javascript" not in shown.replace("\\](", "") and "<b>" not in shown  # escaped: text, no link or HTML
    assert at.button(key="sp_save").disabled and at.button(key="sp_save_new").disabled
    assert "__import__" not in (run.round_dir(0) / "space.yaml").read_text()
