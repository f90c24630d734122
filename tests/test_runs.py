"""Run directory: atomic writes, tolerant readers, truthful status, the one-job lock, jobs."""

import errno
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from nasnav.jobs.control import JobLock, JobRunning, running_job, start_job, stop_job
from nasnav.store import io as store_io
from nasnav.store import layout
from nasnav.store.io import append_csv_rows, read_csv, read_json, read_yaml, write_json
from nasnav.store.process import host_name, identity, pid_alive, pid_start
from nasnav.store.run_dir import RunDir, arch_from_key, arch_key, list_runs

FAKE_JOB = textwrap.dedent("""
    import signal, sys, time
    from nasnav.jobs.control import JobLock
    from nasnav.store.run_dir import RunDir
    run, mode = RunDir(sys.argv[1]), sys.argv[2]
    def stop(*_):
        run.write_status(state="stopped", message="fake stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else stop)
    with JobLock(run, "fake"):
        run.write_status(state="running", message="working")
        print("fake job working", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def fake_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "fakejob.py").write_text(FAKE_JOB)
    return {"PYTHONPATH": str(pkg)}


def wait_for(cond, seconds=20.0):
    deadline = time.time() + seconds
    while time.time() < deadline and not cond():
        time.sleep(0.05)
    return cond()


def test_atomic_write_keeps_old_content_on_disk_full(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json(path, {"state": "done"})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_io.os, "fsync", full)
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
    append_csv_rows(
        run.ensure_round_dir(0) / "candidates.csv",
        [{"arch": "x", "one_shot_acc": 0.5}, {"arch": "y", "one_shot_acc": 0.8}],
        ["arch", "one_shot_acc"],
    )
    (tmp_path / "not-a-run").mkdir()
    listed = list_runs(tmp_path)
    assert [r["name"] for r in listed] == ["a"]
    assert listed[0]["best_acc"] == pytest.approx(0.8)


def test_written_csv_round_trips(tmp_path):
    df = pd.DataFrame({"arch": ["a", "b"], "one_shot_acc": [0.1, 0.2]})
    store_io.write_csv(tmp_path / "x.csv", df)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "x.csv"), df)


def test_atomic_write_failing_replace_leaves_no_tmp(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    store_io.write_yaml(path, {"seed": 1})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_io.os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        store_io.write_yaml(path, {"seed": 2})
    assert read_yaml(path) == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_write_json_converts_numpy_and_paths(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "n": np.int64(3), "v": np.arange(2), "p": tmp_path})
    assert read_json(tmp_path / "m.json") == {"acc": 0.5, "n": 3, "v": [0, 1], "p": str(tmp_path)}
    assert read_json(tmp_path / "missing.json", default={"x": 1}) == {"x": 1}


def test_read_yaml_error_names_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("seed: 1\nsearch: [unclosed\n")
    with pytest.raises(ValueError, match=r"config.yaml.*line"):
        read_yaml(path)
    with pytest.raises(ValueError, match="nope.yaml"):
        read_yaml(tmp_path / "nope.yaml")


def test_append_refuses_new_columns_and_keeps_header_order(tmp_path):
    path = tmp_path / "c.csv"
    append_csv_rows(path, [{"arch": "a", "acc": 0.1}], ["arch", "acc"])
    append_csv_rows(path, [{"acc": 0.2, "arch": "b"}], ["acc", "arch"])
    assert read_csv(path).to_dict("records") == [{"arch": "a", "acc": 0.1}, {"arch": "b", "acc": 0.2}]
    with pytest.raises(ValueError, match="c.csv.*params"):
        append_csv_rows(path, [{"arch": "c"}], ["arch", "params"])


def test_read_csv_truncated_header_only_is_empty(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("arch,one_sh")
    df = read_csv(path, columns=["arch", "one_shot_acc"])
    assert len(df) == 0 and list(df.columns) == ["arch", "one_shot_acc"]


def test_status_defaults_and_invalid_state(tmp_path):
    run = RunDir.create(tmp_path / "r")
    status = run.read_status()
    assert status["state"] == "idle" and status["extra"] == {}
    status["extra"]["x"] = 1  # mutating a returned status must not leak into the defaults
    assert run.read_status()["extra"] == {}
    with pytest.raises(ValueError, match="not one of"):
        run.write_status(state="exploded")


def test_status_silent_job_reads_interrupted_unless_heartbeat(tmp_path):
    run = RunDir.create(tmp_path / "r")
    old = time.time() - 1000
    write_json(
        run.status_path, {"state": "running", "pid": os.getpid(), "job": "supernet", "heartbeat": old, "updated": old}
    )
    status = run.read_status()
    assert status["state"] == "interrupted" and "not reported" in status["message"]
    run.heartbeat_path.touch()  # the lock holder's heartbeat thread proves the job alive
    assert run.read_status()["state"] == "running"


def test_pid_reuse_is_detected():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = pid_start(sleeper.pid)
        assert pid_alive(sleeper.pid) and pid_alive(sleeper.pid, start)
        if start is not None:  # Linux: a different start time means another process got the pid
            assert not pid_alive(sleeper.pid, start + 1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_alive(sleeper.pid) and not pid_alive(None) and not pid_alive(0)


def test_zombie_child_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not yet waited for: a zombie until pid_alive reaps it
    assert not pid_alive(proc.pid)


def test_lock_is_reentrant_and_heartbeats(tmp_path):
    run = RunDir.create(tmp_path / "r")
    outer = JobLock(run, "search", heartbeat=0.05).acquire()
    inner = JobLock(run, "search").acquire()
    inner.release()
    assert run.lock_path.exists()  # still held by the outer hold
    first = run.heartbeat_path.stat().st_mtime_ns
    assert wait_for(lambda: run.heartbeat_path.stat().st_mtime_ns != first, 5)
    with pytest.raises(JobRunning):
        start_job(run, "other", [])
    outer.release()
    assert not run.lock_path.exists()


def test_lock_with_reused_pid_is_stale(tmp_path):
    run = RunDir.create(tmp_path / "r")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = pid_start(sleeper.pid)
        if start is None:
            pytest.skip("no /proc")
        write_json(run.lock_path, {"pid": sleeper.pid, "pid_start": start + 7, "job": "supernet"})
        with JobLock(run, "search"):
            assert read_json(run.lock_path)["job"] == "search"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_arch_key_round_trips_and_hashes_odd_names():
    for arch in ["conv3x3/maxpool3x3+skip/sepconv5x5", "a_b/c", "x"]:
        assert arch_from_key(arch_key(arch)) == arch
    odd = [arch_key(a) for a in ["conv-3/skip", "conv+3/skip", "a b/c", "a_b/c", "a__b"]]
    assert len(set(odd)) == len(odd)
    assert all("/" not in k and " " not in k for k in odd)
    with pytest.raises(ValueError):
        arch_key("")


def test_list_runs_tolerates_a_corrupt_run(tmp_path):
    good, bad = RunDir.create(tmp_path / "good"), RunDir.create(tmp_path / "bad")
    for run in (good, bad):
        run.config_path.write_text("seed: 0\n")
    (bad.path / "current_round.json").write_text("{oops")
    listed = {r["name"]: r for r in list_runs(tmp_path)}
    assert listed["good"]["state"] == "idle" and listed["good"]["best_acc"] is None
    assert listed["bad"]["state"] == "interrupted" and "current_round.json" in listed["bad"]["message"]


def test_start_and_stop_a_real_job(tmp_path, fake_module):
    run = RunDir.create(tmp_path / "r")
    pid = start_job(run, "fake", [str(run.path), "polite"], env=fake_module, module="fakejob")
    assert run.read_status()["state"] == "running" and run.read_status()["pid"] == pid
    assert wait_for(lambda: "fake job working" in run.log_tail("fake")), run.log_tail("fake")
    assert read_json(run.lock_path)["pid"] == pid and "reserved_by" not in read_json(run.lock_path)
    assert running_job(run)["pid"] == pid
    with pytest.raises(JobRunning, match="already has a running fake job"):
        start_job(run, "fake", [str(run.path), "polite"], env=fake_module, module="fakejob")
    assert stop_job(run, timeout=10) is True
    assert not pid_alive(pid)
    status = run.read_status()
    assert status["state"] == "stopped" and status["message"] == "fake stopped"  # the job's own final word
    assert not run.lock_path.exists()
    assert stop_job(run) is False  # nothing left to stop


def test_stop_kills_a_job_that_ignores_sigterm(tmp_path, fake_module):
    run = RunDir.create(tmp_path / "r")
    pid = start_job(run, "fake", [str(run.path), "stubborn"], env=fake_module, module="fakejob")
    assert wait_for(lambda: "fake job working" in run.log_tail("fake")), run.log_tail("fake")
    t = time.time()
    assert stop_job(run, timeout=0.5) is True
    assert time.time() - t < 5 and not pid_alive(pid)
    status = run.read_status()
    assert status["state"] == "stopped" and "start it again" in status["message"]
    assert JobLock(run, "next").acquire().held  # the dead job's lock is no obstacle


def test_child_that_dies_at_once_reads_interrupted(tmp_path):
    run = RunDir.create(tmp_path / "r")
    pid = start_job(run, "broken", [], module="nasnav_no_such_module")
    assert wait_for(lambda: not pid_alive(pid))
    status = run.read_status()
    assert status["state"] == "interrupted" and "logs/broken.log" in status["message"]
    assert "No module named" in run.log_tail("broken")
    assert running_job(run) is None


# ---- several hosts on one shared run folder (issue 26): a pid means something only on its own host ----
OTHER = "other-node.cluster"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def age(*paths, seconds=600.0):
    for p in paths:
        t = time.time() - seconds
        os.utime(p, (t, t))


def test_records_name_their_host(tmp_path, fake_module):
    run = RunDir.create(tmp_path / "r")
    with JobLock(run, "search"):
        assert read_json(run.lock_path) == {**identity(), "job": "search", "time": read_json(run.lock_path)["time"]}
        assert read_json(run.heartbeat_path) == {**identity(), "job": "search"}
    run.write_status(state="running", pid=os.getpid(), job="search")
    assert read_json(run.status_path)["host"] == host_name() and host_name()


def test_a_live_job_on_another_host_is_never_taken_over(tmp_path):
    run = RunDir.create(tmp_path / "r")
    # its pid does not exist here: that says nothing about a process on another machine
    write_json(run.lock_path, {"pid": dead_pid(), "pid_start": 12345, "host": OTHER, "job": "supernet",
                               "time": time.time()})
    run.heartbeat_path.touch()
    run.write_status(state="running", job="supernet", pid=dead_pid(), pid_start=1, host=OTHER)
    with pytest.raises(JobRunning, match=f"supernet job \\(pid \\d+ on host {OTHER}\\)"):
        JobLock(run, "search").acquire()
    assert running_job(run)["host"] == OTHER
    assert run.read_status()["state"] == "running"
    with pytest.raises(JobRunning):
        start_job(run, "search", [])
    # its heartbeat stops: now it is stale, and only now taken over
    write_json(run.lock_path, {**read_json(run.lock_path), "time": time.time() - 600})
    write_json(run.status_path, {**read_json(run.status_path), "updated": time.time() - 600,
                                 "heartbeat": time.time() - 600})
    age(run.lock_path, run.heartbeat_path)
    status = run.read_status()
    assert status["state"] == "interrupted" and f"on host {OTHER}" in status["message"], status
    with JobLock(run, "search"):
        assert read_json(run.lock_path)["host"] == host_name()


def test_a_side_job_lock_of_another_host_lives_by_its_beat(tmp_path):
    run = RunDir.create(tmp_path / "r")
    lock = run.side_lock_path(layout.SPOTCHECK_LANE)
    write_json(lock, {"pid": dead_pid(), "host": OTHER, "job": "spotcheck", "time": time.time()})
    assert running_job(run, layout.SPOTCHECK_LANE)["host"] == OTHER
    write_json(lock, {"pid": dead_pid(), "host": OTHER, "job": "spotcheck", "time": time.time() - 600})
    age(lock)
    assert running_job(run, layout.SPOTCHECK_LANE) is None


def test_a_held_lock_file_beats(tmp_path):
    run = RunDir.create(tmp_path / "r")
    with JobLock(run, "spot", heartbeat=0.05, lane=layout.SPOTCHECK_LANE) as held:
        age(held.path)
        assert wait_for(lambda: time.time() - held.path.stat().st_mtime < 5, 5)  # another host sees it live
    assert not held.path.exists()  # the beat never recreates a released lock


@pytest.fixture
def bystander():
    """A live process of this host that is no job of any run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield proc
    proc.kill()
    proc.wait()


def test_stop_never_signals_another_hosts_job(tmp_path, bystander):
    run = RunDir.create(tmp_path / "r")
    # the pid of a live process here, in a lock of another host: not that process
    write_json(run.lock_path, {"pid": bystander.pid, "pid_start": pid_start(bystander.pid), "host": OTHER,
                               "job": "supernet", "time": time.time()})
    with pytest.raises(ValueError, match=f"runs on host {OTHER}.*stop it there"):
        stop_job(run, timeout=0.5)
    time.sleep(0.2)
    assert bystander.poll() is None


def test_stop_signals_only_a_pid_proven_by_its_start_time(tmp_path, bystander):
    run = RunDir.create(tmp_path / "r")
    if pid_start(bystander.pid) is None:
        pytest.skip("no /proc: start times cannot be read here")
    # a status naming a live pid without its start time (hand-edited, or written before start times)
    write_json(run.status_path, {"state": "running", "job": "supernet", "pid": bystander.pid, "updated": time.time()})
    with pytest.raises(ValueError, match=f"pid {bystander.pid} is not the supernet job.*nothing was signalled"):
        stop_job(run, timeout=0.5)
    time.sleep(0.2)
    assert bystander.poll() is None


def test_temporary_files_name_their_host_and_only_their_host_sweeps_them(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(store_io.os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b)))
    write_json(tmp_path / "x.json", {"a": 1})
    monkeypatch.undo()
    assert seen and seen[0].startswith(f".x.json.{os.getpid()}@{host_name()}.") and seen[0].endswith(".tmp")
    gone = dead_pid()
    mine = tmp_path / f".x.json.{gone}@{host_name()}.ab_1.tmp"
    theirs = tmp_path / f".x.json.{gone}@{OTHER}.ab_2.tmp"
    theirs_old = tmp_path / f".y.json.{gone}@{OTHER}.ab_3.tmp"
    for p in (mine, theirs, theirs_old):
        p.write_text("partial")
    age(theirs_old, seconds=2 * store_io.TMP_STALE_SECONDS)
    assert sorted(store_io.sweep_temp_files(tmp_path)) == sorted([mine, theirs_old])
    assert theirs.exists()  # another host's writer may be alive: a pid absent here proves nothing


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_keep_normal_file_modes(tmp_path, mask):
    before = os.umask(mask)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(before)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask
