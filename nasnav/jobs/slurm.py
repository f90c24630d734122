"""Slurm as nasnav sees it: the state of its jobs, their log tails, cancelling one. No torch, no submitit
(the app imports this module).

States come from ``squeue`` (queued and running jobs) and ``scontrol show job`` (jobs that ended less
than MinJobAge ago), not from ``sacct``: that needs an accounting database, which a small cluster (and
the single-machine Slurm of the tests) may not run. A job neither lists is gone; whether it finished is
then told by its result file (``workflow.remote``).

The records of a group of jobs (``RUN/cluster/<group>/jobs.json``) are written by the process that
submitted them; the app reads them and may cancel a job, which leaves a mark
(``RUN/cluster/cancelled/<id>``) so that the submitting process does not resubmit it but stops. A
submitter rewrites its record every few seconds while it watches; a record of live jobs left alone for
``WATCHED_S`` has nobody watching (its process died), and ``current_jobs`` asks Slurm instead.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import time
from pathlib import Path

from nasnav.errors import InvalidInput
from nasnav.store import layout
from nasnav.store.io import atomic_write_text, read_json
from nasnav.store.run_dir import RunDir

# Slurm's job states, as nasnav shows them
PENDING = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED")
RUNNING = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING")
KILLED = ("CANCELLED", "PREEMPTED", "NODE_FAIL", "TIMEOUT", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
          "REVOKED", "SPECIAL_EXIT")  # ended from outside the training: resubmitted, resuming
LIVE_STATES = ("pending", "running")
JOB_ID = re.compile(r"\d+(_\d+)?")  # a job, or one task of an array
WATCHED_S = 60.0  # a submitter rewrites its record every POLL_S (2 s) while it watches; this long without: it died


def available() -> bool:
    """Whether this machine can talk to Slurm (its client commands are on PATH)."""
    return all(shutil.which(c) for c in ("sbatch", "squeue", "scontrol", "scancel"))


def require() -> None:
    """InvalidInput unless Slurm's commands are here: ``cluster.backend: slurm`` needs a submit host."""
    if not available():
        raise InvalidInput("cluster.backend: slurm, but this machine has no Slurm client (sbatch, squeue, scontrol, "
                           "scancel not on PATH); run nasnav on a submit node of the cluster, or set cluster.backend: "
                           "local")


def short_state(slurm_state: str | None) -> str:
    """Slurm's state word as one of pending, running, done, failed, killed, gone."""
    s = (slurm_state or "").split()[0].rstrip("+") if slurm_state else ""
    if s in PENDING:
        return "pending"
    if s in RUNNING:
        return "running"
    if s == "COMPLETED":
        return "done"
    if s in KILLED:
        return "killed"
    return "failed" if s else "gone"


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


def queue_states(ids: list[str]) -> dict[str, str]:
    """Slurm state of each of ``ids`` that is still queued or running (array tasks one by one)."""
    if not ids:
        return {}
    out = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
    states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {i: states[i] for i in ids if i in states}


def ended_state(job_id: str) -> str | None:
    """The final Slurm state of a job that left the queue (COMPLETED, CANCELLED, ...), while the controller
    still remembers it (MinJobAge); None when it does not."""
    return ended_states([job_id]).get(job_id)


def ended_states(ids: list[str]) -> dict[str, str]:
    """``ended_state`` of several jobs, one ``scontrol`` call per job or array (its tasks come together)."""
    out: dict[str, str] = {}
    for master in dict.fromkeys(i.split("_")[0] for i in ids):
        for line in _run(["scontrol", "show", "job", "-o", master]).splitlines():
            f = dict(m.groups() for m in re.finditer(r"\b(JobId|ArrayJobId|ArrayTaskId|JobState)=(\S+)", line))
            if "JobState" in f:
                out[f"{f['ArrayJobId']}_{f['ArrayTaskId']}" if "ArrayTaskId" in f else f.get("JobId", "")] = f["JobState"]
    return {i: out[i] for i in ids if i in out}


