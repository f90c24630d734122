"""Jobs of a run: the one-job lock, starting ``python -m nasnav ...`` detached, stopping it.

One job per run, across processes. Every decision about ``job.lock`` (is it held? take it) is made
under an ``flock`` on RUN/.job.lock.guard, so check-then-write cannot race. ``start_job`` reserves
the lock for the child's pid before anyone else can look; the child's own ``JobLock.acquire`` then
finds its pid there and takes it over. While held, a thread touches RUN/heartbeat, which is how
``RunDir.read_status`` tells a slow job from a hung or vanished one.

A **side job** runs beside the main one: a spot check only trains and writes its own files, so the
analyst keeps searching and deciding while it runs. It has its own lock (``lane``: ``layout.SIDE_LOCKS``,
one side job of each kind), no heartbeat and no status.json (it reports in its own files).

No torch here: the app imports this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from nasnav.errors import EXIT_INVALID, EXIT_OK, InvalidInput
from nasnav.store.io import read_json, write_json
from nasnav.store.process import pid_alive, pid_start
from nasnav.store.run_dir import RunDir

REPO_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the nasnav package (site-packages, installed)
HEARTBEAT_SECONDS = 15.0


class JobRunning(InvalidInput):
    """A job was asked to start on a run that already has a live one."""


@contextlib.contextmanager
def _guard(run: RunDir) -> Iterator[None]:
    """Serialize lock decisions across processes and threads (each call opens its own file)."""
    run.path.mkdir(parents=True, exist_ok=True)
    with open(run.path / ".job.lock.guard", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lock_path(run: RunDir, lane: str | None) -> Path:
    return run.lock_path if lane is None else run.side_lock_path(lane)


def _holder(run: RunDir, lane: str | None = None) -> dict | None:
    try:
        data = read_json(_lock_path(run, lane))
    except ValueError:
        return None  # unreadable lock: nobody can prove they hold it
    return data if isinstance(data, dict) else None


def _live(holder: dict | None) -> bool:
    return bool(holder) and pid_alive(holder.get("pid"), holder.get("pid_start"))


def _refusal(run: RunDir, live: dict) -> JobRunning:
    return JobRunning(
        f"run {run.path} already has a running {live.get('job') or 'job'} job "
        f"(pid {live.get('pid')}); stop it first or wait"
    )


_DEPTH: dict[str, int] = {}  # re-entrant holds in this process, by lock path
_BEATS: dict[str, tuple[threading.Event, threading.Thread]] = {}


def _beat(path: Path, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        with contextlib.suppress(OSError):
            path.touch()


class JobLock:
    """One job per run, across processes: RUN/job.lock names the holder's pid.

    A lock whose pid is dead (or reused by another process) is stale and taken over. Re-entrant
    within one process (nested holds release at the outermost). Use as ``with JobLock(run, "search"):``.
    """

    def __init__(self, run: RunDir, job: str, heartbeat: float | None = HEARTBEAT_SECONDS, lane: str | None = None):
        self.run, self.job, self.held, self.lane = run, job, False, lane
        self.heartbeat = heartbeat if lane is None else None  # a side job reports in its own files
        self.path = _lock_path(run, lane)
        self._key = str(self.path.absolute())

    def acquire(self) -> JobLock:
        """Take the lock or raise JobRunning naming the live holder."""
        me = os.getpid()
        with _guard(self.run):
            holder = _holder(self.run, self.lane)
            if holder and holder.get("pid") != me and _live(holder):
                raise _refusal(self.run, holder)
            if not (holder and holder.get("pid") == me and _DEPTH.get(self._key)):
                # free, stale, or reserved for us by start_job: (re)write it as ours
                write_json(self.path, {"pid": me, "pid_start": pid_start(me), "job": self.job, "time": time.time()})
                _DEPTH[self._key] = 0
            _DEPTH[self._key] += 1
            first = _DEPTH[self._key] == 1
        self.held = True
        if first and self.heartbeat:
            self.run.heartbeat_path.touch()  # the first beat before acquire returns
            stop = threading.Event()
            thread = threading.Thread(
                target=_beat,
                args=(self.run.heartbeat_path, stop, self.heartbeat),
                name=f"nasnav-heartbeat-{self.job}",
                daemon=True,
            )
            thread.start()
            _BEATS[self._key] = (stop, thread)
        return self

    def release(self) -> None:
        """Give the lock up (the file is removed when the outermost hold ends and it is still ours)."""
        if not self.held:
            return
        self.held = False
        with _guard(self.run):
            _DEPTH[self._key] = _DEPTH.get(self._key, 1) - 1
            if _DEPTH[self._key] > 0:
                return
            _DEPTH.pop(self._key, None)
            holder = _holder(self.run, self.lane)
            if holder is None or holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        stop, thread = _BEATS.pop(self._key, (None, None))
        if stop is not None:
            stop.set()
            thread.join(timeout=1.0)

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_job(run: RunDir, lane: str | None = None) -> dict | None:
    """The run's live job as {"pid", "job"}: the lock's live holder, or a 'running' status whose
    process is alive (and is not this process); None when there is none. With ``lane``, the live side
    job of that kind (a side job never counts as the run's job)."""
    holder = _holder(run, lane)
    if _live(holder):
        return {"pid": holder["pid"], "job": holder.get("job")}
    if lane is not None:
        return None
    try:
        status = read_json(run.status_path, default={}) or {}
    except ValueError:
        return None
    pid = status.get("pid")
    if status.get("state") == "running" and pid != os.getpid() and pid_alive(pid, status.get("pid_start")):
        return {"pid": pid, "job": status.get("job")}
    return None


_CHILDREN: dict[int, subprocess.Popen] = {}  # kept so they are not reported as leaked; reaped by pid_alive


def start_job(run: RunDir, job: str, args: list[str], env: dict | None = None, module: str = "nasnav",
              lane: str | None = None) -> int:
    """Start ``python -m <module> <args>`` detached (own session), cwd the repo root, output
    appended to logs/<job>.log; reserve the lock for it, mark the status running; return its pid.
    With ``lane``, a side job: its own lock, and status.json is left to the run's main job.

    Raises JobRunning if the run already has a live job (in that lane).
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", job or ""):
        raise InvalidInput(f"job name {job!r} is not valid; use letters, digits, '_', '-' or '.'")
    for pid in [p for p, proc in _CHILDREN.items() if proc.poll() is not None]:
        _CHILDREN.pop(pid)
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    run.logs_dir.mkdir(parents=True, exist_ok=True)
    with _guard(run):
        live = running_job(run, lane)
        if live:
            raise _refusal(run, live)
        with open(run.log_path(job), "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} python -m {module} {' '.join(args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *map(str, args)],
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        write_json(
            _lock_path(run, lane),
            {
                "pid": proc.pid,
                "pid_start": pid_start(proc.pid),
                "job": job,
                "time": time.time(),
                "reserved_by": os.getpid(),
            },
        )
        if lane is not None:
            return proc.pid
        run.write_status(
            state="running",
            job=job,
            pid=proc.pid,
            started=time.time(),
            progress=0.0,
            message=f"starting {job}",
            error=None,
            eta_seconds=None,
        )
    return proc.pid


def _wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, start):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal(pid: int, pgid: int | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if pgid is not None:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)


def stop_job(run: RunDir, timeout: float = 10.0, lane: str | None = None) -> bool:
    """SIGTERM the run's job (its whole process group when it leads one, e.g. DDP workers), SIGKILL
    after ``timeout`` s; mark the status 'stopped' unless the job wrote its own final state.
    ``lane``: the side job of that kind instead (status.json untouched). Returns True if a job was
    stopped, False if there was none."""
    live = running_job(run, lane)
    if not live:
        return False
    pid = int(live["pid"])
    if pid == os.getpid():
        raise InvalidInput(f"run {run.path}: its job runs in this process (pid {pid}); it cannot stop itself")
    start = pid_start(pid)
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    if pgid == os.getpgrp():
        pgid = None  # never signal our own group (a job started from this process's terminal)
    try:
        before = (read_json(run.status_path, default={}) or {}).get("updated")
    except ValueError:
        before = None
    try:
        _signal(pid, pgid, signal.SIGTERM)
        if not _wait_gone(pid, start, timeout):
            _signal(pid, pgid, signal.SIGKILL)
            _wait_gone(pid, start, 5.0)
        if pgid is not None:
            _signal(pid, pgid, signal.SIGKILL)  # stragglers of the group (workers the leader left behind)
    except PermissionError:
        raise InvalidInput(f"run {run.path}: not allowed to stop its job (pid {pid}, another user's process)") from None
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.poll()
    with _guard(run):
        try:
            status = read_json(run.status_path, default={}) or {}
        except ValueError:
            status = {}
        if lane is None and (status.get("state") == "running" or status.get("updated") == before):
            run.write_status(
                state="stopped",
                eta_seconds=None,
                message=f"{live.get('job') or 'job'} stopped; start it again to resume",
            )
        holder = _holder(run, lane)
        if holder is not None and holder.get("pid") == pid:
            with contextlib.suppress(FileNotFoundError):
                _lock_path(run, lane).unlink()
    return True


def run_subcommand(argv: list[str]) -> None:
    """Run a stage in its own process (needed when Lightning starts several processes: DDP
    re-launches the command line, which must then be that stage alone)."""
    code = subprocess.call([sys.executable, "-m", "nasnav", *argv])
    if code == EXIT_INVALID:
        raise InvalidInput(f"`nasnav {' '.join(argv)}` reported invalid input (see above)")
    if code != EXIT_OK:
        raise RuntimeError(f"`nasnav {' '.join(argv)}` failed with exit code {code}")
