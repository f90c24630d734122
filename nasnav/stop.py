"""The process's stop request: set by a job's SIGTERM handler (``jobs.context``), read by long loops
between units of work (an epoch's batches, a scored candidate, a standalone training), which then
raise ``JobStopped`` after saving what they finished. A signal handler can only reach process-wide
state, hence one flag per process."""

import threading

_requested = threading.Event()


class JobStopped(Exception):
    """Raised inside a job when a stop (SIGTERM) was requested."""


def request_stop() -> None:
    _requested.set()


def clear_stop() -> None:
    _requested.clear()


def stop_requested() -> bool:
    return _requested.is_set()
