"""Logins through Streamlit's own OpenID Connect support, and who the session's user is.

An ``[auth]`` table in ``.streamlit/secrets.toml`` turns logins on (README, "A lab server"); then the
app shows nothing but a login button until the provider says who is there, and every action goes
through ``workflow.access`` with that user. Without it the app has one user (``access.LOCAL``), as
always. The ``[nasnav]`` table (or the environment: NASNAV_ADMINS, NASNAV_JOBS_PER_USER,
NASNAV_JOBS_TOTAL) names the admins and the job limits.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from nasnav.jobs import slots
from nasnav.store.run_dir import RunDir
from nasnav.workflow import access

ENV = {"admins": "NASNAV_ADMINS", "jobs_per_user": "NASNAV_JOBS_PER_USER", "jobs_total": "NASNAV_JOBS_TOTAL"}


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets.toml: no logins
        return {}


def lab() -> access.Lab:
    """The server's settings: secrets' [nasnav] table, over it the environment."""
    secrets = _secrets()
    settings = dict(secrets.get("nasnav") or {})
    for key, var in ENV.items():
        if os.environ.get(var):
            settings[key] = os.environ[var].split(",") if key == "admins" else os.environ[var]
    return access.Lab.from_settings(settings, logins="auth" in secrets, where="secrets.toml [nasnav] (or NASNAV_*)")


def user() -> access.User | None:
    """The session's user: ``access.LOCAL`` without logins, None when logins are on and nobody is logged in."""
    settings = lab()
    if not settings.logins:
        return access.LOCAL
    info = st.user
    if not info.get("is_logged_in"):
        return None
    return settings.user(str(info.get("email") or info.get("sub") or ""), str(info.get("name") or ""))


def current() -> access.User:
    """The user an action is taken for (refused when nobody is logged in)."""
    who = user()
    if who is None:
        raise access.Forbidden("nobody is logged in; log in first")
    return who


def may_act(run: RunDir) -> bool:
    who = user()
    return who is not None and access.may_act(who, run)


def gate(root: Path) -> access.User:
    """app.py's first step: start the job queue's thread; with logins, the login screen (and st.stop())
    until someone is logged in, then who it is and a logout button in the sidebar."""
    try:
        settings = lab()
        slots.ensure_pump(root, settings.limits)
        who = user()
    except ValueError as e:  # bad settings, or a login without an e-mail or subject
        st.error(str(e))
        st.stop()
    if who is None:
        st.title("nasnav")
        st.markdown("This nasnav server is shared by a lab: log in to see your runs and start your own.")
        if st.button("Log in", key="auth_login", type="primary", icon=":material/login:"):
            st.login()
        st.stop()
    if settings.logins:
        with st.sidebar:
            st.text(f"Logged in as {who.name} ({who.id}){' · admin' if who.admin else ''}")  # plain text: no markup from names
            if st.button("Log out", key="auth_logout", icon=":material/logout:"):
                st.logout()
    return who
