"""Side jobs (a spot check) run beside the run's main job: their own lock, no status.json, one of a kind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nasnav.jobs.context import side_job
from nasnav.jobs.control import JobLock, JobRunning, running_job, start_job, stop_job
from nasnav.store.io import read_json
from nasnav.store.run_dir import RunDir


@pytest.fixture
def run(tmp_path):
    r = RunDir.create(tmp_path / "run")
    r.write_status(state="idle", message="created")
    return r


def test_a_side_job_does_not_hold_the_run(run):
    with side_job(run, "spotcheck", "spotcheck"):
        assert running_job(run) is None  # searches and decisions go on
        assert running_job(run, "spotcheck")["job"] == "spotcheck"
        with JobLock(run, "search"):  # the main job's lock is free
            assert running_job(run)["job"] == "search"
        assert run.side_lock_path("spotcheck").exists() and not run.lock_path.exists()
    assert running_job(run, "spotcheck") is None and not run.side_lock_path("spotcheck").exists()


def test_one_side_job_of_a_kind(run):
    code = ("import sys; from nasnav.jobs.control import JobLock, JobRunning; from nasnav.store.run_dir import RunDir\n"
            "try:\n    JobLock(RunDir(sys.argv[1]), 'spotcheck', lane='spotcheck').acquire()\n"
            "except JobRunning:\n    sys.exit(3)\n")
    with side_job(run, "spotcheck", "spotcheck"):
        assert subprocess.run([sys.executable, "-c", code, str(run.path)]).returncode == 3
    assert subprocess.run([sys.executable, "-c", code, str(run.path)]).returncode == 0


def test_start_and_stop_a_side_job_leave_the_status_alone(run):
    before = read_json(run.status_path)
    pid = start_job(run, "spotcheck", ["-n", "1", "-r", "1", "import time; time.sleep(30)"], module="timeit", lane="spotcheck")
    assert running_job(run, "spotcheck")["pid"] == pid and running_job(run) is None
    with pytest.raises(JobRunning):
        start_job(run, "spotcheck", ["-n", "1", "pass"], module="timeit", lane="spotcheck")
    assert stop_job(run, timeout=5, lane="spotcheck")
    deadline = time.time() + 10
    while running_job(run, "spotcheck") and time.time() < deadline:
        time.sleep(0.1)
    assert running_job(run, "spotcheck") is None
    assert read_json(run.status_path) == before  # the main job's status is untouched
