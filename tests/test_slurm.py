"""Trainings and the supernet as Slurm jobs, against a real Slurm: this machine as controller and compute
node (``.ci/slurm-up``; ``.ci/run`` installs slurm-wlm and munge and starts it). Where Slurm cannot start,
the tests that need it skip and say why; with NASNAV_REQUIRE_SLURM=1 (CI) they fail instead.

`pytest -k slurm` selects every test here.
"""

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from nasnav.cli import main
from nasnav.config import ConfigError, load_config
from nasnav.errors import InvalidInput
from nasnav.jobs import slurm
from nasnav.stop import JobStopped
from nasnav.store import layout
from nasnav.store.io import read_csv, read_json, write_json
from nasnav.store.run_dir import RunDir
from nasnav.train.trainer import finished_epochs
from nasnav.workflow import remote as cluster_jobs
from nasnav.workflow import spotcheck
from nasnav.workflow.retrain import retrain
from nasnav.workflow.runs import create_run, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("single_thread")  # as the jobs (cluster.cpus_per_task 1): the same arithmetic
SETS = ["steering.autopilot=false", "supernet.epochs=1", "search.budget=8", "retrain.spotcheck_epochs=1"]


def _node_idle() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(s.strip().rstrip("*") in ("idle", "mix", "alloc") for s in out.split())


def _start_slurm() -> str | None:
    """Start the single-machine Slurm if it is not up; None when it answers, else why not."""
    if slurm.available() and _node_idle():
        return None
    if not shutil.which("slurmctld") and not Path("/usr/sbin/slurmctld").exists():
        return "Slurm is not installed (apt-get install slurm-wlm munge; .ci/run does it as root)"
    if os.geteuid() != 0:
        return "Slurm is installed but not running, and starting it (.ci/slurm-up) needs root"
    proc = subprocess.run([str(REPO / ".ci" / "slurm-up")], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not _node_idle():
        return f"Slurm could not start (.ci/slurm-up):\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
    return None


@pytest.fixture(scope="module")
def slurm_up():
    reason = _start_slurm()
    if reason:
        if os.environ.get("NASNAV_REQUIRE_SLURM") == "1":
            pytest.fail(f"NASNAV_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A tiny run with a trained supernet and scored candidates (round 0), trained here."""
    cfg = load_config(REPO / "configs" / "tiny.yaml", SETS)
    run = create_run(cfg, tmp_path_factory.mktemp("slurm") / "base")
    train_supernet(run, cfg, 0)
    score_candidates(run, cfg, 0)
    return run, cfg


def _copy(run: RunDir, to: Path) -> RunDir:
    shutil.copytree(run.path, to)
    return RunDir(to)


def _on_slurm(cfg, **cluster):
    return dataclasses.replace(cfg, cluster=dataclasses.replace(cfg.cluster, backend="slurm", **cluster))


def _jobs(run: RunDir) -> list[dict]:
    return slurm.read_jobs(run)


# ---- without Slurm: the settings and the app's cancel refuse what they must ------------------------------
def test_slurm_settings_refuse_sbatch_values_that_would_add_lines_to_the_job_script():
    for bad, says in [({"sbatch": {"account": "lab\n#SBATCH --uid=0"}}, "cluster.sbatch"),
                      ({"sbatch": {"Bad Name": "x"}}, "not an sbatch option name"),
                      ({"partition": "gpu; rm -rf /"}, "cluster.partition"),
                      ({"backend": "pbs"}, "cluster.backend"), ({"gpus": 1}, "cluster.gpus: unknown key")]:
        with pytest.raises(ConfigError, match="cluster") as e:
            _config_with(bad)
        assert says in str(e.value), str(e.value)
    good = _config_with({"backend": "slurm", "partition": "gpu", "sbatch": {"account": "lab", "qos": "high"}})
    assert good.cluster.backend == "slurm" and good.cluster.sbatch == {"account": "lab", "qos": "high"}


def _config_with(cluster: dict):
    from nasnav.config import config_from_dict
    from nasnav.store.io import read_yaml

    return config_from_dict({**read_yaml(REPO / "configs" / "tiny.yaml"), "cluster": cluster}, "tiny.yaml")


def test_slurm_cancel_from_the_app_refuses_ids_that_are_not_the_runs_jobs(tmp_path):
    run = RunDir(tmp_path)
    write_json(tmp_path / layout.CLUSTER_DIR / "spotcheck-r000" / layout.CLUSTER_JOBS,
               [{"name": "a seed 0", "job_id": "41_0", "state": "running"}])
    for bad in ["41; rm -rf /", "-1", "41_0 42"]:
        with pytest.raises(InvalidInput, match="not a Slurm job id"):
            slurm.cancel(run, bad)
    with pytest.raises(InvalidInput, match="not a job of run"):
        slurm.cancel(run, "42")
    assert [j["job_id"] for j in slurm.read_jobs(run)] == ["41_0"]
    assert slurm.short_state("CANCELLED by 0") == "killed" and slurm.short_state("PENDING") == "pending"


# ---- against Slurm --------------------------------------------------------------------------------------
def test_slurm_spotcheck_trains_as_slurm_jobs_with_the_accuracies_of_a_local_run(slurm_up, searched, tmp_path):
    run, cfg = searched
    here, there = _copy(run, tmp_path / "local"), _copy(run, tmp_path / "slurm")
    two = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=2))  # two local workers
    local = spotcheck.spotcheck(here, two, 2, m=1, seeds=1)
    remote = spotcheck.spotcheck(there, _on_slurm(cfg), 2, m=1, seeds=1)
    assert remote["state"] == "done" and remote["trained_now"] == 3
    runs = [read_csv(r.round_dir(0) / layout.SPOTCHECK_RUNS).set_index(["arch", "seed"]).sort_index()
            for r in (here, there)]
    assert list(runs[0].index) == list(runs[1].index)
    assert list(runs[0]["standalone_acc"]) == list(runs[1]["standalone_acc"])  # the same, bit for bit
    assert list(runs[0]["val_loss"]) == list(runs[1]["val_loss"])
    assert [p["standalone_acc"] for p in local["pairs"]] == [p["standalone_acc"] for p in remote["pairs"]]
    jobs = _jobs(there)
    assert len(jobs) == 3 and {j["state"] for j in jobs} == {"done"}
    assert len({j["job_id"].split("_")[0] for j in jobs}) == 1, "one job array"
    assert not (there.path / layout.CLUSTER_DIR / "spotcheck-r000" / "ckpt").exists() or not any(
        (there.path / layout.CLUSTER_DIR / "spotcheck-r000" / "ckpt").iterdir()), "finished checkpoints removed"
    assert "Trainer.fit" in slurm.log_tail(there, jobs[0], 200)


