"""Run directory: atomic writes, tolerant readers, truthful status, the one-job lock, jobs."""

import errno
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from nasnav import runs
from nasnav.jobs import JobLock, JobRunning, running_job, start_job, stop_job
from nasnav.runs import RunDir, append_csv_rows, arch_key, list_runs, read_csv, read_json, write_json


def test_atomic_write_keeps_old_content_on_disk_full(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json(path, {"state": "done"})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full)
    with pytest.raises(OSError):
        write_json(path, {"state": "broken"})
    assert read_json(path) == {"state": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left behind


def test_read_csv_drops_truncated_last_line(tmp_path):
    path = tmp_path / "candidates.csv"
    append_csv_rows(path, [{"arch": "a/b", "acc": 0.5}, {"arch": "c/d", "acc": 0.7}], ["arch", "acc"])
    with open(path, "a") as f:
        f.write("e/f,0.")  # a job killed mid-line
    df = read_csv(path, columns=["arch", "acc"])
    assert list(df["arch"]) == ["a/b", "c/d"]
    append_csv_rows(path, [{"arch": "g/h", "acc": 0.9}], ["arch", "acc"])  # a resumed writer starts a fresh line
    assert list(read_csv(path)["arch"]) == ["a/b", "c/d", "g/h"]


def test_read_csv_missing_file_is_empty_frame_with_columns(tmp_path):
    df = read_csv(tmp_path / "nope.csv", columns=["arch", "one_shot_acc"])
    assert len(df) == 0 and list(df.columns) == ["arch", "one_shot_acc"]


def test_read_json_corrupt_names_file(tmp_path):
    path = tmp_path / "status.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="status.json"):
        read_json(path)


def test_status_of_dead_job_reads_interrupted(tmp_path):
    run = RunDir.create(tmp_path / "r")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status(state="running", pid=proc.pid, job="supernet")
    status = run.read_status()
    assert status["state"] == "interrupted"
    assert "gone" in status["message"]
    assert read_json(run.status_path)["state"] == "running"  # the file itself is not rewritten


def test_status_of_live_job_reads_running(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_status(state="running", pid=os.getpid(), job="search")
    assert run.read_status()["state"] == "running"


def test_lock_refuses_second_job_and_takes_over_stale_lock(tmp_path):
    run = RunDir.create(tmp_path / "r")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_json(run.lock_path, {"pid": sleeper.pid, "job": "supernet"})
        with pytest.raises(JobRunning, match="already has a running supernet job"):
            JobLock(run, "search").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = JobLock(run, "search")
    lock.acquire()  # the holder is gone: stale lock taken over
    assert read_json(run.lock_path)["pid"] == os.getpid()
    lock.release()
    assert not run.lock_path.exists()


def test_create_refuses_non_empty_directory(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "something.txt").write_text("x")
    with pytest.raises(ValueError, match="already exists"):
        RunDir.create(tmp_path / "r")


def test_rounds_and_current_round_override(tmp_path):
    run = RunDir.create(tmp_path / "r")
    for k in (0, 1, 2):
        (run.ensure_round_dir(k) / "space.yaml").write_text("stages: []\n")
    assert run.rounds() == [0, 1, 2]
    assert run.current_round() == 2
    run.set_current_round(1)  # undo keeps round 2's files
    assert run.current_round() == 1
    assert (run.round_dir(2) / "space.yaml").exists()


def test_arch_key_is_safe_and_unique():
    a, b = arch_key("conv3x3/maxpool3x3+skip"), arch_key("conv3x3+maxpool3x3/skip")
    assert a != b and "/" not in a and "+" not in a
    long = "/".join(["sepconv5x5+dilconv3x3+maxpool3x3"] * 20)
    assert len(arch_key(long)) <= 120 and arch_key(long) != arch_key(long + "+skip")


def test_list_runs_reports_best_accuracy(tmp_path):
    run = RunDir.create(tmp_path / "a")
    run.config_path.write_text("seed: 0\n")
    run.write_status(state="done", stage="search")
    append_csv_rows(run.ensure_round_dir(0) / "candidates.csv",
                    [{"arch": "x", "one_shot_acc": 0.5}, {"arch": "y", "one_shot_acc": 0.8}], ["arch", "one_shot_acc"])
    (tmp_path / "not-a-run").mkdir()
    listed = list_runs(tmp_path)
    assert [r["name"] for r in listed] == ["a"]
    assert listed[0]["best_acc"] == pytest.approx(0.8)


def test_start_and_stop_a_real_job(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "fakejob.py").write_text(textwrap.dedent("""
        import signal, sys, time
        from nasnav.runs import RunDir
        run = RunDir(sys.argv[1])
        def stop(*_):
            run.write_status(state="stopped", message="fake stopped")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        run.write_status(state="running", message="working")
        print("fake job working", flush=True)
        time.sleep(60)
    """))
    run = RunDir.create(tmp_path / "r")
    pid = start_job(run, "fake", [str(run.path)], env={"PYTHONPATH": str(pkg)}, module="fakejob")
    deadline = time.time() + 20
    while time.time() < deadline and "fake job working" not in run.log_tail("fake"):
        time.sleep(0.1)
    assert "fake job working" in run.log_tail("fake")
    assert running_job(run)["pid"] == pid
    with pytest.raises(JobRunning):
        start_job(run, "fake", [str(run.path)], env={"PYTHONPATH": str(pkg)}, module="fakejob")
    assert stop_job(run, timeout=10) is True
    assert not runs.pid_alive(pid)
    assert run.read_status()["state"] == "stopped"
    assert stop_job(run) is False  # nothing left to stop


def test_written_csv_round_trips(tmp_path):
    df = pd.DataFrame({"arch": ["a", "b"], "one_shot_acc": [0.1, 0.2]})
    runs.write_csv(tmp_path / "x.csv", df)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "x.csv"), df)
