"""The run directory: atomic files, tolerant readers, a truthful status, and listing runs.

Layout of a run (RUN/): config.yaml, status.json, job.lock, heartbeat, current_round.json,
logs/<job>.log, rounds/003/{space.yaml, supernet.ckpt, candidates.csv, ...}, final/<arch-key>/.
The job lock and starting/stopping job processes live in ``nasnav.jobs`` and are re-exported here
(``from nasnav.runs import JobLock, start_job, stop_job`` works).

No torch here: the app imports this module on every page.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

if TYPE_CHECKING:
    from nasnav.jobs import JobLock, JobRunning, running_job, start_job, stop_job  # noqa: F401

STALE_SECONDS = 120.0
STATES = ("idle", "running", "done", "failed", "interrupted", "stopped")
STATUS_DEFAULTS: dict[str, Any] = {
    "stage": "created",
    "state": "idle",
    "progress": 0.0,
    "message": "",
    "pid": None,
    "pid_start": None,
    "heartbeat": None,
    "error": None,
    "started": None,
    "updated": None,
    "job": None,
    "eta_seconds": None,
    "extra": {},
}


# ---- atomic files ------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    On any failure (disk full included) the temporary file is removed, the error re-raised,
    and the previous content of ``path`` is left intact. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid is in the name, so a temporary file left by a killed writer can be swept.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # say which file could not be written (a full disk names no file)
        raise


_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


def sweep_temp_files(root: str | Path) -> list[Path]:
    """Remove the temporary files of ``atomic_write_bytes`` under ``root`` whose writer is gone
    (a job killed mid-write leaves one; the file it was replacing is intact). Returns them."""
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        m = _TMP_NAME.match(tmp.name)
        if m and tmp.is_file() and not pid_alive(int(m.group(1))):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays (torch tensors too, if one slips in)
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON")


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON (indent 2, key order kept); numpy values and paths are converted."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    """The parsed file, ``default`` if it does not exist; a corrupt file is a ValueError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); fix or delete the file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected JSON") from None


class _PlainDumper(yaml.SafeDumper):
    """safe_dump without anchors/aliases: a value used twice is written out twice, so the files
    read back under the no-alias loader that user files get (``config.load_user_yaml``)."""

    def ignore_aliases(self, data):
        return True


def write_yaml(path: str | Path, obj: Any) -> None:
    """Atomic ``yaml.safe_dump`` with key order kept."""
    atomic_write_text(path, yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True))


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file; a missing or malformed file is a ValueError naming it (and the line)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


def write_csv(path: str | Path, df: pd.DataFrame) -> None:
    """Atomic CSV without the index."""
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def _csv_header(path: Path) -> list[str] | None:
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    return next(csv.reader([first]), None) if first.endswith("\n") else None


