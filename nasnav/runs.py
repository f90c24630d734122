"""The run directory: atomic files, status, the one-job lock, and listing runs.

No torch here: the app imports this module on every page.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

STALE_SECONDS = 120.0
STATUS_DEFAULTS = {"stage": "created", "state": "idle", "progress": 0.0, "message": "", "pid": None,
                   "heartbeat": None, "error": None, "started": None, "updated": None, "job": None,
                   "eta_seconds": None, "extra": {}}


# ---- atomic files ------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    On any failure (disk full included) the temporary file is removed and the previous
    content of ``path`` is left intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()  # numpy / torch scalars
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def write_yaml(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None


def write_csv(path: str | Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def append_csv_rows(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Append rows (header first if the file is new); flushed and fsynced, so a killed job
    loses at most the row it was writing (read_csv drops such a truncated line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        _drop_partial_line(path)  # a previous writer died mid-line: that row was never complete
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerows(rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def _drop_partial_line(path: Path) -> None:
    """Cut the file back to its last newline (a row without one was cut off by a kill)."""
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        f.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)


def read_csv(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Tolerant reader: a missing or empty file is an empty frame; malformed lines (a job killed
    mid-write) are dropped."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns or [])
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        return pd.DataFrame(columns=columns or [])
    header = next(csv.reader([lines[0]]))
    good = [lines[0]]
    for line in lines[1:]:
        if line and len(next(csv.reader([line]))) == len(header):
            good.append(line)
    if not text.endswith("\n") and len(good) > 1 and good[-1] == lines[-1]:
        good.pop()  # the last line was cut off: its final field may be truncated
    df = pd.read_csv(io.StringIO("\n".join(good) + "\n"), keep_default_na=True)
    for c in columns or []:
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    return df


# ---- processes ---------------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """Whether a process exists and is not a zombie (reaped if it is our child)."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except (OSError, IndexError):
            return True
    return True


def arch_key(arch_str: str) -> str:
    """A readable, unique, filesystem-safe key for an architecture string."""
    key = arch_str.replace("/", "__").replace("+", "-")
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    if len(key) > 120:
        key = key[:100] + "_" + hashlib.sha1(arch_str.encode()).hexdigest()[:12]
    return key


# ---- the run directory -----------------------------------------------------------------------
class RunDir:
    """One folder per run; see the README for its layout."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def create(cls, path: str | Path, exist_ok: bool = False) -> RunDir:
        path = Path(path)
        run = cls(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path}: exists and is not a directory; choose another run directory")
        if path.exists() and any(path.iterdir()) and not exist_ok:
            what = "a run" if run.exists() else "not empty"
            raise ValueError(f"{path}: already exists ({what}); choose a new run directory or resume it")
        path.mkdir(parents=True, exist_ok=True)
        return run

    def exists(self) -> bool:
        return self.config_path.is_file()

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def lock_path(self) -> Path:
        return self.path / "job.lock"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def round_dir(self, k: int) -> Path:
        return self.path / "rounds" / f"{int(k):03d}"

    def ensure_round_dir(self, k: int) -> Path:
        d = self.round_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def rounds(self) -> list[int]:
        root = self.path / "rounds"
        if not root.is_dir():
            return []
        return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())

    def current_round(self) -> int:
        """The round the analyst is on: current_round.json if present (undo), else the latest."""
        data = read_json(self.path / "current_round.json", default=None)
        if isinstance(data, dict) and isinstance(data.get("round"), int):
            return data["round"]
        with_space = [k for k in self.rounds() if (self.round_dir(k) / "space.yaml").exists()]
        return with_space[-1] if with_space else 0

    def set_current_round(self, k: int) -> None:
        write_json(self.path / "current_round.json", {"round": int(k)})

    def final_dir(self, key: str) -> Path:
        return self.path / "final" / key

    def finals(self) -> list[str]:
        root = self.path / "final"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "metrics.json").exists())

    # ---- status ----
    def read_status(self, stale_seconds: float = STALE_SECONDS) -> dict:
        """The status, with the truth about dead jobs: a 'running' job whose process is gone
        (or silent for ``stale_seconds``) reads as 'interrupted'."""
        try:
            raw = read_json(self.status_path, default={}) or {}
        except ValueError:
            raw = {"state": "interrupted", "message": "status.json is unreadable"}
        status = {**STATUS_DEFAULTS, **raw}
        if status["state"] == "running":
            gone = not pid_alive(status.get("pid"))
            beat = status.get("heartbeat") or status.get("updated") or 0
            silent = time.time() - beat > stale_seconds and not pid_alive(status.get("pid"))
            if gone or silent:
                status["state"] = "interrupted"
                status["message"] = (f"the {status.get('job') or 'job'} process (pid {status.get('pid')}) is gone; "
                                     "resume to continue from the last saved state")
        return status

    def write_status(self, **fields: Any) -> dict:
        try:
            current = read_json(self.status_path, default={}) or {}
        except ValueError:
            current = {}
        status = {**STATUS_DEFAULTS, **current, **fields}
        now = time.time()
        status["updated"] = now
        status["heartbeat"] = now
        write_json(self.status_path, status)
        return status

    # ---- logs ----
    def log_path(self, job: str) -> Path:
        return self.logs_dir / f"{job}.log"

    def log_tail(self, job: str, lines: int = 40) -> str:
        path = self.log_path(job)
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64_000))
            text = f.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def list_runs(root: str | Path) -> list[dict]:
    """Every run directory directly under ``root``, most recently updated first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        run = RunDir(p)
        if not p.is_dir() or not run.exists():
            continue
        status = run.read_status()
        k = run.current_round()
        best = None
        cands = run.round_dir(k) / "candidates.csv"
        if cands.exists():
            df = read_csv(cands, columns=["one_shot_acc"])
            if len(df) and df["one_shot_acc"].notna().any():
                best = float(pd.to_numeric(df["one_shot_acc"], errors="coerce").max())
        out.append({"name": p.name, "path": str(p), "state": status["state"], "stage": status["stage"],
                    "round": k, "best_acc": best, "updated": status.get("updated") or p.stat().st_mtime})
    return sorted(out, key=lambda r: r["updated"] or 0, reverse=True)


# The job lock and background processes live in nasnav/jobs.py; re-exported for convenience.
from nasnav.jobs import JobLock, JobRunning, start_job, stop_job  # noqa: E402,F401
