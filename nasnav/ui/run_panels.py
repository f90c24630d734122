"""Home page panels: create a run from a preset or a YAML file, open an existing run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from nasnav.config import config_from_dict, list_presets, load_config, load_user_yaml, preset_path
from nasnav.jobs import slots
from nasnav.store.run_dir import RunDir
from nasnav.ui import auth, guide, state, widgets
from nasnav.ui.state import free_name
from nasnav.workflow import access


def run_tabs(root: Path, run: RunDir | None) -> None:
    """Three tabs: create from a preset, create from YAML, open a run."""
    create_tab, upload_tab, open_tab = st.tabs(["Create from a preset", "Create from YAML", "Open a run"])
    with create_tab:
        presets = list_presets()
        c1, c2 = st.columns(2)
        preset = c1.selectbox("Preset", presets, index=presets.index(guide.DEFAULT_PRESET) if guide.DEFAULT_PRESET in presets else 0,
                              key="home_preset", help=f"{guide.DEFAULT_PRESET}: the default, where architecture "
                              "matters; digits: images, but nearly every network reaches 95-99 %; tiny: seconds")
        free = free_name(root, preset)
        # keyed by the free name: once it is taken the box is a new widget showing the next free one (the
        # browser would otherwise keep the typed or taken value)
        name = c2.text_input("Run name", value=free, key=f"home_name_{free}")
        if st.button(guide.CREATE_RUN, key="home_create",
                     type="primary" if widgets.is_next(guide.HOME, guide.CREATE_RUN, run) else "secondary"):
            with widgets.guarded("Create run"):
                cfg = load_config(preset_path(preset))
                new = access.create_run(auth.current(), cfg, root / state.check_run_name(name))
                state.open_run(new.path)
                st.rerun()

    with upload_tab:
        up = st.file_uploader("Config YAML", type=["yaml", "yml"], key="home_upload",
                              help="A full config (data, space, supernet, ...); see configs/ for examples")
        up_name = st.text_input("Run name", value=free_name(root, "custom"), key="home_upload_name")
        if st.button("Create run from YAML", key="home_create_yaml", disabled=up is None):
            with widgets.guarded("Create run from YAML"):
                raw = load_user_yaml(up.getvalue(), up.name)
                cfg = config_from_dict(raw, up.name, load_code=False)  # names only components already loaded
                new = access.create_run(auth.current(), cfg, root / state.check_run_name(up_name))
                state.open_run(new.path)
                st.rerun()

    with open_tab:
        user = auth.current()
        runs = access.visible_runs(user, root)
        workspace_line(user, root, runs)
        if not runs:
            st.info("No runs yet. Create one from a preset." if user == access.LOCAL else
                    "No runs of yours yet, and none shared with you. Create one from a preset.")
        else:
            table = pd.DataFrame(runs)
            table["updated"] = pd.to_datetime(table["updated"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
            cols = ["name", "stage", "state", "round", "best_acc", "updated"] + (["owner", "shared"] if auth.lab().logins else [])
            st.dataframe(table[cols], hide_index=True,
                         width="stretch", column_config={"best_acc": st.column_config.NumberColumn("best one-shot acc", format="%.4f")})
            names = [r["name"] for r in runs]
            o1, o2 = st.columns([3, 1], vertical_alignment="bottom")
            pick = o1.selectbox("Run", names, key="home_open_pick")
            if o2.button("Open run", key="home_open"):
                state.open_run(root / pick)
                st.rerun()
            chosen = next(r for r in runs if r["name"] == pick)
            if chosen["mine"]:
                manage(user, RunDir(root / pick), chosen["shared"], auth.lab().logins)


def workspace_line(user: access.User, root: Path, runs: list[dict]) -> None:
    """The user's disk use and jobs (running and waiting) against the limits."""
    jobs, limits = slots.usage(root, user.id), auth.lab().limits
    mine = sum(r["owner"] == user.id for r in runs) if user != access.LOCAL else len(runs)
    st.caption(f"Your workspace: {mine} run(s), {access.workspace_usage(user, root) / 1e6:,.1f} MB on disk · your jobs: "
               f"{jobs['mine']} running (at most {limits.per_user}), {jobs['queued_mine']} waiting · server: "
               f"{jobs['total']} of {limits.total} running, {jobs['queued']} waiting")


def manage(user: access.User, run: RunDir, shared: bool, logins: bool) -> None:
    """Share (with logins) or delete a run the user may act on; refused server-side otherwise."""
    m1, m2, m3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    if logins and m1.toggle("Shared read-only with everyone logged in", value=shared, key=f"home_share_{run.name}") != shared:
        with widgets.guarded("Share"):
            access.share(user, run, not shared)
            st.rerun()
    sure = m2.checkbox("Delete it, with all its files", key=f"home_delete_sure_{run.name}")
    if m3.button("Delete run", key="home_delete", disabled=not sure, icon=":material/delete:"):
        with widgets.guarded("Delete run"):
            access.delete_run(user, run)  # an open copy of it closes on the next rerun (state.run_path)
            st.rerun()
