"""AppTest of the home page (and the app entry point): empty state, create a run, open a run."""

import yaml
from streamlit.testing.v1 import AppTest
from test_app_support import REPO, finished_copy, ok, page, texts

from nasnav.store.run_dir import RunDir


def test_app_entry_and_home_render_on_an_empty_runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run())
    assert "Steer a neural architecture search" in texts(at)
    at = ok(page("home.py").run())
    assert at.button(key="home_create") is not None
    assert "No runs yet" in texts(at)
    assert at.toggle(key="guide_toggle_home").value is False


def test_create_run_from_a_preset_opens_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = page("home.py").run()
    at.selectbox(key="home_preset").set_value("tiny").run()
    assert at.text_input(key="home_name_tiny-1").value == "tiny-1"
    at.button(key="home_create").click().run()
    ok(at)
    run = RunDir(tmp_path / "tiny-1")
    assert run.exists() and (run.round_dir(0) / "space.yaml").exists()
    assert at.session_state["run_path"] == str(run.path)
    assert "Open run: **tiny-1**" in texts(at)
    assert at.text_input(key="home_name_tiny-2").value == "tiny-2"  # a fresh default for the next run
    # a bad name is explained, nothing is created
    at.text_input(key="home_name_tiny-2").set_value("../evil").run()
    at.button(key="home_create").click().run()
    ok(at)
    assert any("run name" in e.value for e in at.error)
    assert not (tmp_path.parent / "evil").exists()


def test_create_from_yaml_upload_and_walkthrough(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = page("home.py").run()
    at.toggle(key="guide_toggle_home").set_value(True).run()
    ok(at)
    assert "Guided walkthrough." in texts(at) and "press **Create run**" in texts(at)
    assert at.button(key="home_create").proto.type == "primary"  # the one next action stands out
    bad = (REPO / "configs" / "tiny.yaml").read_text().replace("max_samples: 600", "max_samples: 600\n  colour: red")
    at.file_uploader(key="home_upload").set_value(("bad.yaml", bad.encode(), "application/x-yaml")).run()
    at.button(key="home_create_yaml").click().run()
    ok(at)
    assert any("data.colour: unknown key" in e.value for e in at.error)  # explained, not a traceback
    good = (REPO / "configs" / "tiny.yaml").read_bytes()
    at.file_uploader(key="home_upload").set_value(("tiny.yaml", good, "application/x-yaml")).run()
    at.text_input(key="home_upload_name").set_value("from-yaml").run()
    at.button(key="home_create_yaml").click().run()
    ok(at)
    assert RunDir(tmp_path / "from-yaml").exists()
    assert "Start training" in texts(at)  # the walkthrough moves on to the supernet


def test_open_an_existing_finished_run(tmp_path_factory, tmp_path, monkeypatch):
    run = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(run.parent))
    at = ok(page("home.py").run())
    assert at.dataframe[0].value["name"].tolist() == ["tiny-done"]
    at.selectbox(key="home_open_pick").set_value("tiny-done")
    at.button(key="home_open").click().run()
    ok(at)
    assert at.session_state["run_path"] == str(run)
    assert yaml.safe_load((run / "config.yaml").read_text())["name"] == "tiny digits"
