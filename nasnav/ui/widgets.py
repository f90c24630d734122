"""Widgets shared by the pages: run header, job control panel with a polling progress
fragment, walkthrough callouts, page links and the error guard."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from nasnav.analysis import trust
from nasnav.jobs import slots
from nasnav.jobs.control import JobRunning, running_job
from nasnav.markdown import code, message, text
from nasnav.store.owner import read_owner
from nasnav.store.run_dir import RunDir
from nasnav.ui import auth, charts, cluster, guide, state, store
from nasnav.ui import queue as jobq
from nasnav.workflow import access

log = logging.getLogger("nasnav.ui")
RESUMABLE = ("stopped", "interrupted", "failed")


# ---- page setup ---------------------------------------------------------------------------------
_NAV = {"seen": False}  # set once app.py's st.navigation has run in this server process


def navigation_ready() -> None:
    """Called by app.py before ``nav.run()``."""
    _NAV["seen"] = True


def page_setup() -> None:
    """First call of every page. Because a pages/ folder sits next to app.py, a fresh server whose
    first request is a deep link (``/explore``) runs the page in Streamlit's legacy pages/ mode,
    without app.py (no layout, no sidebar), and stays in that mode until app.py's st.navigation
    runs. Turn the legacy mode off (what st.navigation itself does) and rerun through app.py."""

    ctx = get_script_run_ctx()
    if ctx is not None and not _NAV["seen"] and Path(ctx.main_script_path).name == "app.py":
        _NAV["seen"] = True  # at most one rerun, whatever happens
        try:
            from streamlit.runtime.pages_manager import PagesManager  # internal API: guarded, so imported here

            PagesManager.uses_pages_directory = False
        except ImportError:  # a later Streamlit without the legacy mode
            return
        st.rerun()


# ---- errors -------------------------------------------------------------------------------------
@contextlib.contextmanager
def guarded(what: str = "") -> Iterator[None]:
    """Show errors as messages, never tracebacks (st.stop / st.rerun pass through)."""
    try:
        yield
    except JobRunning as e:
        st.warning(message(e), icon=":material/hourglass_top:")
    except ValueError as e:  # messages quote values a user gave: shown as text, never as links or HTML
        st.error(message(f"{what + ': ' if what else ''}{e}"))
    except Exception as e:  # a bug: tell the user briefly, keep the traceback for the server log
        log.exception("unexpected error%s", f" in {what}" if what else "")
        st.error(message(f"{what + ': ' if what else ''}unexpected {type(e).__name__}: {e}. Details are in the server log."))


# ---- buttons ------------------------------------------------------------------------------------------
CLICK_TTL = 120.0  # s: a recorded click not acted on by then (its button was not drawn again) is dropped


def button(where, label: str, *, key: str, **kwargs) -> bool:
    """``where.button(label, key=key, ...)`` (``where``: st or a column) whose click is not lost when it is
    made while the page or a fragment reruns.

    A plain button's return value is Streamlit's one-shot trigger, read when the script reaches it. A click
    that lands during a rerun is folded into that run or the next, and the stopped run resets the shared
    triggers as it ends, so by the time the button is reached the click can be gone (a measured 4 to 9 of 12
    clicks made during a rerun were lost, inside a fragment or not). A callback runs as the next run
    starts, before any line of the script; it records the click in session state, read here."""
    flag = f"_clicked_{key}"

    def record() -> None:
        st.session_state[flag] = time.time()

    where.button(label, key=key, on_click=record, **kwargs)
    at = st.session_state.pop(flag, None)
    return at is not None and time.time() - at < CLICK_TTL


# ---- navigation and walkthrough ---------------------------------------------------------------------
def page_link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page; a plain hint when the page is run on its own (tests)."""
    try:
        st.page_link(guide.PAGE_FILES[page], label=label, icon=icon)
    except Exception:  # StreamlitAPIException outside st.navigation
        st.caption(f"→ {label}")


def next_link(run: RunDir, here: str) -> None:
    """A link to the page of the run's next step (from the walkthrough's one source), unless it is here."""
    step = guide.next_step(run)
    if step.page != here:
        page_link(step.page, f"Next: {step.why}", icon=":material/arrow_forward:")


def guide_toggle(key: str) -> bool:
    """The walkthrough switch; several on one screen stay in sync through state.GUIDE_KEY."""
    st.session_state[key] = state.walkthrough()

    def changed() -> None:
        st.session_state[state.GUIDE_KEY] = bool(st.session_state[key])

    st.toggle("Guided walkthrough", key=key, on_change=changed,
              help="Explains each step and highlights the one next action")
    return state.walkthrough()


def is_next(page: str, action: str, run: RunDir | None) -> bool:
    """Whether ``action`` on ``page`` is the walkthrough's next action (shown as the primary button)."""
    if not state.walkthrough():
        return False
    step = guide.next_step(run)
    return step.page == page and step.action == action