def current_jobs(run: RunDir, now: float | None = None) -> list[dict]:
    """``read_jobs``, where a job recorded pending or running has nobody watching it any more (its record
    not rewritten for ``WATCHED_S``: the submitting process died) with the state Slurm gives now (``gone``
    when Slurm no longer knows it) and ``unwatched: True``: its result will not be collected."""
    jobs = read_jobs(run)
    now = time.time() if now is None else now

    def unwatched(j: dict) -> bool:
        try:
            return j.get("state") in LIVE_STATES and now - float(j.get("updated") or 0) > WATCHED_S
        except (TypeError, ValueError):
            return True
    orphans = {str(j.get("job_id")) for j in jobs if unwatched(j)}
    if not orphans:
        return jobs
    known = queue_states(sorted(orphans))
    known.update(ended_states(sorted(orphans - set(known))))
    return [{**j, "state": short_state(known.get(i)), "slurm_state": known.get(i, ""), "unwatched": True}
            if (i := str(j.get("job_id"))) in orphans else j for j in jobs]


def group_dir(run: RunDir, group: str) -> Path:
    return run.path / layout.CLUSTER_DIR / group


def read_jobs(run: RunDir) -> list[dict]:
    """Every remote job of the run, as last recorded (newest group first): ``group``, ``name``, ``job_id``,
    ``state`` (pending, running, done, failed, killed, cancelled), ``attempt``, ``log``."""
    root = run.path / layout.CLUSTER_DIR
    if not root.is_dir():
        return []
    groups = sorted((d for d in root.iterdir() if (d / layout.CLUSTER_JOBS).exists()),
                    key=lambda d: (d / layout.CLUSTER_JOBS).stat().st_mtime, reverse=True)
    out = []
    for d in groups:
        try:
            jobs = read_json(d / layout.CLUSTER_JOBS, default=[]) or []
        except ValueError:
            continue  # a damaged record shows nothing rather than failing the page
        out += [{**j, "group": d.name} for j in jobs if isinstance(j, dict)]
    return out


def log_tail(run: RunDir, job: dict, lines: int = 20) -> str:
    """The last lines of a job's output and errors (submitit's log files in its group's folder)."""
    text = []
    for suffix in ("out", "err"):
        name = job.get(f"log_{suffix}")
        path = group_dir(run, str(job.get("group", ""))) / str(name) if name else None
        if path is not None and path.resolve().parent == group_dir(run, str(job["group"])).resolve() and path.exists():
            text += path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text[-lines:])


def cancelled(cluster_dir: Path, job_id: str) -> bool:
    """Whether the app cancelled this job (the submitting process then stops instead of resubmitting);
    ``cluster_dir``: the run's RUN/cluster folder."""
    return (Path(cluster_dir) / layout.CLUSTER_CANCELLED / job_id).exists()


def cancel(run: RunDir, job_id: str) -> None:
    """Cancel one remote job of the run (scancel): the mark first, so its submitter stops rather than resubmits."""
    job_id = str(job_id)
    if not JOB_ID.fullmatch(job_id):
        raise InvalidInput(f"job id {job_id!r} is not a Slurm job id (digits, or digits_digits for an array task)")
    if job_id not in {str(j.get("job_id")) for j in read_jobs(run)}:
        raise InvalidInput(f"job {job_id} is not a job of run {run.path}; nothing cancelled")
    atomic_write_text(run.path / layout.CLUSTER_DIR / layout.CLUSTER_CANCELLED / job_id, "cancelled from the app\n")
    scancel([job_id])


def scancel(ids: list[str]) -> None:
    """Cancel jobs (those already gone are ignored)."""
    ids = [i for i in ids if JOB_ID.fullmatch(str(i))]
    if ids:
        _run(["scancel", *ids])
