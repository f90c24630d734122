"""The run's state lock: every read-modify-write of a run's shared records happens under it.

Decisions, undo and redo, the auto-pilot's records, the rounds' history, pending actions, saved
selections, the job queue and the space editor's save all read a file, change it and write it back.
Two sessions (or a session and a job) doing that at once would each write what it read, and one
change would be silently lost. ``with state_lock(run):`` serialises them across processes, threads and
hosts (an ``flock`` on RUN/.state.lock: NFS v4 carries it between machines); the work inside re-reads
what it changes. Re-entrant within a thread, so a locked function may call another.

It is not the job lock (``nasnav.jobs.control``): that one says which single job may write a run's
results for minutes or hours; this one is held for the milliseconds of one change. Order: this lock
may be taken first and the job guard inside it (the queue starts a job), never the other way round.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator

from nasnav.errors import InvalidInput
from nasnav.store.run_dir import RunDir

STATE_LOCK = ".state.lock"
_HELD = threading.local()  # this thread's holds, by lock file: depth


@contextlib.contextmanager
def state_lock(run: RunDir) -> Iterator[None]:
    """Hold the run's state lock (blocking until it is free); the run's folder must exist."""
    path = run.path / STATE_LOCK
    key = str(path.absolute())
    held = _HELD.__dict__.setdefault("depth", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    if not run.path.is_dir():
        raise InvalidInput(f"{run.path}: no such run folder")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            held.pop(key, None)
            fcntl.flock(f, fcntl.LOCK_UN)
