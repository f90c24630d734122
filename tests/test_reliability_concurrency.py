"""Concurrency: one job per run, isolated app sessions on different runs, consistent sessions on
the same run, and a soak of prune/undo cycles and page reruns that must not grow memory, open
files or threads."""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nasnav import cli
from nasnav.config import config_from_dict, preset_path
from nasnav.jobs.control import JobLock, JobRunning, running_job, start_job, stop_job
from nasnav.steering.actions import Action, Op
from nasnav.store import records
from nasnav.store.io import read_json, read_yaml, write_json
from nasnav.store.process import identity, pid_alive
from nasnav.store.run_dir import RunDir
from nasnav.workflow import decisions as steering
from nasnav.workflow.runs import create_run
from nasnav.workflow.supernet import train_supernet

pytestmark = pytest.mark.usefixtures("single_thread")
REPO = Path(__file__).resolve().parents[1]
FAST = ["data.max_samples=300", "supernet.epochs=1", "trainer.enable_progress_bar=false", "steering.autopilot=false"]
JOB_ENV = {"OMP_NUM_THREADS": "1"}


def wait_for(cond, seconds: float = 60.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and not cond():
        time.sleep(0.05)
    return bool(cond())


def snapshot(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> RunDir:
    """Round 0 with a supernet (1 epoch) and 12 scored candidates; tests work on copies."""
    cfg = config_from_dict(read_yaml(preset_path("tiny")), "tiny", FAST)
    run = create_run(cfg, tmp_path_factory.mktemp("conc") / "base")
    train_supernet(run, cfg, 0)
    assert cli.main(["evaluate", str(run.path), "--n", "12"]) == 0
    return run


def copy_of(run: RunDir, dst: Path) -> RunDir:
    shutil.copytree(run.path, dst)
    return RunDir(dst)


# ---- one job per run ------------------------------------------------------------------------------
def test_second_job_on_a_running_run_is_refused_with_a_clear_message(scored, tmp_path, capsys):
    run = copy_of(scored, tmp_path / "runs" / "busy")
    # a real, slow job: 60 fine-tuning epochs of round 0's supernet
    cfg = read_yaml(run.config_path)
    cfg["supernet"]["epochs"] = 60
    from nasnav.store.io import write_yaml

    write_yaml(run.config_path, cfg)
    pid = start_job(run, "supernet", ["supernet", str(run.path)], env=JOB_ENV)
    try:
        assert wait_for(lambda: (read_json(run.lock_path, default={}) or {}).get("pid") == pid
                        and "reserved_by" not in (read_json(run.lock_path, default={}) or {})), run.log_tail("supernet")
        # the job itself has written its status (after the lock, it rewrites the starter's "starting supernet")
        assert wait_for(lambda: read_json(run.status_path).get("message") != "starting supernet"), run.log_tail("supernet")
        status_before = read_json(run.status_path)
        with pytest.raises(JobRunning, match=rf"already has a running supernet job \(pid {pid}\); stop it first"):
            start_job(run, "search", ["evaluate", str(run.path), "--n", "3"])
        capsys.readouterr()
        assert cli.main(["evaluate", str(run.path), "--n", "3"]) == 2  # the same from a terminal
        err = capsys.readouterr().err
        assert f"already has a running supernet job (pid {pid})" in err and "Traceback" not in err, err
        with pytest.raises(JobRunning):
            JobLock(run, "retrain").acquire()
        with pytest.raises(JobRunning, match="stop it before changing rounds"):
            steering.apply_decision(run, config_from_dict(read_yaml(run.config_path)),
                                    [Action(Op.PRUNE, "s1", "skip")])
        now = read_json(run.status_path)
        assert now["pid"] == pid and now["job"] == "supernet" and now["started"] == status_before["started"]
        assert run.read_status()["state"] == "running"
        assert running_job(run)["pid"] == pid
    finally:
        stop_job(run, timeout=20)
    assert not pid_alive(pid)
    assert run.read_status()["state"] in ("stopped", "done")
    assert cli.main(["evaluate", str(run.path), "--n", "1"]) == 0  # free again


HOLDER = textwrap.dedent("""
    import sys, time
    from nasnav.jobs.control import JobLock, JobRunning
    from nasnav.store.run_dir import RunDir
    run, start = RunDir(sys.argv[1]), float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    try:
        JobLock(run, "racer").acquire()
        print("won", flush=True)
        time.sleep(3)
    except JobRunning:
        print("refused", flush=True)
""")


def test_simultaneous_starts_exactly_one_wins(tmp_path):
    run = RunDir.create(tmp_path / "race")
    start = time.time() + 2.5  # every racer is ready (imports done) and waits for this moment
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(run.path), str(start)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["refused", "refused", "refused", "won"], outs


def test_threads_starting_jobs_at_once_start_exactly_one(tmp_path):
    run = RunDir.create(tmp_path / "threads")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "sleeper.py").write_text("import time\ntime.sleep(3)\n")
    results, barrier = [], threading.Barrier(6)

    def go():
        barrier.wait()
        try:
            results.append(start_job(run, "sleeper", [], env={"PYTHONPATH": str(pkg)}, module="sleeper"))
        except JobRunning as e:
            results.append(str(e))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pids = [r for r in results if isinstance(r, int)]
    assert len(pids) == 1 and sum("already has a running sleeper job" in str(r) for r in results) == 5, results
    stop_job(run, timeout=5)


# ---- app sessions -----------------------------------------------------------------------------------
def _page(run: RunDir):
    sys.path.insert(0, str(REPO / "tests"))
    from test_app_support import page

    return page("3_explore.py", run.path, ex_tabs="Decisions")


def _texts(at) -> str:
    from test_app_support import texts

    return texts(at)


def _prune_and_apply(at, stage="s1", component="skip") -> None:
    at.selectbox(key="ex_dec_stage").set_value(stage).run()
    at.selectbox(key=f"ex_dec_comp_{stage}").set_value(component).run()
    at.button(key="ex_dec_prune").click().run()
    at.button(key="ex_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_sessions_on_different_runs_are_isolated(scored, tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path / "runs"))
    a = copy_of(scored, tmp_path / "runs" / "a")
    b = copy_of(scored, tmp_path / "runs" / "b")
    at_a, at_b = _page(a).run(), _page(b).run()
    b_files = snapshot(b.path)
    _prune_and_apply(at_a)
    at_b.run()
    assert a.current_round() == 1 and b.current_round() == 0
    assert "Round 1's space is ready" in _texts(at_a) and "**Search** · round 0" in _texts(at_b)
    assert snapshot(b.path) == b_files, "a decision in session A changed run B"
    assert at_a.session_state["run_path"] != at_b.session_state["run_path"]
    assert "Nothing pending" in _texts(at_b)


def test_sessions_on_the_same_run_see_the_same_state(scored, tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path / "runs"))
    run = copy_of(scored, tmp_path / "runs" / "shared")
    at_a, at_b = _page(run).run(), _page(run).run()
    at_a.selectbox(key="ex_dec_stage").set_value("s1").run()
    at_a.selectbox(key="ex_dec_comp_s1").set_value("skip").run()
    at_a.button(key="ex_dec_prune").click().run()
    at_b.run()
    assert "Prune **skip** in stage **s1**" in _texts(at_b)  # the pending basket lives in the run
    at_a.button(key="ex_apply").click().run()
    at_b.run()
    assert "Round 1's space is ready" in _texts(at_b)  # the other session sees the new round
    at_b.session_state["ex_tabs"] = "Rounds"
    at_b.run()
    at_b.button(key="ex_undo").click().run()
    at_a.run()
    assert "**Search** · round 0" in _texts(at_a) and run.current_round() == 0
    assert not at_a.exception and not at_b.exception
    # a job started from one session is seen (and refused) in the other
    pid = start_job(run, "search", ["evaluate", str(run.path), "--n", "30"], env=JOB_ENV)
    try:
        at_a.run()
        assert "job: search (running)" in _texts(at_a)
    finally:
        stop_job(run, timeout=20)
    assert not pid_alive(pid)
    at_b.run()
    assert "job: search (running)" not in _texts(at_b)


# ---- soak ---------------------------------------------------------------------------------------------
def _resources() -> tuple[int, int, int]:
    """(resident memory in kB, open file descriptors, threads) of this process."""
    gc.collect()
    rss = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS")))
    return rss, len(os.listdir("/proc/self/fd")), threading.active_count()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures /proc")
def test_soak_prune_undo_cycles_and_reruns_do_not_grow(scored, tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path / "runs"))
    run = copy_of(scored, tmp_path / "runs" / "soak")
    cfg = config_from_dict(read_yaml(run.config_path), "config")
    actions = [Action(Op.PRUNE, "s1", "skip")]
    at = _page(run)

    def cycle(i: int) -> None:
        assert steering.apply_decision(run, cfg, actions) == 1
        assert steering.undo(run) == 0
        if i % 10 == 0:
            at.run()
            assert not at.exception, [e.value for e in at.exception]

    t0 = time.time()
    for i in range(20):  # warm-up: caches, lazy imports, allocator pools
        cycle(i)
    rss0, fds0, threads0 = _resources()
    for i in range(20, 200):
        cycle(i)
    for _ in range(20):  # plain page reruns (a fragment polling, a user clicking around)
        at.run()
    rss1, fds1, threads1 = _resources()
    assert fds1 <= fds0 + 2, f"open files grew from {fds0} to {fds1}"
    assert threads1 <= threads0, f"threads grew from {threads0} to {threads1}"
    assert rss1 - rss0 < 40_000, f"memory grew by {(rss1 - rss0) / 1000:.1f} MB over 180 cycles"
    hist = read_json(run.path / "history.json")
    assert sum(e["event"] == "decision" for e in hist) == 200 and sum(e["event"] == "undo" for e in hist) == 200
    assert run.current_round() == 0 and not at.exception
    assert time.time() - t0 < 120


