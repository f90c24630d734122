"""Shared helpers of the page AppTests (no tests here): a finished tiny run built once per test
session, and AppTest construction with the open run set in session state."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from nasnav.jobs.control import running_job, stop_job
from nasnav.store.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
st_config.set_option("client.showErrorDetails", "full")  # test failures should show the real message


def build_finished_run(base: Path) -> Path:
    """configs/tiny.yaml through supernet, search, retrain and export (about 20 s), once per session."""
    path = base / "finished_tiny"
    if (path / "final").is_dir():
        return path
    shutil.rmtree(path, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "nasnav", "run", str(REPO / "configs" / "tiny.yaml"), "--run-dir",
                           str(path), "--set", "steering.autopilot=false", "supernet.epochs=3", "search.budget=16",
                           "retrain.epochs=3"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"building the tiny run failed:\n{proc.stdout}\n{proc.stderr}")
    return path


def finished_copy(tmp_path_factory, tmp_path: Path) -> Path:
    """A private copy of the finished tiny run (tests change it)."""
    src = build_finished_run(tmp_path_factory.getbasetemp())
    dst = tmp_path / "runs" / "tiny-done"
    shutil.copytree(src, dst)
    return dst


def page(name: str, run: Path | None = None, **session) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / name), default_timeout=90)
    if run is not None:
        at.session_state["run_path"] = str(run)
    for k, v in session.items():
        at.session_state[k] = v
    return at


def ok(at: AppTest) -> AppTest:
    """No exception element on the page (errors are meant to be st.error messages)."""
    assert not at.exception, "\n".join(str(e.value) for e in at.exception)
    return at


def texts(at: AppTest) -> str:
    """All markdown, captions, alerts and metric labels/values on the page, as one string."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    for kind in (at.info, at.success, at.warning, at.error):
        parts += [a.value for a in kind]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def wait_job_gone(run: Path, timeout: float = 30) -> None:
    r = RunDir(run)
    deadline = time.time() + timeout
    while running_job(r) and time.time() < deadline:
        time.sleep(0.2)
    if running_job(r):
        stop_job(r)
