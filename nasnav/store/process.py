"""Process identity from /proc: whether the process that wrote a status or holds a lock is alive.

A run folder may live on a file system several machines share, so a record of a process (a lock, a
status) names its host too. A pid says something only on the host that wrote it: a process of another
host is judged by its heartbeat (``holder_alive``), never by whether the same pid exists here.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
from pathlib import Path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_start(pid: int | None) -> int | None:
    """An identity for a live process (its start tick); with the pid it tells a reused pid apart."""
    info = _proc_stat(int(pid)) if pid else None
    return info[1] if info else None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a zombie child of ours is reaped).

    With ``start`` (from ``pid_start`` when it was recorded), a different process that has since
    been given the same pid counts as dead.
    """
    try:
        pid = int(pid)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if pid <= 0:  # 0 and negatives would address process groups
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False  # our child, just reaped
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    info = _proc_stat(pid)
    if info is None:
        return True  # no /proc (macOS): kill(pid, 0) is all we know
    state, ticks = info
    if state in ("Z", "X"):
        return False
    return start is None or int(start) == ticks


@functools.cache
def host_name() -> str:
    """This machine's name as records and temporary file names carry it (only letters, digits, '.', '-',
    '_': it is part of file names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname() or "localhost")[:64] or "localhost"


def identity(pid: int | None = None) -> dict:
    """What proves a process is the one a record names: {"pid", "pid_start", "host"} (this process by default)."""
    pid = os.getpid() if pid is None else int(pid)
    return {"pid": pid, "pid_start": pid_start(pid), "host": host_name()}


def is_local(record: dict) -> bool:
    """Whether a record (a lock, a status) was written for a process of this host. A record without a host
    was written before records named one: it counts as this host's."""
    return record.get("host") in (None, host_name())


def holder_alive(record: dict, beat: float | None, stale_seconds: float) -> bool:
    """Whether the process a lock or status names still lives: on this host, its pid with its start time;
    on another host (a shared file system), while its heartbeat (``beat``, a time stamp) is fresher than
    ``stale_seconds``: that a pid is absent here says nothing about a process there."""
    if is_local(record):
        return pid_alive(record.get("pid"), record.get("pid_start"))
    return beat is not None and time.time() - beat < stale_seconds