def callout(page: str, run: RunDir | None, plan=None) -> None:
    """The walkthrough's explanation of this page and the one next action (``plan``: what the Retrain page's
    selection retrains, ``retrain_plan.Plan``; by default what it retrains unchanged)."""
    if not state.walkthrough():
        return
    step = guide.next_step(run, plan)
    with st.container(border=True, key=f"guide_{page}"):
        st.markdown(f":material/explore: **Guided walkthrough.** {guide.EXPLAIN[page]}")
        if step.page == page:
            st.markdown(f"**Next:** press **{step.action}**: {step.why}.")
        else:
            st.markdown(f"**Next:** {step.why}.")
            page_link(step.page, f"Go to the page for '{step.action}'", icon=":material/arrow_forward:")


# ---- the run ------------------------------------------------------------------------------------------
def require_run():
    """(RunDir, Config) of the open run, or a message with a link home and st.stop()."""
    path = state.run_path()
    if path is None:
        st.info("No run is open. Create one or open an existing run on the home page.", icon=":material/folder_open:")
        page_link(guide.HOME, "Home: create or open a run", icon=":material/home:")
        st.stop()
    try:
        return store.load(path)
    except ValueError as e:
        st.error(message(f"Cannot open the run: {e}"))
        st.stop()


def open_run_page(page: str, guide_here: bool = True):
    """The top of a page that works on the open run: (RunDir, Config), after the run's header line and
    the walkthrough's callout for ``page`` (``guide_here=False``: the page draws it itself, once it knows
    what its buttons will do); without an open run, a link home and st.stop()."""
    run, cfg = require_run()
    run_header(run, cfg)
    if guide_here:
        callout(page, run)
    return run, cfg


def run_header(run: RunDir, cfg) -> None:
    """One line about the open run: name, round, job state."""
    status = run.read_status()
    k = run.current_round()
    cand = store.candidates(run, k)
    best = cand["one_shot_acc"].max() if len(cand) else None
    bits = [f"**Run** {code(run.path.name)}", f"{text(cfg.name or 'unnamed')} preset", f"round {k}",
            f"job: {status.get('job') or '–'} ({status['state']})"]
    if best is not None and best == best:
        bits.append(f"best one-shot {best:.3f}")
    st.caption(" · ".join(bits))
    if not auth.may_act(run):
        owner = read_owner(run)
        st.info(f"Read-only: this run is {plain(owner.owner if owner else 'nobody')}'s, shared with everyone logged in. "
                "Only its owner or an admin can start, stop or decide.", icon=":material/visibility:")


def plain(text: str) -> str:
    """``text`` shown as itself in Markdown (a login's name or e-mail is no markup)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~:])", r"\\\1", str(text))


# ---- jobs ------------------------------------------------------------------------------------------------
def _signature(run: RunDir) -> tuple:
    """What the job controls depend on: the status, and whether a process still holds the run (a job
    writes its final status a moment before it lets go of the lock and exits; without the second
    part the page would keep showing it as running)."""
    s = run.read_status()
    return (s.get("job"), s.get("state"), s.get("started"), running_job(run) is not None, slots.position(run) is not None)


def start(run: RunDir, job: str, args: list[str], lane: str | None = None) -> bool:
    """Start a job, or queue it when its owner or the server is at the job limit (the page says where it
    waits); a message (not a traceback) if the run already has one or the user may not."""
    try:
        place = access.start_job(auth.current(), run, job, args, auth.lab().limits, lane=lane)
    except JobRunning as e:
        st.warning(message(e), icon=":material/hourglass_top:")
        return False
    except ValueError as e:
        st.error(message(e))
        return False
    if place is not None:
        st.toast(f"{job} queued: place {place} (the job limit is reached); it starts when a slot frees up",
                 icon=":material/schedule:")
    st.session_state[f"jobsig_{run.path}"] = None  # the fragment will see a change and refresh the page
    return True


def stop(run: RunDir, lane: str | None = None) -> None:
    """Stop the run's job (in ``lane``) or take it out of the queue (owner or admin only)."""
    with st.spinner("Stopping ..."):
        access.stop_job(auth.current(), run, lane=lane)


