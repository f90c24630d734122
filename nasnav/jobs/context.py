"""The job context: hold the run's lock, keep status.json truthful, stop on SIGTERM, report a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
import traceback
from collections.abc import Iterator

from nasnav.errors import InvalidInput
from nasnav.jobs.control import JobLock
from nasnav.stop import JobStopped, clear_stop, request_stop, stop_requested
from nasnav.store.io import sweep_temp_files
from nasnav.store.run_dir import RunDir


class DiskFull(InvalidInput):
    """A job could not write because the disk (or quota) is full. A ValueError: the CLI prints the
    message without a traceback; nothing written before is damaged (writes are atomic)."""


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _safe_status(run: RunDir, **fields) -> None:
    """Record a job's end without masking the error that ended it (a full disk fails this write too)."""
    with contextlib.suppress(OSError, ValueError):
        run.write_status(**fields)


def _on_sigterm(signum, frame):
    request_stop()  # loops check this between units of work; Lightning stops after the batch


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_worker_rank() -> bool:
    """Whether this process is a rank other than the first of a multi-process training: one Lightning
    started by re-running the command (LOCAL_RANK, NODE_RANK), or torchrun (RANK, GROUP_RANK on other
    nodes) or SLURM (SLURM_PROCID) started beside it."""
    return any(os.environ.get(k, "0").strip().isdigit() and int(os.environ[k]) > 0
               for k in RANK_VARIABLES if k in os.environ)


@contextlib.contextmanager
def job(run: RunDir, name: str, stage: str | None = None):
    """Hold the run's lock and keep status.json truthful for the duration of a job."""
    if is_worker_rank():
        yield  # DDP worker processes re-run the command: rank 0 owns the lock and the status
        return
    clear_stop()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    lock = JobLock(run, name)
    lock.acquire()  # JobRunning (a ValueError) when another job holds the run: its status is left alone
    with contextlib.suppress(OSError):
        sweep_temp_files(run.path)  # half-written files of killed writers (only those whose pid is gone)
    try:
        run.write_status(state="running", job=name, stage=stage or name, pid=os.getpid(), progress=0.0,
                         message="started", error=None, started=time.time(), eta_seconds=None,
                         extra={})  # nothing of the previous job (its epoch, its speed) carries over
        yield
        if stop_requested():
            raise JobStopped()
        run.write_status(state="done", progress=1.0, message="finished", eta_seconds=None)
    except (JobStopped, KeyboardInterrupt):
        _safe_status(run, state="stopped", message="stopped; resume continues from the last saved state")
        raise JobStopped() from None
    except SystemExit as e:  # Lightning exits this way after SIGTERM
        _safe_status(run, state="stopped" if stop_requested() else "failed",
                     message="stopped" if stop_requested() else f"exited ({e.code})")
        raise
    except ValueError as e:
        _safe_status(run, state="failed", error=str(e), message=f"failed: {e}")
        raise
    except OSError as e:
        if e.errno not in _DISK_FULL:
            _safe_status(run, state="failed", error=f"{type(e).__name__}: {e}", message="failed",
                         extra={"traceback": traceback.format_exc()[-4000:]})
            raise
        msg = (f"disk full: the {name} job could not write {e.filename or 'its files'} ({e.strerror}); "
               "free some space and start it again: the files it wrote before are intact and it resumes from them")
        _safe_status(run, state="failed", error=msg, message="failed: disk full")
        raise DiskFull(msg) from None
    except Exception as e:
        _safe_status(run, state="failed", error=f"{type(e).__name__}: {e}", message="failed",
                     extra={"traceback": traceback.format_exc()[-4000:]})
        raise
    finally:
        with contextlib.suppress(OSError):  # a full disk must not hide the job's own error
            lock.release()
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def side_job(run: RunDir, name: str, lane: str) -> Iterator[None]:
    """Hold a side job's lock for the duration (refused while another side job of that kind lives); SIGTERM
    asks the work to stop, as for a main job. It writes no status.json: the work reports in its own files."""
    clear_stop()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with JobLock(run, name, lane=lane):
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)
