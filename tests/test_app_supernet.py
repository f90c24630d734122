"""AppTest of page 2 (supernet training): no run, start / stop / resume a job, a finished run."""

import time

from test_app_support import finished_copy, ok, page, texts, wait_job_gone

from nasnav.config import load_config, preset_path
from nasnav.jobs.control import running_job
from nasnav.store.run_dir import RunDir
from nasnav.workflow.runs import create_run


def test_without_a_run_it_points_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = ok(page("2_supernet.py").run())
    assert "No run is open" in texts(at)


def test_start_then_stop_a_training_job(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = create_run(load_config(preset_path("tiny")), tmp_path / "fresh")
    at = ok(page("2_supernet.py", run.path).run())
    assert "No training curves yet" in texts(at)
    assert at.button(key="sn_stop").disabled
    at.button(key="sn_start").click().run()
    ok(at)
    status = run.read_status()
    assert status["state"] == "running" and status["job"] == "supernet"
    assert run.log_path("supernet").exists()
    assert not at.button(key="sn_stop").disabled and at.button(key="sn_start").disabled
    # a second start on the same run (another session) is refused with a message
    other = ok(page("2_supernet.py", run.path).run())
    assert other.button(key="sn_start").disabled
    time.sleep(1.0)
    at.button(key="sn_stop").click().run()
    ok(at)
    assert running_job(run) is None
    assert run.read_status()["state"] in ("stopped", "interrupted")
    # the state lives in the run directory: a new session sees the same
    again = ok(page("2_supernet.py", run.path).run())
    assert again.button(key="sn_stop").disabled
    wait_job_gone(run.path)


def test_finished_run_shows_curves_and_progress(tmp_path_factory, tmp_path, monkeypatch):
    run = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(run.parent))
    at = ok(page("2_supernet.py", run).run())
    labels = [m.label for m in at.metric]
    assert "Epochs done" in labels and "Val accuracy" in labels
    assert next(m.value for m in at.metric if m.label == "Epochs done") == "3/3"
    assert len(at.get("vega_lite_chart")) == 2  # loss and accuracy
    assert at.button(key="sn_start").disabled  # trained: later rounds are fine-tuned from Explore
    assert RunDir(run).read_status()["state"] == "done"


def test_a_killed_job_reads_as_interrupted_and_can_be_resumed(tmp_path, monkeypatch):
    import os
    import signal

    from nasnav.jobs.control import start_job

    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    run = create_run(load_config(preset_path("digits")), tmp_path / "killed")  # 100 epochs: time to kill it
    pid = start_job(run, "supernet", ["supernet", str(run.path)])
    last = run.round_dir(0) / "lightning" / "last.ckpt"
    deadline = time.time() + 60
    while not last.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert last.exists(), run.log_tail("supernet")
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    deadline = time.time() + 10
    while running_job(run) and time.time() < deadline:
        time.sleep(0.1)
    at = ok(page("2_supernet.py", run.path).run())
    assert any("interrupted" in e.value for e in at.error)
    assert not at.button(key="sn_resume").disabled
    assert not at.button(key="sn_start").disabled
    at.button(key="sn_resume").click().run()
    ok(at)
    assert run.read_status()["state"] == "running"
    assert "--resume" in run.log_path("supernet").read_text()
    at.button(key="sn_stop").click().run()
    wait_job_gone(run.path)
