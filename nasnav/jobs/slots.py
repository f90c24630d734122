"""Limits on concurrent jobs, per user and in all, and the queue of jobs waiting for a free slot.

A job belongs to the owner of its run (``store.owner``; a run without one counts as ``local``, the
single user of an app without logins). ``submit`` starts a job when its owner and the server both
have a free slot, else queues it: one file per request in ``<runs root>/.jobs/`` (the folder above
the run), named by the time it was queued, so the queue survives a server restart. ``pump`` starts
queued requests, oldest first, as slots free up (a request whose owner is at their limit waits
without holding up other users'); the app calls it from a thread every few seconds and from every
open page's poll. Every decision is made under an ``flock`` on the queue folder, so two sessions
cannot both take the last slot. No torch, no Streamlit.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from nasnav.errors import InvalidInput
from nasnav.jobs.control import JobRunning, running_job, start_job
from nasnav.store import layout
from nasnav.store.io import read_json, write_json
from nasnav.store.owner import read_owner
from nasnav.store.run_dir import RunDir

log = logging.getLogger("nasnav.jobs")
LOCAL = "local"  # whose jobs the runs without an owner are (an app without logins has one user)
LANES = (None, *layout.SIDE_LOCKS)  # the run's main job and each kind of side job


def _count(key: str, value: object) -> int:
    """A limit: a whole number of at least 1 (a string of digits too: from the environment)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{key}: {value!r} is not a whole number of at least 1")
    return value


@dataclass(frozen=True)
class Limits:
    per_user: int = 2  # jobs one user (the owner of the runs) may run at once
    total: int = 4  # jobs the server runs at once

    def __post_init__(self) -> None:
        _count("jobs.per_user", self.per_user)
        _count("jobs.total", self.total)

    @classmethod
    def from_settings(cls, settings: Mapping, where: str = "settings") -> Limits:
        """From a settings table (``jobs_per_user``, ``jobs_total``); a missing key keeps its default."""
        return cls(per_user=_count(f"{where}: jobs_per_user", settings.get("jobs_per_user", cls.per_user)),
                   total=_count(f"{where}: jobs_total", settings.get("jobs_total", cls.total)))


def owner_of(run: RunDir) -> str:
    o = read_owner(run)
    return o.owner if o else LOCAL


def _queue_dir(root: Path) -> Path:
    return Path(root) / layout.JOB_QUEUE


@contextlib.contextmanager
def _guard(root: Path) -> Iterator[None]:
    folder = _queue_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def live_jobs(root: Path) -> list[dict]:
    """Every live job of the runs under ``root``: {run, job, lane, user}."""
    out = []
    for p in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        run = RunDir(p)
        if not p.is_dir() or not run.exists():
            continue
        for lane in LANES:
            live = running_job(run, lane)
            if live:
                out.append({"run": run.name, "job": live.get("job"), "lane": lane, "user": owner_of(run)})
    return out


def queued(root: Path) -> list[dict]:
    """The waiting requests, oldest first: {run (path), job, args, lane, user, time, file}."""
    out = []
    for f in sorted(_queue_dir(root).glob("*.json")):
        try:
            data = read_json(f, default=None)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("run") and data.get("job") and isinstance(data.get("args"), list):
            out.append({**data, "file": f})
    return out


def _same(req: dict, run: RunDir, lane: str | None) -> bool:
    return Path(req["run"]) == run.path.absolute() and req.get("lane") == lane


def _pump(root: Path, limits: Limits, start: Callable[..., int] | None = None) -> list[dict]:
    """Start what fits, oldest first (under the guard), with ``start`` (``control.start_job``); returns
    the started requests."""
    start = start or start_job
    waiting = queued(root)
    if not waiting:
        return []
    live = live_jobs(root)
    per_user = Counter(j["user"] for j in live)
    started = []
    for req in waiting:
        if len(live) + len(started) >= limits.total:
            break
        run = RunDir(req["run"])
        if not run.exists():  # deleted while it waited
            req["file"].unlink(missing_ok=True)
            continue
        user = owner_of(run)
        if per_user[user] >= limits.per_user or running_job(run, req.get("lane")):
            continue  # its owner is at their limit, or the run is busy (a job started elsewhere): it waits
        try:
            lane = req.get("lane")
            start(run, req["job"], req["args"], **({"lane": lane} if lane else {}))
        except JobRunning:
            continue
        except (InvalidInput, OSError) as e:  # it can never start: say so on the run, drop it
            log.warning("queued %s job of %s could not start: %s", req["job"], run.path, e)
            if req.get("lane") is None:
                run.write_status(state="failed", job=req["job"], error=str(e), message=f"queued {req['job']} could not start")
        else:
            per_user[user] += 1
            started.append(req)
        req["file"].unlink(missing_ok=True)  # after the start: a crash before this finds the job live and skips it
    return started


