"""Who may do what on a lab server: every action the pages offer on a run, checked here, server-side.

Without logins the app has one user, ``LOCAL``, who may do everything (the app as it always was).
With logins (Streamlit's OpenID Connect, ``ui/auth.py``) each user owns the runs they create (their
workspace; ``RUN/owner.json``). A run is private to its owner unless shared, and then readable by
everyone logged in, never writable. Starting, stopping, deciding (prune, pin, undo, redo, pending
actions, saved selections, the space), sharing and deleting need the owner or an admin. Each function
below checks before it acts and raises ``Forbidden`` (an InvalidInput: the page shows it as an
error) whatever the page showed, so a hidden or stale button, a URL or a crafted request gets the
same answer. Jobs go through ``jobs.slots``: the per-user and global limits, and the queue.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nasnav.errors import InvalidInput
from nasnav.jobs import control, slots
from nasnav.jobs.control import running_job
from nasnav.steering.actions import Action
from nasnav.store.owner import Ownership, read_owner, write_owner
from nasnav.store.run_dir import RunDir, list_runs
from nasnav.workflow import decisions
from nasnav.workflow.runs import create_run as _create_run


class Forbidden(InvalidInput):
    """The user may not do this on this run (or may not see it)."""


@dataclass(frozen=True)
class User:
    id: str  # the login's e-mail (or subject): what owner.json records
    name: str = ""
    admin: bool = False


LOCAL = User(slots.LOCAL, "local user", admin=True)  # the one user of an app without logins


@dataclass(frozen=True)
class Lab:
    """The server's settings: whether logins are on, the admins, the job limits."""

    logins: bool = False
    admins: frozenset[str] = field(default_factory=frozenset)
    limits: slots.Limits = field(default_factory=slots.Limits)

    @classmethod
    def from_settings(cls, settings: Mapping, logins: bool, where: str = "[nasnav]") -> Lab:
        """From the ``[nasnav]`` table of secrets.toml: ``admins`` (a list of e-mails), ``jobs_per_user``,
        ``jobs_total``."""
        admins = settings.get("admins", [])
        if isinstance(admins, str) or not isinstance(admins, Iterable) or not all(isinstance(a, str) for a in admins):
            raise InvalidInput(f"{where} admins: {admins!r} is not a list of e-mail addresses, e.g. admins = [\"ada@lab.org\"]")
        return cls(logins, frozenset(a.strip().lower() for a in admins if a.strip()), slots.Limits.from_settings(settings, where))

    def user(self, user_id: str, name: str = "") -> User:
        uid = (user_id or "").strip().lower()
        if not uid or uid == slots.LOCAL:
            raise Forbidden(f"login without a usable e-mail or subject ({user_id!r}); ask the provider to send the email claim")
        return User(uid, name or uid, admin=uid in self.admins)


# ---- the rules ------------------------------------------------------------------------------------------
def may_view(user: User, run: RunDir) -> bool:
    if user.admin:
        return True
    o = read_owner(run)
    return o is not None and (o.owner == user.id or o.shared)


def may_act(user: User, run: RunDir) -> bool:
    if user.admin:
        return True
    o = read_owner(run)
    return o is not None and o.owner == user.id


def require_view(user: User, run: RunDir) -> None:
    if not may_view(user, run):
        raise Forbidden(f"run '{run.name}': not yours and not shared with you; open one of your runs or a shared one")


def require_act(user: User, run: RunDir, what: str = "change") -> None:
    require_view(user, run)
    if not may_act(user, run):
        o = read_owner(run)
        raise Forbidden(f"run '{run.name}' is {o.owner if o else 'nobody'}'s, shared read-only: only its owner or an "
                        f"admin may {what} it; create your own run to work on")


def open_run(user: User, path: str | Path) -> RunDir:
    """The run at ``path`` if it is one and the user may see it (a link or URL can name any run)."""
    run = RunDir(path)
    if not run.exists():
        raise InvalidInput(f"run '{run.name}': not found")
    require_view(user, run)
    return run


def visible_runs(user: User, root: str | Path) -> list[dict]:
    """``list_runs`` of what the user may see, each with its owner, shared and mine (may act)."""
    out = []
    for r in list_runs(root):
        run = RunDir(r["path"])
        if may_view(user, run):
            o = read_owner(run)
            out.append({**r, "owner": o.owner if o else "", "shared": bool(o and o.shared), "mine": may_act(user, run)})
    return out


# ---- actions on a run ----------------------------------------------------------------------------------
def create_run(user: User, cfg, path: str | Path) -> RunDir:
    """A new run owned by ``user`` (private). Without logins no owner file is written."""
    run = _create_run(cfg, path)
    if user != LOCAL:
        write_owner(run, Ownership(user.id, shared=False))
    return run


def share(user: User, run: RunDir, shared: bool) -> None:
    require_act(user, run, "share")
    o = read_owner(run)
    if o is None:
        raise InvalidInput(f"run '{run.name}' has no owner (made without logins): only an admin sees it; nothing to share")
    write_owner(run, Ownership(o.owner, bool(shared)))


def start_job(user: User, run: RunDir, job: str, args: list[str], limits: slots.Limits, lane: str | None = None) -> int | None:
    """Start the job now or queue it (``jobs.slots.submit``): None if it started, else its place in the queue."""
    require_act(user, run, "start jobs on")
    return slots.submit(run, job, args, limits, lane=lane)


def stop_job(user: User, run: RunDir, lane: str | None = None) -> bool:
    """Stop the run's job (in ``lane``), or take it out of the queue; whether there was one."""
    require_act(user, run, "stop jobs on")
    cancelled = slots.cancel(run, lane)
    return control.stop_job(run, lane=lane) or cancelled


def decide(user: User, run: RunDir, cfg, actions: Sequence[Action], source: str = "analyst",
           at_round: int | None = None) -> None:
    """Apply ``actions`` as the analyst's decision (``at_round``: the round the page showed; a stale one is refused)."""
    require_act(user, run, "decide on")
    decisions.apply_decision(run, cfg, actions, evidence=None, source=source, at_round=at_round)


def undo(user: User, run: RunDir, at_round: int | None = None) -> int:
    require_act(user, run, "undo on")
    return decisions.undo(run, at_round=at_round)


def redo(user: User, run: RunDir, at_round: int | None = None) -> int:
    require_act(user, run, "redo on")
    return decisions.redo(run, at_round=at_round)


def delete_run(user: User, run: RunDir) -> None:
    """Remove the run: its folder is renamed aside and stops being a run (no config) before its files go, so a
    half-deleted run never lists as one."""
    require_act(user, run, "delete")
    if any(running_job(run, lane) for lane in slots.LANES):
        raise InvalidInput(f"run '{run.name}' has a running job; stop it before deleting the run")
    for lane in slots.LANES:
        slots.cancel(run, lane)
    aside = run.path.with_name(f".deleted-{run.name}-{time.time_ns()}")
    os.rename(run.path, aside)
    RunDir(aside).config_path.unlink(missing_ok=True)
    shutil.rmtree(aside, ignore_errors=True)


# ---- disk use ------------------------------------------------------------------------------------------
def disk_usage(path: str | Path) -> int:
    """Bytes of the files under ``path`` (links not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(folder, f)).st_size
            except OSError:
                continue
    return total


def workspace_usage(user: User, root: str | Path) -> int:
    """Bytes of the runs the user owns (without logins: every run)."""
    return sum(disk_usage(r["path"]) for r in list_runs(root)
               if user == LOCAL or (read_owner(RunDir(r["path"])) or Ownership("")).owner == user.id)
