"""Typed reads and writes of a run's round records: space, candidates, search state, decisions,
history, spot-check summary and the retrained architectures. Callers never name a file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace
from nasnav.store import layout
from nasnav.store.io import read_csv, read_json, read_yaml, write_json, write_yaml
from nasnav.store.run_dir import RunDir
from nasnav.store.state_lock import state_lock

# candidates.csv: these columns, then one choice_<stage> column per stage
CANDIDATE_COLUMNS = ["round", "arch", "one_shot_acc", "val_loss", "params", "flops", "strategy", "generation",
                     "parent", "seconds"]
# the results table of retrained architectures: these columns first
FINAL_COLUMNS = ["arch", "test_acc", "test_acc_std", "val_acc", "one_shot_acc", "params", "flops", "latency_ms",
                 "train_seconds", "seeds", "epochs", "round", "key"]


def choice_column(stage_name: str) -> str:
    return f"choice_{stage_name}"


def candidate_columns(space: SearchSpace) -> list[str]:
    return CANDIDATE_COLUMNS + [choice_column(s.name) for s in space.stages]


# ---- space ---------------------------------------------------------------------------------------
def space_path(run: RunDir, k: int) -> Path:
    return run.round_dir(k) / layout.SPACE


def has_space(run: RunDir, k: int) -> bool:
    return space_path(run, k).exists()


def read_space(run: RunDir, k: int | None = None, kind: str | None = None, ops: list[str] | None = None) -> SearchSpace:
    """The space of round k (current round by default), checked; ``ops`` (the registry's names) also
    checks every component exists. Problems name the file."""
    k = run.current_round() if k is None else k
    path = space_path(run, k)
    if not path.exists():
        raise InvalidInput(f"{path}: round {k} has no {layout.SPACE}")
    try:
        space = SearchSpace.from_dict(read_yaml(path), kind)
    except ValueError as e:
        msg = str(e)
        raise InvalidInput(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    return space.validate(ops, where=str(path))


def write_space(run: RunDir, k: int, space: SearchSpace) -> None:
    write_yaml(run.ensure_round_dir(k) / layout.SPACE, space.to_dict())


# ---- candidates and search state -----------------------------------------------------------------
def candidates_path(run: RunDir, k: int) -> Path:
    return run.round_dir(k) / layout.CANDIDATES


def read_candidates(run: RunDir, k: int) -> pd.DataFrame:
    """Candidates of round k (empty frame if none yet)."""
    return read_csv(candidates_path(run, k), columns=CANDIDATE_COLUMNS)


def search_state(run: RunDir, k: int) -> dict:
    """The round's last search plan and state (empty dict if none)."""
    return read_json(run.round_dir(k) / layout.SEARCH_STATE, default={}) or {}


def write_search_state(run: RunDir, k: int, state: dict) -> None:
    write_json(run.ensure_round_dir(k) / layout.SEARCH_STATE, state)


# ---- decisions and history -----------------------------------------------------------------------
def read_decisions(run: RunDir, k: int) -> list[dict]:
    data = read_json(run.round_dir(k) / layout.DECISIONS, default=[])
    return data if isinstance(data, list) else []


def write_decisions(run: RunDir, k: int, records: list[dict]) -> None:
    """Replace round k's records (the caller holds ``state_lock`` and read them inside it)."""
    write_json(run.ensure_round_dir(k) / layout.DECISIONS, records)


def append_decision(run: RunDir, k: int, record: dict) -> None:
    """Add one record to round k's decisions, read and written under the run's state lock."""
    with state_lock(run):
        write_decisions(run, k, read_decisions(run, k) + [record])


def read_history(run: RunDir) -> list[dict]:
    data = read_json(run.path / layout.HISTORY, default=[])
    return data if isinstance(data, list) else []


def log_event(run: RunDir, event: dict) -> None:
    """Append one event (a decision, an undo, a redo) to the run's history, time-stamped (under the run's
    state lock: two events at once both land)."""
    with state_lock(run):
        events = read_history(run)
        events.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), **event})
        write_json(run.path / layout.HISTORY, events)


# ---- spot check and retrained architectures ------------------------------------------------------
def read_spotcheck(run: RunDir, k: int | None = None) -> dict | None:
    """The spot-check summary of round k (current round by default), or None: the app's trust indicator."""
    k = run.current_round() if k is None else k
    data = read_json(run.round_dir(k) / layout.SPOTCHECK_SUMMARY, default=None)
    return data if isinstance(data, dict) else None


def latest_spotcheck(run: RunDir, prefer: int | None = None) -> tuple[int | None, dict | None]:
    """(round, summary) of the spot check to quote: round ``prefer``'s if it has one with answers, else
    the latest round's that has; (None, None) when no round has been spot-checked."""
    rounds = run.rounds()
    order = ([prefer] if prefer is not None else []) + [k for k in reversed(rounds) if k != prefer]
    for k in order:
        try:
            sc = read_spotcheck(run, k)
        except ValueError:
            continue  # unreadable: as if absent
        got = sc.get("answers") if isinstance(sc, dict) else None
        if isinstance(got, dict) and any(isinstance(a, dict) and "verdict" in a for a in got.values()):
            return k, sc  # answers to quote (a check stopped before any finished has none)
    return None, None


def by_validation(finals: pd.DataFrame) -> pd.DataFrame:
    """Retrained networks, best standalone validation accuracy first (ties: fewer params). Every pick, sort
    order and default among retrained networks goes by this: the test split only reports."""
    return finals.sort_values(["val_acc", "params"], ascending=[False, True], kind="mergesort")


def read_finals(run: RunDir) -> pd.DataFrame:
    """One row per retrained architecture; the results table's columns first."""
    rows = []
    for k in run.finals():
        try:
            m = read_json(run.final_dir(k) / layout.FINAL_METRICS)
        except ValueError:
            continue  # unreadable: skipped here, reported where the file is opened on its own
        if isinstance(m, dict):
            m.setdefault("test_acc_std", 0.0)
            m["exported"] = (run.final_dir(k) / layout.EXPORT).exists()
            rows.append(m)
    df = pd.DataFrame(rows)
    for c in FINAL_COLUMNS:
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    return df[FINAL_COLUMNS + [c for c in df.columns if c not in FINAL_COLUMNS]]


def final_seeds(run: RunDir) -> Iterator[tuple[dict, pd.DataFrame]]:
    """(metrics.json, seeds.csv) of each retrained architecture whose metrics are readable."""
    for key in run.finals():
        d = run.final_dir(key)
        try:
            m = read_json(d / layout.FINAL_METRICS, default=None)
        except ValueError:
            continue
        if isinstance(m, dict):
            yield m, read_csv(d / layout.SEEDS)


# ---- supernet ------------------------------------------------------------------------------------
def supernet_path(run: RunDir, k: int) -> Path:
    return run.round_dir(k) / layout.SUPERNET


def has_supernet(run: RunDir, k: int) -> bool:
    return supernet_path(run, k).exists()


def supernet_resume_path(run: RunDir, k: int) -> Path:
    """The last epoch checkpoint of round k's supernet training (present while it is unfinished)."""
    return run.round_dir(k) / layout.TRAINING_DIR / layout.LAST_CKPT
