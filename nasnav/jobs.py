"""Background jobs of a run: the one-job lock, starting ``python -m nasnav ...``, stopping it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nasnav.runs import RunDir, pid_alive, read_json

REPO_ROOT = Path(__file__).resolve().parent.parent


class JobRunning(ValueError):
    """A second job was started on a run that already has one."""


class JobLock:
    """One job per run, across processes: ``job.lock`` holds the owner's pid."""

    def __init__(self, run: RunDir, job: str):
        self.run, self.job, self.held = run, job, False

    def _holder(self) -> dict | None:
        try:
            data = read_json(self.run.lock_path, default=None)
        except ValueError:
            return None  # a half-written lock from a killed process: stale
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        path = self.run.lock_path
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "job": self.job, "time": time.time()}
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and holder.get("pid") == os.getpid():
                    break  # re-entrant within one process
                if holder and pid_alive(holder.get("pid")):
                    raise JobRunning(
                        f"run {self.run.path} already has a running {holder.get('job', 'job')} job "
                        f"(pid {holder.get('pid')}); stop it first or wait for it to finish"
                    ) from None
                try:
                    path.unlink()  # stale: its owner is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            break
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        holder = self._holder()
        if holder is None or holder.get("pid") == os.getpid():
            try:
                self.run.lock_path.unlink()
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def running_job(run: RunDir) -> dict | None:
    """The live job of a run ({"pid", "job"}), or None."""
    holder = JobLock(run, "")._holder()
    if holder and pid_alive(holder.get("pid")):
        return holder
    status = run.read_status()
    if status["state"] == "running" and pid_alive(status.get("pid")):
        return {"pid": status["pid"], "job": status.get("job")}
    return None


def start_job(run: RunDir, job: str, args: list[str], env: dict | None = None, module: str = "nasnav") -> int:
    """Start ``python -m <module> <args>`` detached, output to logs/<job>.log; returns its pid."""
    live = running_job(run)
    if live:
        raise JobRunning(f"run {run.path} already has a running {live.get('job') or 'job'} job "
                         f"(pid {live['pid']}); stop it first or wait for it to finish")
    run.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(run.log_path(job), "ab")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {module} {' '.join(args)}\n".encode())
    log.flush()
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=full_env)
    log.close()
    run.write_status(state="running", job=job, pid=proc.pid, started=time.time(), progress=0.0,
                     message=f"starting {job}", error=None, eta_seconds=None)
    _CHILDREN[proc.pid] = proc
    return proc.pid


_CHILDREN: dict[int, subprocess.Popen] = {}  # reaped by pid_alive / stop_job


def stop_job(run: RunDir, timeout: float = 10.0) -> bool:
    """SIGTERM the job's process group, SIGKILL after ``timeout``; True if a job was stopped."""
    live = running_job(run)
    if not live:
        return False
    pid = int(live["pid"])
    _signal_group(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        deadline = time.time() + 5
        while time.time() < deadline and pid_alive(pid):
            time.sleep(0.1)
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.poll()
    status = read_json(run.status_path, default={}) or {}
    if status.get("state") == "running":
        run.write_status(state="stopped", message=f"{live.get('job') or 'job'} stopped")
    if run.lock_path.exists() and not pid_alive(pid):
        holder = JobLock(run, "")._holder()
        if holder is None or holder.get("pid") == pid:
            try:
                run.lock_path.unlink()
            except FileNotFoundError:
                pass
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

