"""Jobs of a run: the one-job lock, starting ``python -m nasnav ...`` detached, stopping it.

One job per run, across processes. Every decision about ``job.lock`` (is it held? take it) is made
under an ``flock`` on RUN/.job.lock.guard, so check-then-write cannot race. ``start_job`` reserves
the lock for the child's pid before anyone else can look; the child's own ``JobLock.acquire`` then
finds its pid there and takes it over. While held, a thread touches RUN/heartbeat and the lock file,
which is how ``RunDir.read_status`` tells a slow job from a hung or vanished one.

The run folder may be on a file system several machines share: a lock names its holder's host, pid and
pid start time. On this host the holder lives while that process does; a lock of another host is never
taken over while its heartbeat is fresh (stale means no beat for ``STALE_SECONDS``, not a pid absent
here), and ``stop_job`` signals only a process of this host whose pid and start time match the record.

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
from nasnav.store.process import holder_alive, identity, is_local, pid_alive, pid_start
from nasnav.store.run_dir import STALE_SECONDS, RunDir
from nasnav.store.state_lock import state_lock

REPO_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the nasnav package (site-packages, installed)
HEARTBEAT_SECONDS = 15.0


class JobRunning(InvalidInput):
    """A job was asked to start on a run that already has a live one."""


@contextlib.contextmanager
def _guard(run: RunDir) -> Iterator[None]:
    """Serialize lock decisions across processes and threads (each call opens its own file). Taken inside
    the run's state lock (``nasnav.store.state_lock``) where both are held, so that a job cannot start
    while a decision is being written, and never the other way round (no deadlock)."""
    run.path.mkdir(parents=True, exist_ok=True)
    with state_lock(run), open(run.path / ".job.lock.guard", "a") as f:
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


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _live(run: RunDir, holder: dict | None, lane: str | None = None) -> bool:
    """Whether the lock's holder lives: its process on this host, its heartbeat (the lock file's and, for
    the main job, RUN/heartbeat's time) on another."""
    if not holder:
        return False
    beats = [_mtime(_lock_path(run, lane)), None if lane else _mtime(run.heartbeat_path), holder.get("time")]
    beats = [b for b in beats if isinstance(b, (int, float))]
    return holder_alive(holder, max(beats) if beats else None, STALE_SECONDS)


def _mine(holder: dict | None, pid: int) -> bool:
    """Whether a lock names process ``pid`` of this host (the same pid on another host is another process)."""
    return bool(holder) and holder.get("pid") == pid and is_local(holder)


def _where(live: dict) -> str:
    return f"pid {live.get('pid')}" + ("" if is_local(live) else f" on host {live.get('host')}")


def _refusal(run: RunDir, live: dict) -> JobRunning:
    return JobRunning(
        f"run {run.path} already has a running {live.get('job') or 'job'} job "
        f"({_where(live)}); stop it first or wait"
    )


_DEPTH: dict[str, int] = {}  # re-entrant holds in this process, by lock path
_BEATS: dict[str, tuple[threading.Event, threading.Thread]] = {}


def _beat(paths: tuple[Path, ...], stop: threading.Event, every: float) -> None:
    """Touch the heartbeat (created if missing) and the lock file (only while it exists: utime)."""
    heartbeat, *locks = paths
    while not stop.wait(every):
        with contextlib.suppress(OSError):
            if heartbeat is not None:
                heartbeat.touch()
        for lock in locks:
            with contextlib.suppress(OSError):
                os.utime(lock)


