"""The run directory: atomic files, tolerant readers, a truthful status, and listing runs.

Layout of a run (RUN/): config.yaml, status.json, job.lock, heartbeat, current_round.json,
logs/<job>.log, rounds/003/{space.yaml, supernet.ckpt, candidates.csv, ...}, final/<arch-key>/.
The file names are in ``nasnav.store.layout``; the job lock and starting/stopping job processes
live in ``nasnav.jobs``.

No torch here: the app imports this module on every page.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from nasnav.errors import InvalidInput
from nasnav.store import layout
from nasnav.store.io import read_csv, read_json, write_json
from nasnav.store.process import holder_alive, host_name, is_local, pid_start

STALE_SECONDS = 120.0
STATES = ("idle", "running", "done", "failed", "interrupted", "stopped")
STATUS_DEFAULTS: dict[str, Any] = {
    "stage": "created",
    "state": "idle",
    "progress": 0.0,
    "message": "",
    "pid": None,
    "pid_start": None,
    "host": None,  # the host of the job's process (a run folder may be on a file system hosts share)
    "heartbeat": None,
    "error": None,
    "started": None,
    "updated": None,
    "job": None,
    "eta_seconds": None,
    "extra": {},
}


def arch_key(arch_str: str) -> str:
    """A readable, unique, filesystem-safe folder name for an architecture string.

    ``conv3x3/maxpool3x3+skip`` -> ``conv3x3__maxpool3x3-skip``. When that would not map back
    (unusual characters in names) or is longer than 120 characters, a hash suffix keeps it unique.
    """
    if not arch_str:
        raise InvalidInput("architecture string is empty; expected components joined by '/' and '+'")
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", arch_str.replace("/", "__").replace("+", "-"))
    if key.startswith("."):
        key = "_" + key
    if arch_from_key(key) != arch_str or len(key) > 120:
        key = f"{key[:100]}~{hashlib.sha1(arch_str.encode()).hexdigest()[:12]}"
    return key


def arch_from_key(key: str) -> str | None:
    """The architecture string of a readable ``arch_key``; None for a hashed key."""
    if "~" in key:
        return None
    return key.replace("__", "/").replace("-", "+")


# ---- the run directory -----------------------------------------------------------------------
class RunDir:
    """One folder per run (see the module docstring for its layout). Creating the object touches nothing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def create(cls, path: str | Path, exist_ok: bool = False) -> RunDir:
        """Make the folder; a non-empty existing folder is an error unless ``exist_ok``. The folder is made
        with one ``mkdir`` (no check first): of two creators at once, the second finds it made. Claiming
        the run is ``workflow.runs.create_run``'s exclusive write of its config.yaml."""
        path = Path(path)
        run = cls(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
            return run
        except FileExistsError:
            pass
        if not path.is_dir():
            raise InvalidInput(f"{path}: exists and is not a folder; choose another run directory")
        if any(path.iterdir()) and not exist_ok:
            what = "it holds a run; resume it instead" if run.exists() else "it is not empty and holds no run"
            raise InvalidInput(f"{path}: already exists ({what}); choose a new or empty run directory")
        return run

    def exists(self) -> bool:
        """Whether this is a run (its config.yaml is there)."""
        return self.config_path.is_file()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / layout.CONFIG

    @property
    def status_path(self) -> Path:
        return self.path / layout.STATUS

    @property
    def lock_path(self) -> Path:
        return self.path / layout.LOCK

    def side_lock_path(self, lane: str) -> Path:
        """The lock of a job beside the main one (``layout.SIDE_LOCKS``: a spot check)."""
        return self.path / layout.SIDE_LOCKS[lane]

    @property
    def heartbeat_path(self) -> Path:
        """Touched by the lock holder every few seconds (see ``nasnav.jobs.control.JobLock``)."""
        return self.path / "heartbeat"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def round_dir(self, k: int) -> Path:
        """RUN/rounds/003 (not created)."""
        return self.path / "rounds" / f"{int(k):03d}"

    def ensure_round_dir(self, k: int) -> Path:
        d = self.round_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def rounds(self) -> list[int]:
        """Round numbers that have a folder, ascending."""
        root = self.path / "rounds"
        if not root.is_dir():
            return []
        return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())

    def current_round(self) -> int:
        """The round the analyst is on: current_round.json if present (undo keeps later rounds'
        files), else the highest round with a space.yaml, else 0."""
        path = self.path / layout.CURRENT_ROUND
        data = read_json(path, default=None)
        if data is not None:
            k = data.get("round") if isinstance(data, dict) else None
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise InvalidInput(f'{path}: expected {{"round": <int >= 0>}}, found {data!r}')
            return k
        with_space = [k for k in self.rounds() if (self.round_dir(k) / layout.SPACE).exists()]
        return with_space[-1] if with_space else 0

    def set_current_round(self, k: int) -> None:
        write_json(self.path / layout.CURRENT_ROUND, {"round": int(k)})

    def final_dir(self, arch_key: str) -> Path:
        """RUN/final/<arch_key> (not created); pass ``arch_key(arch_str)``."""
        return self.path / "final" / arch_key

    def finals(self) -> list[str]:
        """Keys of retrained architectures (those with a metrics.json), sorted."""
        root = self.path / "final"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / layout.FINAL_METRICS).is_file())

    # ---- status ----
    def read_status(self, stale_seconds: float = STALE_SECONDS) -> dict:
        """status.json with defaults, telling the truth about dead jobs without rewriting the file:
        a 'running' job whose process is gone (or that has not reported for ``stale_seconds``)
        reads as 'interrupted'. An unreadable file reads as 'interrupted' too."""
        status = copy.deepcopy(STATUS_DEFAULTS)
        try:
            status.update(read_json(self.status_path, default={}) or {})
        except ValueError as e:
            status.update(state="interrupted", message=str(e))
            return status
        if status["state"] != "running":
            return status
        job, pid = status.get("job") or "job", status.get("pid")
        beat = [t for t in (status.get("heartbeat"), status.get("updated")) if isinstance(t, (int, float))]
        try:
            beat.append(self.heartbeat_path.stat().st_mtime)
        except OSError:
            pass
        silent = time.time() - max(beat) if beat else float("inf")
        # another host's job is judged by its heartbeat alone: its pid means nothing here
        if pid is not None and is_local(status) and not holder_alive(status, None, stale_seconds):
            status["state"] = "interrupted"
            status["message"] = (
                f"the {job} job process (pid {pid}) is gone: it was killed or crashed "
                f"(see logs/{job}.log); its saved results are kept, start it again to resume"
            )
        elif silent > stale_seconds:
            status["state"] = "interrupted"
            status["message"] = (
                f"the {job} job (pid {pid}{'' if is_local(status) else ' on host ' + str(status['host'])}) has not "
                f"reported for {silent:.0f} s: it is hung "
                "or gone; stop it and start it again to resume"
            )
        return status

    def write_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into status.json (top-level keys; ``extra`` is replaced whole), stamp
        updated/heartbeat, write atomically, and return the new status."""
        if "state" in fields and fields["state"] not in STATES:
            raise InvalidInput(f"status state {fields['state']!r} is not one of {', '.join(STATES)}")
        try:
            current = read_json(self.status_path, default={}) or {}
        except ValueError:
            current = {}  # corrupt: start over rather than fail the job that is reporting
        status = {**copy.deepcopy(STATUS_DEFAULTS), **current, **fields}
        if "pid" in fields and "pid_start" not in fields:
            status["pid_start"] = pid_start(fields["pid"])
        if "pid" in fields and "host" not in fields:
            status["host"] = host_name() if fields["pid"] is not None else None
        now = time.time()
        status["updated"] = now
        status["heartbeat"] = now
        write_json(self.status_path, status)
        return status

    # ---- logs ----
    def log_path(self, job: str) -> Path:
        return self.logs_dir / f"{job}.log"

    def log_tail(self, job: str, lines: int = 40) -> str:
        """The last ``lines`` lines of logs/<job>.log ('' if there is none)."""
        try:
            with open(self.log_path(job), "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 200 * max(lines, 1) - 4096))
                text = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def _best_acc(run: RunDir, k: int) -> float | None:
    df = read_csv(run.round_dir(k) / layout.CANDIDATES, columns=["one_shot_acc"])
    acc = pd.to_numeric(df["one_shot_acc"], errors="coerce").dropna()
    return float(acc.max()) if len(acc) else None


def list_runs(root: str | Path) -> list[dict]:
    """Every run directly under ``root`` as {name, path, state, stage, round, best_acc, updated},
    most recently updated first. A run with a corrupt file is listed with state 'interrupted'
    and the error as its message rather than hiding it or failing the listing."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        run = RunDir(p)
        if not p.is_dir() or not run.exists():
            continue
        status = run.read_status()
        entry = {
            "name": p.name,
            "path": str(p),
            "state": status["state"],
            "stage": status["stage"],
            "round": 0,
            "best_acc": None,
            "updated": status.get("updated") or p.stat().st_mtime,
            "message": status.get("message", ""),
        }
        try:
            entry["round"] = run.current_round()
            entry["best_acc"] = _best_acc(run, entry["round"])
        except (ValueError, pd.errors.ParserError) as e:
            entry.update(state="interrupted", message=str(e))
        out.append(entry)
    return sorted(out, key=lambda r: r["updated"] or 0, reverse=True)


RunDir.list_runs = staticmethod(list_runs)  # type: ignore[attr-defined]
