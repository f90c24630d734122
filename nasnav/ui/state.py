"""Session state of the app: which run is open and the analyst's UI choices.

Everything else is read from the run directory on each rerun, so a reload, an app restart or a
second browser session sees the same state. The open run also goes into the URL (``?run=NAME``)
so that a browser reload reopens it; saved selections live in ``RUN/ui/selections.json``. Changes to
the run's shared files (selections, pending actions) are read and written under the run's state lock:
two sessions changing them at once both land.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import streamlit as st

from nasnav import names
from nasnav.errors import InvalidInput
from nasnav.steering.actions import Action
from nasnav.store.io import read_json, write_json
from nasnav.store.run_dir import RunDir
from nasnav.store.state_lock import state_lock
from nasnav.ui import auth
from nasnav.workflow import access

RUN_KEY = "run_path"
GUIDE_KEY = "walkthrough"
SELECTIONS_FILE = "ui/selections.json"


def runs_root() -> Path:
    """Where runs live: env NASNAV_RUNS or ./runs."""
    return Path(os.environ.get("NASNAV_RUNS") or "runs").resolve()


def check_run_name(name: str) -> str:
    """A run name must be a plain folder name (``nasnav.names``' rule); InvalidInput says what is allowed."""
    return names.check_run_name(name or "")


def _resolve(ref: str) -> Path | None:
    """The run a URL names: only a plain run name under the runs root (``?run=../x`` or an absolute
    path would let a shared link open folders elsewhere on the server)."""
    try:
        return runs_root() / check_run_name(ref)
    except ValueError:
        return None


def _ref(path: Path) -> str | None:
    """The URL form of a run path: its name under the runs root (runs elsewhere stay out of the URL)."""
    path = Path(path).resolve()
    return path.name if path.parent == runs_root() else None


def run_path() -> Path | None:
    """The open run's directory (session state first, then the URL), or None. A run the user may not see
    (a link to someone else's private run) is refused with a message, whichever way it came."""
    path = st.session_state.get(RUN_KEY)
    if not path:
        ref = st.query_params.get("run")
        candidate = _resolve(ref) if ref else None
        if candidate is not None and RunDir(candidate).exists():
            st.session_state[RUN_KEY] = path = str(candidate)
    if path and not RunDir(path).exists():
        st.session_state.pop(RUN_KEY, None)
        path = None
    if path and not _visible(path):
        close_run()
        path = None
    if path:
        _set_url(_ref(Path(path)))
    return Path(path) if path else None


def _visible(path: str) -> bool:
    try:
        access.require_view(auth.current(), RunDir(path))
    except access.Forbidden as e:
        st.error(str(e), icon=":material/lock:")
        return False
    return True


def _set_url(ref: str | None) -> None:
    if ref is None:
        st.query_params.pop("run", None)
    elif st.query_params.get("run") != ref:
        st.query_params["run"] = ref


def open_run(path: str | Path) -> None:
    st.session_state[RUN_KEY] = str(Path(path).resolve())
    _set_url(_ref(Path(path)))


def close_run() -> None:
    st.session_state.pop(RUN_KEY, None)
    st.query_params.pop("run", None)


def walkthrough() -> bool:
    """Whether the guided walkthrough is on (kept in the URL too: ``?guide=1``)."""
    if GUIDE_KEY not in st.session_state:
        st.session_state[GUIDE_KEY] = st.query_params.get("guide") == "1"
    on = bool(st.session_state[GUIDE_KEY])
    if on and st.query_params.get("guide") != "1":
        st.query_params["guide"] = "1"
    elif not on and "guide" in st.query_params:
        st.query_params.pop("guide", None)
    return on


# ---- saved selections (in the run directory, shared by sessions on the same run) ----------
def saved_selections(run: RunDir) -> dict[str, list[str]]:
    try:
        data = read_json(run.path / SELECTIONS_FILE, default={}) or {}
    except ValueError:
        return {}
    return {str(k): [str(a) for a in v] for k, v in data.items() if isinstance(v, list)}


def save_selection(run: RunDir, name: str, archs: list[str]) -> None:
    access.require_act(auth.current(), run)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("selection name: empty; give the selection a name")
    with state_lock(run):
        data = saved_selections(run)
        data[name] = list(dict.fromkeys(archs))
        write_json(run.path / SELECTIONS_FILE, data)


def delete_selection(run: RunDir, name: str) -> None:
    access.require_act(auth.current(), run)
    with state_lock(run):
        data = saved_selections(run)
        data.pop(name, None)
        write_json(run.path / SELECTIONS_FILE, data)


def free_name(root: Path, base: str) -> str:
    """``base-1``, ``base-2``, ... : the first name not taken under ``root``."""
    i = 1
    while (root / f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


# ---- pending decisions (the basket applied as one decision; in the run directory) -----------
PENDING_FILE = "ui/pending.json"


def pending(run: RunDir) -> list[Action]:
    """The pending actions (entries of the file that are not actions are left out)."""
    try:
        data = read_json(run.path / PENDING_FILE, default=[]) or []
    except ValueError:
        return []
    out = []
    for n, a in enumerate(data if isinstance(data, list) else [], 1):
        try:
            out.append(Action.from_dict(a, f"pending action {n}"))
        except InvalidInput:
            continue
    return out


def _write_pending(run: RunDir, actions: Sequence[Action]) -> None:
    access.require_act(auth.current(), run)
    write_json(run.path / PENDING_FILE, [a.to_dict() for a in actions])


def add_pending(run: RunDir, actions: Sequence[Action]) -> int:
    """Add actions, without their evidence (a later action on the same stage and component
    replaces an earlier one); returns how many are pending."""
    with state_lock(run):
        current = pending(run)
        for a in actions:
            current = [b for b in current if (b.stage, b.target) != (a.stage, a.target)]
            current.append(replace(a, evidence=None))
        _write_pending(run, current)
        return len(current)


def remove_pending(run: RunDir, index: int) -> None:
    with state_lock(run):
        current = pending(run)
        if 0 <= index < len(current):
            current.pop(index)
        _write_pending(run, current)


def clear_pending(run: RunDir) -> None:
    _write_pending(run, [])
