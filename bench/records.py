"""Benchmark results as data: one JSON record per run in ``bench/results/<benchmark>.jsonl``.

A record holds what a run measured and how to measure it again::

    {"benchmark": "ranking", "group": "digits", "title": "Ranking fidelity (digits)",
     "date": "2026-11-29 04:44", "machine": "2 cores, x86_64, ...", "command": "python bench/ranking.py ...",
     "params": {...the script's resolved arguments...}, "metrics": {...headline numbers...},
     "blocks": [{"text": "..."}, {"heading": "Noise 1 pp"}, {"table": {"columns": [...], "formats": [...],
                "rows": [[...], ...]}}], "latest": true}

``blocks`` is the run's printed section (prose, sub-headings, tables) in order; table cells are
numbers (``0.456``; ``0.96`` for "96%"), lists of numbers for "median [min, max]" cells, or text
where a cell is not a number; ``formats`` (one per column, a format spec) prints the numbers back
exactly as the script did, so the page shows what the run printed. ``group`` is what a benchmark's
runs are compared within (the preset, the table): the page shows the newest run of each group.
``latest`` is true on the newest run of each command (same benchmark, same command line).

The results directory is ``bench/results`` or the one ``NASNAV_BENCH_RESULTS`` names (tests point
it at a temporary directory, so they never touch the repository's results or BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results"

_NUM = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_FORMATS = [f".{d}f" for d in range(7)] + [f".{n}g" for n in range(1, 7)] + [".0%", ".1%"]


def results_dir() -> Path:
    """Where records are read and written: ``$NASNAV_BENCH_RESULTS`` or ``bench/results``."""
    env = os.environ.get("NASNAV_BENCH_RESULTS")
    return Path(env).resolve() if env else DEFAULT_RESULTS


# --- cells: text as printed <-> number, list of numbers, or text -----------------------------------

def _parse_cell(text: str):
    """(value, numbers' texts) of a printed cell, or (text, None) when it is not numeric."""
    if m := re.fullmatch(rf"({_NUM})%", text):
        return float(m.group(1)) / 100, [text]
    if re.fullmatch(_NUM, text):
        return _number(text), [text]
    if m := re.fullmatch(rf"({_NUM}) \[({_NUM}(?:, {_NUM})*)\]", text):
        parts = [m.group(1), *m.group(2).split(", ")]
        return [_number(p) for p in parts], parts
    return text, None


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def format_cell(value, fmt: str | None) -> str:
    """A stored cell as the script printed it."""
    if isinstance(value, str) or fmt is None:
        return str(value)
    if isinstance(value, list):
        head, *rest = (format(v, fmt) for v in value)
        return f"{head} [{', '.join(rest)}]"
    return format(value, fmt)


def table_from_rows(columns: list[str], rows: list[list[str]]) -> dict:
    """A table block from printed cells: numbers where a column format prints them back exactly."""
    formats, out = [], [list(r) for r in rows]
    for j in range(len(columns)):
        parsed = [_parse_cell(r[j]) for r in rows]
        numeric = [(i, v) for i, (v, texts) in enumerate(parsed) if texts is not None]
        best, fits = None, []
        for fmt in _FORMATS:  # the first format that prints back the most cells exactly
            ok = [i for i, v in numeric if _fits(v, fmt, rows[i][j])]
            if len(ok) > len(fits):
                best, fits = fmt, ok
        for i in fits:
            out[i][j] = parsed[i][0]
        formats.append(best)
    return {"columns": list(columns), "formats": formats, "rows": out}


def _fits(value, fmt: str, text: str) -> bool:
    try:
        return format_cell(value, fmt) == text
    except (ValueError, TypeError):
        return False


def render_table(table: dict) -> str:
    cols, fmts = table["columns"], table["formats"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(format_cell(v, f) for v, f in zip(row, fmts)) + " |" for row in table["rows"]]
    return "\n".join(out)


# --- a printed section <-> blocks ------------------------------------------------------------------

def parse_body(body: str) -> list[dict]:
    """Blocks of a section's markdown body: text paragraphs, '###' sub-headings, tables."""
    blocks: list[dict] = []
    for para in re.split(r"\n\s*\n", body.strip()):
        lines = [ln.rstrip() for ln in para.strip("\n").splitlines()]
        if not lines:
            continue
        if all(ln.startswith("|") for ln in lines) and len(lines) >= 2:
            cells = [[c.strip() for c in ln.strip()[1:-1].split("|")] for ln in lines]
            blocks.append({"table": table_from_rows(cells[0], [c for c in cells[2:]])})
        elif len(lines) == 1 and lines[0].startswith("### "):
            blocks.append({"heading": lines[0][4:].strip()})
        else:
            blocks.append({"text": "\n".join(lines)})
    return blocks


def render_blocks(blocks: list[dict], heading_level: int = 3) -> str:
    """The markdown of a record's blocks (sub-headings at ``heading_level``)."""
    parts = []
    for b in blocks:
        if "table" in b:
            parts.append(render_table(b["table"]))
        elif "heading" in b:
            parts.append("#" * heading_level + " " + b["heading"])
        else:
            parts.append(b["text"])
    return "\n\n".join(parts)


# --- the files -------------------------------------------------------------------------------------

def read_records(path: Path) -> list[dict]:
    """The records of one file, oldest first."""
    text = Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_all(results: Path) -> dict[str, list[dict]]:
    """benchmark -> its records (oldest first), from every ``*.jsonl`` in ``results``."""
    out: dict[str, list[dict]] = {}
    for path in sorted(Path(results).glob("*.jsonl")):
        for rec in read_records(path):
            out.setdefault(rec.get("benchmark", path.stem), []).append(rec)
    return out


def mark_latest(records: list[dict]) -> list[dict]:
    """Set ``latest`` on the newest record of each (benchmark, command); in place, returned."""
    newest = {}
    for i, r in enumerate(records):
        newest[(r.get("benchmark"), r.get("command"))] = i
    for i, r in enumerate(records):
        r["latest"] = newest[(r.get("benchmark"), r.get("command"))] == i
    return records


def write_records(path: Path, records: list[dict]) -> None:
    """Write a whole file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def jsonable(value):
    """Plain JSON: tuples as lists, paths as text, inf and nan as text ("inf")."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def append_record(record: dict, results: Path | None = None) -> Path:
    """Add a run to ``<results>/<benchmark>.jsonl``; the older run of the same command loses ``latest``."""
    path = Path(results or results_dir()) / f"{record['benchmark']}.jsonl"
    write_records(path, mark_latest([*read_records(path), jsonable(record)]))
    return path