def submit(run: RunDir, job: str, args: list[str], limits: Limits, lane: str | None = None,
           start: Callable[..., int] | None = None) -> int | None:
    """Start ``job`` on ``run`` now if there is a free slot (returns None), else queue it (returns its
    1-based place in the queue). Raises JobRunning if the run already has that job live or queued.
    ``start``: what starts a job (default ``control.start_job``; the app's retrain queue passes its own)."""
    root = run.path.absolute().parent
    with _guard(root):
        live = running_job(run, lane)
        if live:
            raise JobRunning(f"run {run.name} already has a running {live.get('job') or 'job'} job; stop it first or wait")
        if any(_same(r, run, lane) for r in queued(root)):
            raise JobRunning(f"run {run.name} already has a {job} job waiting in the queue; stop it to take it out")
        name = f"{time.time_ns():020d}-{run.name}-{lane or 'main'}.json"
        write_json(_queue_dir(root) / name, {"run": str(run.path.absolute()), "job": job, "args": [str(a) for a in args],
                                             "lane": lane, "user": owner_of(run), "time": time.time()})
        _pump(root, limits, start)
        return _position(root, run, lane)


def _position(root: Path, run: RunDir, lane: str | None) -> int | None:
    return next((i for i, r in enumerate(queued(root), 1) if _same(r, run, lane)), None)


def position(run: RunDir, lane: str | None = None) -> tuple[int, int] | None:
    """(place, length) of the run's waiting job in the queue, None when it has none waiting."""
    root = run.path.absolute().parent
    waiting = queued(root)
    place = next((i for i, r in enumerate(waiting, 1) if _same(r, run, lane)), None)
    return (place, len(waiting)) if place else None


def cancel(run: RunDir, lane: str | None = None) -> bool:
    """Take the run's waiting job (in ``lane``) out of the queue; whether there was one."""
    root = run.path.absolute().parent
    with _guard(root):
        mine = [r for r in queued(root) if _same(r, run, lane)]
        for r in mine:
            r["file"].unlink(missing_ok=True)
    return bool(mine)


def pump(root: Path, limits: Limits) -> list[dict]:
    """Start queued jobs that now have a slot; returns them (nothing to do: no lock taken)."""
    if not queued(root):
        return []
    with _guard(root):
        return _pump(Path(root).absolute(), limits)


def usage(root: Path, user: str) -> dict:
    """Jobs running now: {"mine", "total", "queued_mine", "queued"} (for the page's one line)."""
    live, waiting = live_jobs(root), queued(root)
    return {"mine": sum(j["user"] == user for j in live), "total": len(live),
            "queued_mine": sum(r.get("user") == user for r in waiting), "queued": len(waiting)}


_PUMPS: dict[tuple[str, Limits], threading.Thread] = {}


def _pump_forever(root: Path, limits: Limits, every: float) -> None:
    while root.is_dir():  # until the runs root goes (a test's temporary folder)
        try:
            pump(root, limits)
        except Exception:  # keep pumping: one bad request must not stop the queue
            log.exception("job queue of %s", root)
        time.sleep(every)


def ensure_pump(root: Path, limits: Limits, every: float = 2.0) -> None:
    """A daemon thread of this process that starts queued jobs as slots free up (one per root and limits),
    so the queue moves when no page is open."""
    key = (str(Path(root).absolute()), limits)
    if key in _PUMPS and _PUMPS[key].is_alive():
        return
    thread = threading.Thread(target=_pump_forever, args=(Path(key[0]), limits, every), name="nasnav-job-queue", daemon=True)
    thread.start()
    _PUMPS[key] = thread
