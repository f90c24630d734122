"""A small queue of jobs in the run directory (``RUN/ui/queue.json``): retraining several
networks, each followed by its export, one job at a time. Any open page advances it (the
progress fragment calls ``advance``), so it survives reloads and app restarts. Every change to the
queue is read and written under the run's state lock, so two pages advancing it at once start its
head once. Each job goes through the server's job limits (``jobs.slots``): it may wait there for a
slot. No Streamlit."""

from __future__ import annotations

from nasnav.jobs import commands, slots
from nasnav.jobs.control import JobRunning, running_job, start_job
from nasnav.store import layout
from nasnav.store.io import read_json, write_json
from nasnav.store.run_dir import RunDir
from nasnav.store.state_lock import state_lock

QUEUE_FILE = layout.QUEUE
CURRENT_FILE = layout.QUEUE_CURRENT


def items(run: RunDir) -> list[dict]:
    try:
        data = read_json(run.path / QUEUE_FILE, default=[]) or []
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict) and d.get("job") and isinstance(d.get("args"), list)]


def enqueue(run: RunDir, new: list[dict]) -> int:
    with state_lock(run):
        current = items(run)
        current += [d for d in new if d not in current]
        write_json(run.path / QUEUE_FILE, current)
        return len(current)


def clear(run: RunDir) -> None:
    with state_lock(run):
        write_json(run.path / QUEUE_FILE, [])


def retrain_items(run: RunDir, archs: list[str], seeds: int) -> list[dict]:
    """One retrain job per architecture (each exports its network when it finishes)."""
    return [{"job": "retrain", "arch": a, "args": commands.retrain(run, a, seeds)} for a in archs]


def advance(run: RunDir, limits: slots.Limits = slots.Limits()) -> dict | None:
    """Start (or queue for a slot) the next job if the run is idle and the last job did not fail or get
    stopped (the queue pauses then); returns the item."""
    with state_lock(run):
        status = run.read_status()
        if status.get("job") in ("retrain", "export") and status["state"] in ("failed", "interrupted", "stopped"):
            return None
        return _start_head(run, limits)


def _start_head(run: RunDir, limits: slots.Limits) -> dict | None:
    """Pop the queue's head and start it, or queue it for a slot (callers hold the run's state lock)."""
    queue = items(run)
    if not queue or running_job(run) or slots.position(run):
        return None
    head, rest = queue[0], queue[1:]
    write_json(run.path / QUEUE_FILE, rest)  # popped first: a crash cannot start it twice
    try:
        slots.submit(run, head["job"], head["args"], limits, start=start_job)
    except JobRunning:
        write_json(run.path / QUEUE_FILE, [head, *rest])
        return None
    write_json(run.path / CURRENT_FILE, head)
    return head


def current(run: RunDir) -> dict | None:
    """The queue item started last (None if none)."""
    try:
        data = read_json(run.path / CURRENT_FILE, default=None)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def resume(run: RunDir, limits: slots.Limits = slots.Limits()) -> dict | None:
    """Continue a paused queue (after a stop or a failure)."""
    with state_lock(run):
        return _start_head(run, limits)