def append_csv_rows(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Append rows (header first if the file is new); flushed and fsynced, so a killed job loses
    at most the row it was writing. Values are written in the existing header's order; a column
    the file lacks is a ValueError (rewrite the file with ``write_csv`` instead)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = None
    if path.exists():
        _drop_partial_line(path)  # a previous writer died mid-line: that row was never complete
        header = _csv_header(path) if path.stat().st_size else None
    if header is not None and set(columns) - set(header):
        raise ValueError(
            f"{path}: has columns {header}; cannot append rows with new columns {sorted(set(columns) - set(header))}"
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header or list(columns), extrasaction="ignore", lineterminator="\n")
    if header is None:
        writer.writeheader()
    writer.writerows(rows)
    try:
        with open(path, "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # e.g. disk full: a cut-off last line is dropped by the next reader / writer
        if e.filename is None:
            e.filename = str(path)
        raise


def _drop_partial_line(path: Path) -> None:
    """Cut the file back to its last newline (a line without one was cut off by a kill)."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 65536))
        tail = f.read()
        if not tail or tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        f.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)


def read_csv(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Tolerant reader for files jobs append to while running.

    A missing or empty file is an empty frame with ``columns``; a last line without its newline
    (the writer was killed mid-row) and rows with the wrong number of fields are dropped.
    Columns named in ``columns`` but absent from the file are added, empty.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    records = list(csv.reader(io.StringIO(text)))
    if text and not text.endswith("\n"):
        records = records[:-1]  # cut off mid-write: its last field may be truncated
    if not records:
        return pd.DataFrame(columns=list(columns or []))
    header, body = records[0], [r for r in records[1:] if len(r) == len(records[0])]
    clean = io.StringIO()
    csv.writer(clean, lineterminator="\n").writerows([header, *body])
    clean.seek(0)
    df = pd.read_csv(clean)
    for c in columns or []:
        if c not in df.columns:
            df[c] = pd.Series(index=df.index, dtype=object)
    return df


# ---- processes ---------------------------------------------------------------------------------
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


def arch_key(arch_str: str) -> str:
    """A readable, unique, filesystem-safe folder name for an architecture string.

    ``conv3x3/maxpool3x3+skip`` -> ``conv3x3__maxpool3x3-skip``. When that would not map back
    (unusual characters in names) or is longer than 120 characters, a hash suffix keeps it unique.
    """
    if not arch_str:
        raise ValueError("architecture string is empty; expected components joined by '/' and '+'")
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
        """Make the folder; a non-empty existing folder is an error unless ``exist_ok``."""
        path = Path(path)
        run = cls(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path}: exists and is not a folder; choose another run directory")
        if path.is_dir() and any(path.iterdir()) and not exist_ok:
            what = "it holds a run; resume it instead" if run.exists() else "it is not empty and holds no run"
            raise ValueError(f"{path}: already exists ({what}); choose a new or empty run directory")
        path.mkdir(parents=True, exist_ok=True)
        return run

    def exists(self) -> bool:
        """Whether this is a run (its config.yaml is there)."""
        return self.config_path.is_file()

    @property
    def name(self) -> str:
        return self.path.name

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
    def heartbeat_path(self) -> Path:
        """Touched by the lock holder every few seconds (see ``nasnav.jobs.JobLock``)."""
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
        path = self.path / "current_round.json"
        data = read_json(path, default=None)
        if data is not None:
            k = data.get("round") if isinstance(data, dict) else None
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise ValueError(f'{path}: expected {{"round": <int >= 0>}}, found {data!r}')
            return k
        with_space = [k for k in self.rounds() if (self.round_dir(k) / "space.yaml").exists()]
        return with_space[-1] if with_space else 0

    def set_current_round(self, k: int) -> None:
        write_json(self.path / "current_round.json", {"round": int(k)})

    def final_dir(self, arch_key: str) -> Path:
        """RUN/final/<arch_key> (not created); pass ``arch_key(arch_str)``."""
        return self.path / "final" / arch_key

    def finals(self) -> list[str]:
        """Keys of retrained architectures (those with a metrics.json), sorted."""
        root = self.path / "final"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "metrics.json").is_file())

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
        if pid is not None and not pid_alive(pid, status.get("pid_start")):
            status["state"] = "interrupted"
            status["message"] = (
                f"the {job} job process (pid {pid}) is gone: it was killed or crashed "
                f"(see logs/{job}.log); its saved results are kept, start it again to resume"
            )
        elif silent > stale_seconds:
            status["state"] = "interrupted"
            status["message"] = (
                f"the {job} job (pid {pid}) has not reported for {silent:.0f} s: it is hung "
                "or gone; stop it and start it again to resume"
            )
        return status

    def write_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into status.json (top-level keys; ``extra`` is replaced whole), stamp
        updated/heartbeat, write atomically, and return the new status."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"status state {fields['state']!r} is not one of {', '.join(STATES)}")
        try:
            current = read_json(self.status_path, default={}) or {}
        except ValueError:
            current = {}  # corrupt: start over rather than fail the job that is reporting
        status = {**copy.deepcopy(STATUS_DEFAULTS), **current, **fields}
        if "pid" in fields and "pid_start" not in fields:
            status["pid_start"] = pid_start(fields["pid"])
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
    df = read_csv(run.round_dir(k) / "candidates.csv", columns=["one_shot_acc"])
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

_FROM_JOBS = ("JobLock", "JobRunning", "running_job", "start_job", "stop_job")


def __getattr__(name: str) -> Any:
    """Re-export the job API lazily (nasnav.jobs imports this module, so not at import time)."""
    if name in _FROM_JOBS:
        from nasnav import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