def test_slurm_supernet_job_runs_two_tasks_under_srun_as_one_ddp_training(slurm_up, tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml", [*SETS, "supernet.epochs=2", "trainer.devices=2",
                                                        "trainer.strategy=ddp", "cluster.backend=slurm"])
    run = create_run(cfg, tmp_path / "run")
    assert main(["supernet", str(run.path)]) == 0
    assert run.read_status()["state"] == "done"
    assert (run.round_dir(0) / layout.SUPERNET).exists()
    assert list(read_csv(run.round_dir(0) / layout.TRAIN_METRICS)["epoch"]) == [1, 2], "rank 0 alone writes"
    (job,) = _jobs(run)
    assert job["state"] == "done" and job["name"] == "supernet of round 0"
    folder = slurm.group_dir(run, "supernet-r000")
    logs = sorted(folder.glob(f"{job['job_id']}_*_log.err"))
    assert len(logs) == 2, "two tasks, each its own log"
    text = "".join(p.read_text() for p in logs)
    assert "MEMBER: 1/2" in text and "MEMBER: 2/2" in text, text[-3000:]  # Lightning's two ranks joined


def _scancel_when_training(run: RunDir, ckpt_root: Path, killed: list) -> None:
    """Cancel the training's job from outside (as an admin or a pre-emption would) once it has saved an
    epoch; ``killed`` gets the job id and the epochs its checkpoint held then."""
    deadline = time.time() + 240
    while time.time() < deadline and not killed:
        jobs = [j for j in _jobs(run) if j["state"] == "running"]
        ckpts = list(ckpt_root.rglob(layout.LAST_CKPT))
        if jobs and ckpts:
            epochs = finished_epochs(ckpts[0])
            subprocess.run(["scancel", jobs[0]["job_id"]], check=True)
            killed += [jobs[0]["job_id"], epochs]
        time.sleep(0.1)


