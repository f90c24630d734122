"""1 · Search space: the template network ("lego view"), the data set, presets and YAML."""

import streamlit as st
import yaml

from nasnav.config import SOURCE_KIND, list_presets, load_config, load_user_yaml, preset_path
from nasnav.jobs.control import running_job
from nasnav.model.ops import list_ops
from nasnav.store.run_dir import RunDir
from nasnav.ui import guide, lego, space_edit, state, store, widgets
from nasnav.ui.diagram import template_dot
from nasnav.workflow.runs import create_run

widgets.page_setup()
st.title("1 · Search space")

with widgets.guarded():  # every error is a message on the page, never a traceback
    path = state.run_path()
    run, cfg = store.load(path) if path is not None else (None, None)
    if run is not None:
        widgets.run_header(run, cfg)
    widgets.callout(guide.SPACE, run)


    def reset_draft(config) -> None:
        """Start editing from a config (the open run's, or a preset's)."""
        for key in [k for k in st.session_state if str(k).startswith(("sp_", "data_"))]:
            del st.session_state[key]
        st.session_state["draft"] = space_edit.draft_from(config.to_dict()["space"])
        st.session_state["draft_data"] = config.to_dict()["data"]
        st.session_state["draft_base"] = config.to_dict()


    owner = str(path) if path is not None else "no run"
    if st.session_state.get("draft_owner") != owner:
        reset_draft(cfg if cfg is not None else load_config(preset_path("digits")))
        st.session_state["draft_owner"] = owner
    draft = st.session_state["draft"]

    live = running_job(run) if run is not None else None
    why_not = space_edit.editable(run) if run is not None else None
    if live:
        st.warning(f"A {live.get('job')} job is running on this run: the space is read-only until it ends.")
    elif why_not:
        st.info(f"Read-only for this run: {why_not}.", icon=":material/lock:")
    locked = bool(live)

    # ---- presets and YAML ----
    with st.expander("Presets and YAML", expanded=run is None):
        p1, p2, p3 = st.columns([2, 1, 2], vertical_alignment="bottom")
        preset = p1.selectbox("Preset", list_presets(), key="sp_preset_pick")
        if p2.button("Load preset", key="sp_load_preset", disabled=locked):
            with widgets.guarded("Load preset"):
                reset_draft(load_config(preset_path(preset)))
                st.rerun()
        p3.download_button("Download space YAML", yaml.safe_dump(space_edit.clean(draft), sort_keys=False),
                           file_name="space.yaml", mime="application/x-yaml", key="sp_download")
        up = st.file_uploader("Load a space (or a whole config) from YAML", type=["yaml", "yml"], key="sp_upload")
        if up is not None and st.button("Use uploaded space", key="sp_use_upload", disabled=locked):
            with widgets.guarded("Load YAML"):
                raw = load_user_yaml(up.getvalue(), up.name)
                st.session_state["draft"] = space_edit.draft_from(space_edit.space_from_upload(raw, up.name))
                st.rerun()

    # ---- data ----
    st.subheader("Data")
    data = lego.data_section(st.session_state["draft_data"], locked)
    kind = SOURCE_KIND.get(data["source"], "image")
    info = None
    with widgets.guarded("Data preview"):
        info = store.data_preview({k: v for k, v in data.items()}, (cfg.seed if cfg else 0))
        lego.data_preview(info)

    # ---- stages ----
    st.subheader("Template network")
    ops = list_ops(kind)
    st.session_state.setdefault("sp_stem", int(draft.get("stem_channels", 16)))
    st.columns(4)[0].number_input("Stem channels", min_value=1, max_value=4096, step=8, key="sp_stem", disabled=locked)
    draft["stem_channels"] = int(st.session_state["sp_stem"])
    lego.stage_grid(draft, ops, locked)

    issues = space_edit.problems(draft, kind)
    if issues:
        st.error("This space cannot be saved yet:\n" + "\n".join(f"- {p}" for p in issues))
    else:
        lego.space_metrics(draft, kind, info)
        st.graphviz_chart(template_dot(space_edit.to_space(draft, kind)), width="stretch")

    # ---- save ----
    st.subheader("Save")
    s1, s2, s3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    if run is not None and not why_not:
        if s1.button("Save space", key="sp_save", type="primary", disabled=bool(issues) or locked):
            with widgets.guarded("Save space"):
                space_edit.save_to_run(run, space_edit.build_config(st.session_state["draft_base"], draft, data,
                                                                    str(run.config_path)))
                st.toast("Space saved to the run.", icon=":material/save:")
                st.rerun()
    name = s2.text_input("New run name", value=state.free_name(state.runs_root(), "custom"), key="sp_new_name")
    if s3.button("Save as new run", key="sp_save_new", disabled=bool(issues)):
        with widgets.guarded("Save as new run"):
            new_cfg = space_edit.build_config(st.session_state["draft_base"], draft, data, "space editor")
            new = create_run(new_cfg, state.runs_root() / state.check_run_name(name))
            state.open_run(new.path)
            st.session_state["draft_owner"] = str(RunDir(new.path).path)
            st.toast(f"Run {new.path.name} created.", icon=":material/check_circle:")
            st.rerun()
    if run is not None:
        widgets.page_link(guide.SUPERNET, "Next: train the supernet", icon=":material/model_training:")
