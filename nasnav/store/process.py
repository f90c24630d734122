"""Process identity from /proc: whether the process that wrote a status or holds a lock is alive."""

from __future__ import annotations

import os
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