def _retrain_interrupted(there, cfg, arch, interrupt) -> tuple[dict, list]:
    """Retrain ``arch`` on Slurm while ``interrupt(run, final_dir, seen)`` (a watcher thread) interrupts it
    once it trains; the result, and what the watcher recorded in ``seen``."""
    seen: list = []
    watcher = threading.Thread(target=interrupt, args=(there, there.path / "final", seen), daemon=True)
    watcher.start()
    result = retrain(there, _on_slurm(cfg), round_space(there, cfg, 0), arch, seeds=1)
    watcher.join(timeout=5)
    return result, seen


@pytest.mark.slow
def test_slurm_scancel_of_a_running_training_resumes_it_and_loses_nothing(slurm_up, searched, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_jobs, "GONE_GRACE_S", 2.0)  # a local file system: the result file has no lag to wait for
    run, cfg = searched
    cfg = dataclasses.replace(cfg, retrain=dataclasses.replace(cfg.retrain, epochs=12))
    arch = round_space(run, cfg, 0).parse(str(read_csv(run.round_dir(0) / layout.CANDIDATES)["arch"].iloc[0]))
    here, there = _copy(run, tmp_path / "local"), _copy(run, tmp_path / "slurm")
    remote, killed = _retrain_interrupted(there, cfg, arch, _scancel_when_training)
    assert killed, "the training ended before it could be cancelled"
    (job,) = _jobs(there)
    job_id, saved = killed
    assert job["state"] == "done" and job["attempt"] == 2 and job["earlier"] == [job_id]
    assert 1 <= saved < 12, f"cancelled after {saved} epochs: too late to test resuming"
    resumed = (slurm.group_dir(there, f"retrain-{remote['key']}") / job["log_err"]).read_text()
    assert "Restoring states from the checkpoint" in resumed, resumed[-2000:]  # not from scratch
    curve = read_csv(there.final_dir(remote["key"]) / layout.TRAIN_METRICS)
    assert list(curve["epoch"]) == list(range(1, 13)), "every epoch once: none lost, none twice"
    assert len(read_csv(there.final_dir(remote["key"]) / layout.SEEDS)) == 1, "the seed recorded once"
    assert remote["epochs_trained"] == [12] and (there.final_dir(remote["key"]) / layout.WEIGHTS).exists()
    local = retrain(here, cfg, round_space(here, cfg, 0), arch, seeds=1)
    ours = read_csv(here.final_dir(local["key"]) / layout.TRAIN_METRICS)
    cols = ["train_loss", "val_acc", "val_loss"]  # the epochs before the cancel are the uninterrupted training's
    assert curve[cols].iloc[:saved].values.tolist() == ours[cols].iloc[:saved].values.tolist()


def test_slurm_cancel_from_the_app_stops_the_spotcheck_and_keeps_what_finished(slurm_up, searched, tmp_path):
    run, cfg = searched
    there = _copy(run, tmp_path / "slurm")
    cancelled: list = []

    def cancel_first_running() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not cancelled:
            jobs = [j for j in _jobs(there) if j["state"] == "running"]
            if jobs:
                slurm.cancel(there, jobs[0]["job_id"])
                cancelled.append(jobs[0]["job_id"])
            time.sleep(0.1)

    t = threading.Thread(target=cancel_first_running, daemon=True)
    t.start()
    with pytest.raises(JobStopped):
        spotcheck.spotcheck(there, _on_slurm(cfg), 2, m=1, seeds=1)
    t.join(timeout=5)
    states = {j["job_id"]: j["state"] for j in _jobs(there)}
    assert states[cancelled[0]] == "cancelled" and "running" not in states.values() and "pending" not in states.values()
    assert read_json(there.round_dir(0) / layout.SPOTCHECK_SUMMARY)["state"] == "stopped"
    deadline = time.time() + 60  # cancelled jobs leave the queue once Slurm has ended them
    while slurm.queue_states(list(states)) and time.time() < deadline:
        time.sleep(0.5)
    assert not slurm.queue_states(list(states)), "no job of the stopped spot check is left in the queue"
    finished = len(read_csv(there.round_dir(0) / layout.SPOTCHECK_RUNS))
    assert finished == sum(s == "done" for s in states.values())  # what finished before the cancel is kept ...
    again = spotcheck.spotcheck(there, cfg, 2, m=1, seeds=1)  # ... and the next spot check (here) reuses it
    assert again["state"] == "done" and again["reused"] == finished and again["trained_now"] == 3 - finished


def _panel(path: str) -> None:
    from nasnav.store.run_dir import RunDir
    from nasnav.ui import cluster

    cluster.remote_jobs(RunDir(path))