# ---- read-modify-writes of one run at once: serialised under the run's state lock -----------------------
RACER = textwrap.dedent("""
    import sys, time, traceback
    from pathlib import Path
    from nasnav.config import load_config, preset_path
    from nasnav.errors import InvalidInput
    from nasnav.steering.actions import Action, Op
    from nasnav.workflow import decisions
    from nasnav.workflow.runs import create_run, load_run
    who, sync, tasks = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    (sync / f"ready-{who}").touch()  # imports done (many seconds on a busy machine): the parent says go
    while not (sync / "go").exists():
        time.sleep(0.001)
    start = float((sync / "go").read_text())
    for i, task in enumerate(tasks):
        what, path = task.split("=", 1)
        while time.time() < start + 0.3 * i:  # both racers on the same task at the same moment
            time.sleep(0.0002)
        try:
            if what == "create":
                create_run(load_config(preset_path("tiny"), [f"name={who}"]), path)
            else:
                run, cfg = load_run(path)
                stage, comp = ("s1", "sepconv3x3") if who == "a" else ("s3", "dilconv3x3")
                at = {"at_round": 0} if what == "prune-at" else {}  # the round both saw
                decisions.apply_decision(run, cfg, [Action(Op.PRUNE, stage, comp)], **at)
            print("ok", flush=True)
        except InvalidInput as e:
            print("refused:", str(e).replace(chr(10), " "), flush=True)
        except Exception:
            print("ERROR:", traceback.format_exc().replace(chr(10), " | "), flush=True)
""")