class JobLock:
    """One job per run, across processes and hosts: RUN/job.lock names the holder's host, pid and start time.

    A lock of this host whose pid is dead (or reused by another process) is stale and taken over; one of
    another host, when its heartbeat is older than ``STALE_SECONDS``. Re-entrant
    within one process (nested holds release at the outermost). Use as ``with JobLock(run, "search"):``.
    """

    def __init__(self, run: RunDir, job: str, heartbeat: float | None = HEARTBEAT_SECONDS, lane: str | None = None):
        self.run, self.job, self.held, self.lane = run, job, False, lane
        self.heartbeat = heartbeat if lane is None else None  # a side job reports in its own files
        self.beat = heartbeat or HEARTBEAT_SECONDS  # the lock file is touched this often (side jobs too)
        self.path = _lock_path(run, lane)
        self._key = str(self.path.absolute())

    def acquire(self) -> JobLock:
        """Take the lock or raise JobRunning naming the live holder."""
        me = os.getpid()
        with _guard(self.run):
            holder = _holder(self.run, self.lane)
            if holder and not _mine(holder, me) and _live(self.run, holder, self.lane):
                raise _refusal(self.run, holder)
            if not (_mine(holder, me) and _DEPTH.get(self._key)):
                # free, stale, or reserved for us by start_job: (re)write it as ours
                write_json(self.path, {**identity(me), "job": self.job, "time": time.time()})
                _DEPTH[self._key] = 0
            _DEPTH[self._key] += 1
            first = _DEPTH[self._key] == 1
        self.held = True
        if first:
            heartbeat = self.run.heartbeat_path if self.heartbeat else None
            if heartbeat is not None:  # the first beat before acquire returns, naming whose beat it is
                write_json(heartbeat, {**identity(me), "job": self.job})
            stop = threading.Event()
            thread = threading.Thread(
                target=_beat,
                args=((heartbeat, self.path), stop, self.beat),
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
            if holder is None or _mine(holder, os.getpid()):
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


def _who(record: dict) -> dict:
    return {k: record.get(k) for k in ("pid", "job", "host", "pid_start")}


def running_job(run: RunDir, lane: str | None = None) -> dict | None:
    """The run's live job as {"pid", "job", "host", "pid_start"}: the lock's live holder, or a 'running'
    status whose process is alive (and is not this process); None when there is none. With ``lane``, the
    live side job of that kind (a side job never counts as the run's job)."""
    holder = _holder(run, lane)
    if _live(run, holder, lane):
        return _who(holder)
    if lane is not None:
        return None
    try:
        status = read_json(run.status_path, default={}) or {}
    except ValueError:
        return None
    if status.get("state") != "running" or _mine(status, os.getpid()):
        return None
    beats = [b for b in (status.get("heartbeat"), status.get("updated"), _mtime(run.heartbeat_path))
             if isinstance(b, (int, float))]
    return _who(status) if holder_alive(status, max(beats) if beats else None, STALE_SECONDS) else None


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
                **identity(proc.pid),
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


def _prove(run: RunDir, live: dict) -> tuple[int, int | None]:
    """The pid and start time of the run's job, once shown to be that process: of this host, and (where
    /proc tells start times) started when the record says. InvalidInput otherwise: nothing is signalled."""
    pid = int(live["pid"])
    if not is_local(live):
        raise InvalidInput(f"run {run.path}: its {live.get('job') or 'job'} job runs on host {live.get('host')} "
                           f"(pid {pid}); stop it there (this host, {identity()['host']}, cannot signal it)")
    if pid == os.getpid():
        raise InvalidInput(f"run {run.path}: its job runs in this process (pid {pid}); it cannot stop itself")
    start, recorded = pid_start(pid), live.get("pid_start")
    if start is not None and recorded != start:
        raise InvalidInput(f"run {run.path}: pid {pid} is not the {live.get('job') or 'job'} job the run records "
                           f"(its start time is {start}, the record says {recorded}); nothing was signalled")
    return pid, start


def stop_job(run: RunDir, timeout: float = 10.0, lane: str | None = None) -> bool:
    """SIGTERM the run's job (its whole process group when it leads one, e.g. DDP workers), SIGKILL
    after ``timeout`` s; mark the status 'stopped' unless the job wrote its own final state.
    ``lane``: the side job of that kind instead (status.json untouched). Returns True if a job was
    stopped, False if there was none. Only a process proven to be the job is signalled (``_prove``):
    a job of another host, or a pid whose start time differs from the record's, is an InvalidInput."""
    live = running_job(run, lane)
    if not live:
        return False
    pid, start = _prove(run, live)
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    if pgid != pid:
        pgid = None  # signal a group only when the job leads it (start_job's jobs do): never a shell's or ours
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
        if _mine(_holder(run, lane), pid):
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
