"""The job queue (``jobs.slots``): per-user and global limits on concurrent jobs, the queue in files
(it survives a restart of the server), and queued jobs start as slots free up."""

from __future__ import annotations

import threading
import time

import pytest

from nasnav.config import load_config, preset_path
from nasnav.errors import InvalidInput
from nasnav.jobs import control, slots
from nasnav.jobs.control import JobRunning, running_job
from nasnav.store import layout
from nasnav.workflow import access

LAB = access.Lab.from_settings({"jobs_per_user": 1, "jobs_total": 2}, logins=True)
ALICE, BOB, CAROL = (LAB.user(f"{n}@lab.org") for n in ("alice", "bob", "carol"))


@pytest.fixture
def make(tmp_path):
    cfg = load_config(preset_path("tiny"))
    return lambda user, name: access.create_run(user, cfg, tmp_path / name)


def wait_for(cond, seconds: float = 10.0) -> None:
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_per_user_and_global_limits_queue_in_order(make, sleeping_jobs, tmp_path):
    a1, a2, b1, c1 = make(ALICE, "a1"), make(ALICE, "a2"), make(BOB, "b1"), make(CAROL, "c1")
    assert access.start_job(ALICE, a1, "supernet", [], LAB.limits) is None  # sleeping_jobs
    assert access.start_job(ALICE, a2, "supernet", [], LAB.limits) == 1  # alice is at her limit: queued
    assert access.start_job(BOB, b1, "search", [], LAB.limits) is None  # bob's slot is free: not held up by alice's
    assert access.start_job(CAROL, c1, "search", [], LAB.limits) == 2  # the server is full (2 jobs)
    assert running_job(a2) is None and running_job(c1) is None
    assert slots.position(a2) == (1, 2) and slots.position(c1) == (2, 2) and slots.position(a1) is None
    assert slots.usage(tmp_path, "alice@lab.org") == {"mine": 1, "total": 2, "queued_mine": 1, "queued": 2}
    assert slots.pump(tmp_path, LAB.limits) == []  # nothing freed: nothing starts

    access.stop_job(ALICE, a1)  # a slot frees: the oldest waiting job that fits starts
    assert [r["run"] for r in slots.pump(tmp_path, LAB.limits)] == [str(a2.path)]
    assert running_job(a2)["job"] == "supernet" and slots.position(c1) == (1, 1)
    access.stop_job(BOB, b1)
    slots.pump(tmp_path, LAB.limits)
    assert running_job(c1)["job"] == "search" and slots.queued(tmp_path) == []


def test_the_queue_is_files_and_a_new_server_starts_it(make, sleeping_jobs, tmp_path):
    a1, a2 = make(ALICE, "a1"), make(ALICE, "a2")
    access.start_job(ALICE, a1, "supernet", [], LAB.limits)
    access.start_job(ALICE, a2, "retrain", ["retrain", str(a2.path), "--arch", "x"], LAB.limits, lane=None)
    files = list((tmp_path / layout.JOB_QUEUE).glob("*.json"))
    assert len(files) == 1 and "a2" in files[0].name
    control.stop_job(a1, timeout=5)  # the job ends while no page is open: the server's thread starts the next
    slots._PUMPS.clear()  # as after a restart: nothing in memory
    slots.ensure_pump(tmp_path, LAB.limits, every=0.2)
    wait_for(lambda: running_job(a2) is not None)
    assert sleeping_jobs[-1][0].path == a2.path and not list((tmp_path / layout.JOB_QUEUE).glob("*.json"))


def test_a_job_is_live_or_queued_once_and_stop_takes_it_out(make, sleeping_jobs):
    a1, a2 = make(ALICE, "a1"), make(ALICE, "a2")
    access.start_job(ALICE, a1, "supernet", [], LAB.limits)
    with pytest.raises(JobRunning, match="already has a running supernet"):
        access.start_job(ALICE, a1, "supernet", [], LAB.limits)
    assert access.start_job(ALICE, a2, "search", [], LAB.limits) == 1
    with pytest.raises(JobRunning, match="waiting in the queue"):
        access.start_job(ALICE, a2, "search", [], LAB.limits)
    assert access.start_job(ALICE, a2, "spotcheck", [], LAB.limits, lane=layout.SPOTCHECK_LANE) == 2  # its own lane
    assert access.stop_job(ALICE, a2) and slots.position(a2) is None
    assert slots.position(a2, layout.SPOTCHECK_LANE) == (1, 1)
    access.delete_run(ALICE, a2)  # deleting a run takes its waiting jobs out
    assert slots.queued(a2.path.parent) == []


def test_a_deleted_run_or_a_job_that_cannot_start_leaves_the_queue(make, sleeping_jobs, tmp_path, monkeypatch):
    a1, a2 = make(ALICE, "a1"), make(ALICE, "a2")
    access.start_job(ALICE, a1, "supernet", [], LAB.limits)
    access.start_job(ALICE, a2, "search", [], LAB.limits)
    control.stop_job(a1, timeout=5)

    def broken(run, job, args, lane=None):
        raise InvalidInput("job name 'search' is not valid")

    monkeypatch.setattr(slots, "start_job", broken)
    assert slots.pump(tmp_path, LAB.limits) == [] and slots.queued(tmp_path) == []
    assert a2.read_status()["state"] == "failed" and "not valid" in a2.read_status()["error"]


def test_two_sessions_cannot_both_take_the_last_slot(make, sleeping_jobs, tmp_path):
    limits = slots.Limits(per_user=4, total=1)
    runs = [make(ALICE, f"r{i}") for i in range(4)]
    results: list[int | None] = []
    barrier = threading.Barrier(len(runs))

    def go(run):
        barrier.wait()
        results.append(access.start_job(ALICE, run, "search", [], limits))

    threads = [threading.Thread(target=go, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda x: x or 0) == [None, 1, 2, 3]
    assert sum(running_job(r) is not None for r in runs) == 1 and len(slots.queued(tmp_path)) == 3
