"""Atomic files and tolerant readers: what every writer into a run directory goes through.

A write goes to a temporary file in the same folder and is renamed over the target, so a killed
writer leaves the last good file intact; readers name the file and the line of any problem. A
temporary file names its writer's pid and host (``.NAME.PID@HOST.XXXX.tmp``): the run folder may be
on a file system several machines share, and only the writer's own host can tell whether it is gone.
The file gets the mode any new file gets (0666 less the umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nasnav.errors import InvalidInput
from nasnav.store.process import host_name, pid_alive

TMP_STALE_SECONDS = 3600.0  # another host's temporary file this old is a dead writer's (nobody writes for an hour)


def _umask() -> int:
    """The process's umask, read without changing it (Linux: /proc; elsewhere set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, exclusive: bool = False) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    On any failure (disk full included) the temporary file is removed, the error re-raised,
    and the previous content of ``path`` is left intact. Parent folders are created.
    ``exclusive``: publish only if ``path`` does not exist yet (a hard link, atomic on local and
    network file systems alike): FileExistsError if another writer got there first, whole either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid and host are in the name, so a temporary file left by a killed writer can be swept.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{host_name()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # a normal file, as open() would make it (mkstemp's is 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # say which file could not be written (a full disk names no file)
        raise


def _tmp_writer(name: str) -> tuple[int, str | None] | None:
    """(pid, host) of a temporary file's name ``.NAME.PID@HOST.XXXX.tmp`` (mkstemp's XXXX has no dot, a
    host no '@'); host None for ``.NAME.PID.XXXX.tmp``, written before names carried the host. None: not one."""
    if not (name.startswith(".") and name.endswith(".tmp")) or "." not in name[1:-4]:
        return None
    rest, rand = name[1:-4].rsplit(".", 1)
    rest, at, host = rest.rpartition("@") if "@" in rest else (rest, "", None)
    _, dot, pid = rest.rpartition(".")
    if not (dot and pid.isdigit() and re.fullmatch(r"[A-Za-z0-9_]+", rand)) or (at and not host):
        return None
    return int(pid), host


def _writer_gone(tmp: Path, pid: int, host: str | None) -> bool:
    """This host's writer: its pid is gone. Another host's: the file has not changed for TMP_STALE_SECONDS
    (a pid of another machine says nothing here)."""
    if host in (None, host_name()):
        return not pid_alive(pid)
    try:
        return time.time() - tmp.stat().st_mtime > TMP_STALE_SECONDS
    except OSError:
        return False


def sweep_temp_files(root: str | Path) -> list[Path]:
    """Remove the temporary files of ``atomic_write_bytes`` under ``root`` whose writer is gone
    (a job killed mid-write leaves one; the file it was replacing is intact). Returns them."""
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        writer = _tmp_writer(tmp.name)
        if writer and tmp.is_file() and _writer_gone(tmp, *writer):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def atomic_write_text(path: str | Path, text: str, exclusive: bool = False) -> None:
    """``atomic_write_bytes`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), exclusive)


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
        raise InvalidInput(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); fix or delete the file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a UTF-8 text file; expected JSON") from None


class _PlainDumper(yaml.SafeDumper):
    """safe_dump without anchors/aliases: a value used twice is written out twice, so the files
    read back under the no-alias loader that user files get (``user_yaml.load_user_yaml``)."""

    def ignore_aliases(self, data):
        return True


def write_yaml(path: str | Path, obj: Any, exclusive: bool = False) -> None:
    """Atomic ``yaml.safe_dump`` with key order kept (``exclusive``: see ``atomic_write_bytes``)."""
    atomic_write_text(path, yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True), exclusive)


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file; a missing or malformed file is a ValueError naming it (and the line)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a UTF-8 text file; expected YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidInput(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


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
        raise InvalidInput(
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


def json_records(df: pd.DataFrame | None) -> list[dict]:
    """A frame as JSON-safe dicts (NaN -> None, numpy scalars -> Python)."""
    if df is None or not len(df):
        return []
    out = []
    for row in df.to_dict("records"):
        clean = {}
        for key, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[str(key)] = v
        out.append(clean)
    return out