def race(tasks: list[tuple[str, Path]], tmp_path: Path, who=("a", "b")) -> list[list[str]]:
    """Two processes doing each task (``create``, ``prune``, ``prune-at`` on a path) at the same moment,
    task after task; per task, their answers (``ok`` or ``refused: <message>``)."""
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [f"{what}={path}" for what, path in tasks]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, w, str(sync), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for w in who]
    assert wait_for(lambda: all((sync / f"ready-{w}").exists() for w in who) or any(p.poll() for p in procs), 120)
    (sync / "go").write_text(str(time.time() + 0.3))
    outs = [p.communicate(timeout=120) for p in procs]
    lines = [o.strip().splitlines() for o, _ in outs]
    assert all(len(ls) == len(tasks) for ls in lines), outs
    assert not any("ERROR" in line for ls in lines for line in ls), lines  # never an internal error
    return [list(per) for per in zip(*lines)]


def test_two_creations_of_one_name_at_once_one_wins_and_nothing_is_replaced(tmp_path):
    paths = [tmp_path / "runs" / f"same-{i}" for i in range(10)]
    for path, answers in zip(paths, race([("create", p) for p in paths], tmp_path, who=("alice", "bob"))):
        assert sorted(a.split(":")[0] for a in answers) == ["ok", "refused"], answers
        winner = ("alice", "bob")[answers.index("ok")]
        refusal = next(a for a in answers if a != "ok")
        assert str(path) in refusal and ("already exists" in refusal or "created meanwhile" in refusal), refusal
        assert read_yaml(path / "config.yaml")["name"] == winner  # the winner's config, not the loser's
        assert RunDir(path).read_status()["stage"] == "created"


def test_two_prunes_at_once_are_both_applied_or_one_is_refused(tmp_path):
    cfg = config_from_dict(read_yaml(preset_path("tiny")), "tiny", FAST)
    tasks = [(mode, create_run(cfg, tmp_path / f"{mode}-{i}").path) for mode in ("prune", "prune-at") for i in range(5)]
    for (mode, path), answers in zip(tasks, race(tasks, tmp_path)):
        run, ok = RunDir(path), answers.count("ok")
        if mode == "prune":  # each decides on the round it finds: both applied, one after the other
            assert ok == 2, answers
        else:  # both decided on round 0: the second finds round 1 and is refused, saying so
            assert ok == 1 and "is at round 1 now, not round 0" in next(a for a in answers if a != "ok"), answers
        applied = [r for k in run.rounds() for r in records.read_decisions(run, k) if r["status"] == "applied"]
        events = [e for e in records.read_history(run) if e["event"] == "decision"]
        assert len(applied) == len(events) == ok == run.current_round(), (answers, applied, events)
        pruned = [(s.name, c) for s in records.read_space(run, ok).stages for c in s.pruned]
        assert len(pruned) == ok  # nothing lost: every prune that reported success is in the space


def test_an_export_waits_for_no_one_else_writing_the_run(tmp_path, capsys):
    """An export rewrites final/<key>/ and its export.json: it runs under the run's job lock, like every job."""
    cfg = config_from_dict(read_yaml(preset_path("tiny")), "tiny", FAST)
    run = create_run(cfg, tmp_path / "run")
    run.final_dir("skip__skip__skip").mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_json(run.lock_path, {**identity(other.pid), "job": "retrain", "time": time.time()})
        capsys.readouterr()
        assert cli.main(["export", str(run.path), "--arch", "skip__skip__skip"]) == 2
        err = capsys.readouterr().err
        assert f"already has a running retrain job (pid {other.pid})" in err and "Traceback" not in err, err
    finally:
        other.kill()
        other.wait()