def job_panel(run: RunDir, job: str, start_args: list[str] | None, *, key: str, start_label: str = "Start",
              resume_args: list[str] | None = None, resume_label: str = "Resume", stop_label: str = "Stop",
              page: str | None = None, disabled_reason: str | None = None,
              before_start: Callable[[], None] | None = None, poll: bool = True) -> None:
    """Start / stop / resume buttons for one kind of job, and its live progress."""
    live = running_job(run) or slots.position(run)
    status = run.read_status()
    mine = status.get("job") == job
    cols = st.columns([1, 1, 1, 3])
    primary = page is not None and is_next(page, start_label, run)
    readonly = not auth.may_act(run)  # the buttons say so; the server refuses anyway (workflow.access)
    if readonly:
        disabled_reason = disabled_reason or "Read-only: only the run's owner or an admin can start or stop jobs."
    if button(cols[0], start_label, key=f"{key}_start", type="primary" if primary else "secondary",
                      disabled=bool(live) or start_args is None or bool(disabled_reason), width="stretch"):
        with guarded(start_label):
            if before_start:
                before_start()
            if start(run, job, start_args or []):
                st.rerun()
    if button(cols[1], stop_label, key=f"{key}_stop", disabled=not live or readonly, width="stretch",
                      help="Stop the running job; its work so far is kept and it can be resumed"):
        with guarded(stop_label):
            stop(run)
            st.rerun()
    can_resume = bool(resume_args) and not live and mine and status["state"] in RESUMABLE and not readonly
    resume_next = page is not None and is_next(page, resume_label, run)
    if button(cols[2], resume_label, key=f"{key}_resume", disabled=not can_resume, width="stretch",
                      type="primary" if resume_next and can_resume else "secondary"):
        with guarded(resume_label):
            if start(run, job, resume_args or []):
                st.rerun()
    if disabled_reason and not live:
        cols[3].caption(disabled_reason)
    elif isinstance(live, dict) and live.get("job") != job:
        cols[3].caption(f"A {live.get('job')} job is running on this run; one job at a time.")
    if poll:
        progress(run, (job,))


def progress(run: RunDir, jobs: tuple[str, ...]) -> None:
    """Live status of the run's job (if it is one of ``jobs``, or any running job), polled from
    status.json; the whole page is refreshed when a job starts, ends or fails."""
    path = str(run.path)
    st.session_state[f"jobsig_{path}"] = _signature(run)

    @st.fragment(run_every=1.0 if running_job(run) else 5.0)
    def _poll() -> None:
        with guarded("Job status"):
            _poll_once()

    def _poll_once() -> None:
        here = RunDir(path)
        slots.pump(here.path.parent, auth.lab().limits)  # jobs waiting for a slot (also pumped by the server's thread)
        if jobq.advance(here, auth.lab().limits):  # a queued retrain / export starts when the run is idle
            st.session_state[f"jobsig_{path}"] = None
        sig = _signature(here)
        if st.session_state.get(f"jobsig_{path}") != sig:
            st.session_state[f"jobsig_{path}"] = sig
            st.rerun(scope="app")  # a job started, finished or failed: refresh the whole page
        status_box(here, jobs)
        cluster.remote_jobs(here)  # Slurm jobs of the run, if it has any

    _poll()


def status_box(run: RunDir, jobs: tuple[str, ...]) -> None:
    """Progress bar, epoch, ETA and speed of the run's job; message and log tail on failure."""
    waiting = slots.position(run)
    if waiting:
        st.info(f"Queued: place {waiting[0]} of {waiting[1]} waiting for a free job slot (at most "
                f"{auth.lab().limits.per_user} jobs per user, {auth.lab().limits.total} on the server); it starts "
                "by itself. Stop takes it out of the queue.", icon=":material/schedule:")
    s = run.read_status()
    if s.get("job") not in jobs and s["state"] != "running":
        return
    job = s.get("job") or jobs[0]
    name = s.get("job") or job
    extra = s.get("extra") or {}
    if s["state"] == "running":
        bits = [s.get("message") or f"{name} running"]
        if extra.get("epochs"):
            bits.append(f"epoch {extra.get('epoch', 0)}/{extra['epochs']}")
        if s.get("eta_seconds") is not None:
            bits.append(f"ETA {_duration(s['eta_seconds'])}")
        if extra.get("samples_per_s"):
            bits.append(f"{extra['samples_per_s']:,.0f} samples/s")
        if s.get("started"):
            bits.append(f"running for {_duration(time.time() - s['started'])}")
        st.progress(min(1.0, max(0.0, float(s.get("progress") or 0.0))), text=f"**{name}** · " + " · ".join(bits))
    elif s["state"] == "done":
        st.success(message(f"{name}: {s.get('message') or 'finished'}"), icon=":material/check_circle:")
    elif s["state"] == "stopped":
        st.info(message(f"{name}: {s.get('message') or 'stopped'}"), icon=":material/pause_circle:")
    elif s["state"] in ("failed", "interrupted"):
        st.error(message(f"{name} {s['state']}: {s.get('error') or s.get('message') or 'no message'}"))
        tail = run.log_tail(name, 30)
        if tail:
            with st.expander("Log tail"):
                st.code(tail, language=None)


def answer_boxes(answers: dict, order: tuple[str, ...] = (trust.PRUNE, trust.PICK)) -> None:
    """A spot check's answers (``trust.answers``) in their own words: green where the one-shot score can be
    relied on (or nothing hangs on it), blue where it cannot."""
    for q in order:
        if q in answers:
            box = st.success if answers[q]["verdict"] in ("yes", "equivalent") else st.info
            box(answers[q]["text"], icon=":material/fact_check:")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def curves(df, height: int = 300) -> None:
    """Loss and accuracy curves (train vs val) side by side."""

    left, right = st.columns(2)
    left.altair_chart(charts.training_curves(df, "loss", height), width="stretch")
    right.altair_chart(charts.training_curves(df, "acc", height), width="stretch")