def test_slurm_jobs_panel_shows_state_id_and_log_tail_and_cancels_a_live_job(tmp_path):
    from streamlit.testing.v1 import AppTest

    group = tmp_path / layout.CLUSTER_DIR / "spotcheck-r000"
    write_json(group / layout.CLUSTER_JOBS, [
        {"name": "conv3x3/skip seed 0", "job_id": "981234_0", "state": "done", "attempt": 1,
         "log_out": "981234_0_0_log.out", "log_err": "981234_0_0_log.err"},
        {"name": "skip/skip seed 0", "job_id": "981234_1", "state": "running", "slurm_state": "RUNNING", "attempt": 2,
         "log_out": "981234_1_0_log.out", "log_err": "../../config.yaml",  # a log name outside the folder: not read
         "updated": time.time() + 3600}])  # its submitter watches it (for the length of this test)
    (group / "981234_1_0_log.out").write_text("epoch 3 of 8\n**not markdown**\n")
    (tmp_path / "config.yaml").write_text("secret: never shown\n")
    at = AppTest.from_function(_panel, args=(str(tmp_path),)).run()
    assert not at.exception
    assert "1 pending or running of 2" in at.expander[0].label
    table = at.dataframe[0].value
    assert list(table["Slurm id"]) == ["981234_0", "981234_1"] and "▶ running" in list(table["state"])
    assert at.selectbox(key="cl_job").value == "981234_1"  # the live job first
    assert "epoch 3 of 8" in at.code[0].value and "never shown" not in at.code[0].value
    at.button(key="cl_cancel").click().run()
    assert not at.exception
    assert slurm.cancelled(tmp_path / layout.CLUSTER_DIR, "981234_1"), "the mark that stops its submitter"
    assert not slurm.cancelled(tmp_path / layout.CLUSTER_DIR, "981234_0")


@pytest.mark.slow
def test_slurm_headless_run_submits_the_supernet_and_the_retrain(slurm_up, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "1")  # as in an sbatch allocation of one task: nasnav run is allowed there
    code = main(["run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(tmp_path / "run"), "--set", *SETS,
                 "retrain.epochs=1", "trainer.devices=2", "trainer.strategy=ddp", "cluster.backend=slurm"])
    assert code == 0
    run = RunDir(tmp_path / "run")
    assert run.read_status()["state"] == "done"
    jobs = _jobs(run)
    assert sorted(j["group"].split("-")[0] for j in jobs) == ["retrain", "supernet"]
    assert {j["state"] for j in jobs} == {"done"}
    (final,) = run.finals()
    assert read_json(run.final_dir(final) / "metrics.json")["epochs_trained"] == [1]


def test_slurm_readme_example_config_is_valid():
    """The README's complete example of a cluster config validates (over the tiny preset's space)."""
    import re

    import yaml

    from nasnav.config import config_from_dict
    from nasnav.store.io import read_yaml

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Running on a Slurm cluster"):]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    cfg = config_from_dict({**read_yaml(REPO / "configs" / "tiny.yaml"), **example}, "README.md")
    assert cfg.cluster.backend == "slurm" and cfg.cluster.sbatch and cfg.trainer.num_nodes == 2


@pytest.mark.slow
def test_slurm_spotcheck_benchmark_quick(slurm_up, tmp_path):
    """bench/slurm_spotcheck.py end to end on the tiny preset, recording into a temporary results folder."""
    import json
    import sys

    results = tmp_path / "results"
    env = {**os.environ, "NASNAV_BENCH_RESULTS": str(results), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "slurm_spotcheck.py"), "--preset", "tiny", "--quick"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (record,) = [json.loads(line) for line in (results / "slurm_spotcheck.jsonl").read_text().splitlines()]
    m = record["metrics"]
    assert m["same_results"] is True and m["trainings"] == 2 and m["slurm_seconds"] > 0
    assert record["group"] == "tiny (quick)"


