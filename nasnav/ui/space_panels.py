"""Search-space page panels: the draft being edited, presets and YAML, saving to a run or a new run."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import yaml

from nasnav.config import list_presets, load_config, load_user_yaml, preset_path
from nasnav.model.ops import catalogue
from nasnav.store import layout
from nasnav.store.run_dir import RunDir
from nasnav.ui import auth, space_edit, state, widgets
from nasnav.workflow import access


def reset_draft(config, space_dict: dict | None = None) -> None:
    """Start editing from a config (the open run's, or a preset's); ``space_dict``: the open run's
    current round's space (pruned and pinned components included) instead of the config's."""
    for key in [k for k in st.session_state if str(k).startswith(("sp_", "data_"))]:
        del st.session_state[key]
    st.session_state["draft"] = space_edit.draft_from(space_dict or config.to_dict()["space"])
    st.session_state["draft_data"] = config.to_dict()["data"]
    st.session_state["draft_base"] = config.to_dict()


def presets_and_yaml(draft: dict, locked: bool, expanded: bool) -> None:
    """Load a preset or an uploaded YAML into the draft; download the draft as YAML."""
    with st.expander("Presets and YAML", expanded=expanded):
        p1, p2, p3 = st.columns([2, 1, 2], vertical_alignment="bottom")
        preset = p1.selectbox("Preset", list_presets(), key="sp_preset_pick")
        if p2.button("Load preset", key="sp_load_preset", disabled=locked):
            with widgets.guarded("Load preset"):
                reset_draft(load_config(preset_path(preset)))
                st.rerun()
        p3.download_button("Download space YAML", yaml.safe_dump(space_edit.clean(draft), sort_keys=False),
                           file_name=layout.SPACE, mime="application/x-yaml", key="sp_download")
        up = st.file_uploader("Load a space (or a whole config) from YAML", type=["yaml", "yml"], key="sp_upload")
        if up is not None and st.button("Use uploaded space", key="sp_use_upload", disabled=locked):
            with widgets.guarded("Load YAML"):
                raw = load_user_yaml(up.getvalue(), up.name)
                st.session_state["draft"] = space_edit.draft_from(space_edit.space_from_upload(raw, up.name))
                st.rerun()


def save(run: RunDir | None, why_not: str | None, draft: dict, data: dict, issues: list[str], locked: bool) -> None:
    """Save the draft into the open run (while it is editable), or as a new run."""
    st.subheader("Save")
    s1, s2, s3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    if run is not None and not why_not:
        if s1.button("Save space", key="sp_save", type="primary", disabled=bool(issues) or locked):
            with widgets.guarded("Save space"):
                space_edit.save_to_run(run, space_edit.build_config(st.session_state["draft_base"], draft, data,
                                                                    str(run.config_path)), auth.current())
                st.toast("Space saved to the run.", icon=":material/save:")
                st.rerun()
    name = s2.text_input("New run name", value=state.free_name(state.runs_root(), "custom"), key="sp_new_name")
    if s3.button("Save as new run", key="sp_save_new", disabled=bool(issues)):
        with widgets.guarded("Save as new run"):
            new_cfg = space_edit.build_config(st.session_state["draft_base"], draft, data, "space editor")
            new = access.create_run(auth.current(), new_cfg, state.runs_root() / state.check_run_name(name))
            state.open_run(new.path)
            st.session_state["draft_owner"] = str(RunDir(new.path).path)
            st.toast(f"Run {new.path.name} created.", icon=":material/check_circle:")
            st.rerun()


def component_list(kind: str) -> None:
    """The components a stage may hold for this kind of data: built-in and own ones, with descriptions."""
    with st.expander("Components", expanded=False):
        st.caption("Own components come from files a config names (`components:`) or `nasnav app --components`; "
                   "see the README.")
        st.table(pd.DataFrame(catalogue(kind)).set_index("component"))