def _requeue_when_training(run: RunDir, ckpt_root: Path, requeued: list) -> None:
    """Pre-empt the training as Slurm does with PreemptMode=REQUEUE: kill it and queue the same job again
    (released at once: Slurm would hold a requeued job back for a while)."""
    deadline = time.time() + 240
    while time.time() < deadline and not requeued:
        jobs = [j for j in _jobs(run) if j["state"] == "running"]
        if jobs and any(ckpt_root.rglob(layout.LAST_CKPT)):
            subprocess.run(["scontrol", "requeue", jobs[0]["job_id"]], check=True)
            requeued.append(jobs[0]["job_id"])
            for _ in range(50):
                if subprocess.run(["scontrol", "update", f"JobId={jobs[0]['job_id']}", "StartTime=now"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
        time.sleep(0.1)


@pytest.mark.slow
def test_slurm_preempted_training_requeued_by_slurm_resumes_as_the_same_job(slurm_up, searched, tmp_path):
    run, cfg = searched
    cfg = dataclasses.replace(cfg, retrain=dataclasses.replace(cfg.retrain, epochs=12))
    there = _copy(run, tmp_path / "slurm")
    arch = round_space(there, cfg, 0).parse(str(read_csv(there.round_dir(0) / layout.CANDIDATES)["arch"].iloc[1]))
    m, requeued = _retrain_interrupted(there, cfg, arch, _requeue_when_training)
    assert requeued, "the training ended before it could be pre-empted"
    (job,) = _jobs(there)
    assert job["job_id"] == requeued[0] and job["attempt"] == 1 and job["state"] == "done", job  # not resubmitted
    log_text = (slurm.group_dir(there, f"retrain-{m['key']}") / job["log_err"]).read_text()
    assert "Restoring states from the checkpoint" in log_text, log_text[-2000:]
    assert list(read_csv(there.final_dir(m["key"]) / layout.TRAIN_METRICS)["epoch"]) == list(range(1, 13))


def _sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def test_slurm_jobs_whose_submitter_died_get_their_state_from_slurm(slurm_up, tmp_path):
    """A record of live jobs that nobody rewrites (the submitting process died) shows what Slurm says now, marked
    unwatched, in the app's panel too; a record still being rewritten is trusted as it is."""
    from streamlit.testing.v1 import AppTest

    logs = f"--output={tmp_path}/slurm-%j.out"
    quick = _sbatch("--job-name=nasnav-test-orphan", logs, "--wrap", "true")
    array = ""
    try:
        deadline = time.time() + 120
        while slurm.short_state(slurm.ended_states([quick]).get(quick)) != "done" and time.time() < deadline:
            time.sleep(1)
        array = _sbatch("--array=0-1", "--job-name=nasnav-test-orphan", logs, "--wrap", "sleep 120")
        old, fresh = time.time() - 3600, time.time() + 3600
        write_json(tmp_path / layout.CLUSTER_DIR / "spotcheck-r000" / layout.CLUSTER_JOBS, [
            {"name": "a", "job_id": f"{array}_0", "state": "pending", "attempt": 1, "updated": old},
            {"name": "b", "job_id": f"{array}_1", "state": "failed", "attempt": 1, "updated": old},  # ended: as recorded
            {"name": "c", "job_id": quick, "state": "running", "attempt": 1, "updated": old},
            {"name": "d", "job_id": "987654321", "state": "running", "attempt": 1, "updated": old},
            {"name": "e", "job_id": f"{array}_9", "state": "running", "attempt": 1, "updated": fresh}])
        run = RunDir(tmp_path)
        jobs = {j["name"]: j for j in slurm.current_jobs(run)}
        assert jobs["a"]["state"] in ("pending", "running") and jobs["a"]["unwatched"]
        assert jobs["a"]["slurm_state"] in ("PENDING", "RUNNING")
        assert jobs["b"]["state"] == "failed" and "unwatched" not in jobs["b"]
        assert jobs["c"]["state"] == "done" and jobs["c"]["slurm_state"] == "COMPLETED" and jobs["c"]["unwatched"]
        assert jobs["d"]["state"] == "gone" and jobs["d"]["unwatched"]  # Slurm does not know it
        assert jobs["e"]["state"] == "running" and "unwatched" not in jobs["e"]  # its submitter is watching
        assert [j["state"] for j in slurm.read_jobs(run)][:4] == ["pending", "failed", "running", "running"]  # untouched

        at = AppTest.from_function(_panel, args=(str(tmp_path),)).run()
        assert not at.exception
        assert "2 pending or running of 5" in at.expander[0].label
        assert "3 of these jobs have nobody watching" in at.warning[0].value
        assert "? gone" in list(at.dataframe[0].value["state"])
        at.selectbox(key="cl_job").set_value(f"{array}_0").run()
        at.button(key="cl_cancel").click().run()  # an orphan can be cancelled from the app
        assert not at.exception
        deadline = time.time() + 60
        while slurm.queue_states([f"{array}_0"]) and time.time() < deadline:
            time.sleep(1)
        assert not slurm.queue_states([f"{array}_0"])
    finally:
        slurm.scancel([i for i in (array, quick) if i])
