"""1 · Search space: the template network ("lego view"), the data set, presets and YAML."""

import streamlit as st

from nasnav.config import SOURCE_KIND, load_config, preset_path
from nasnav.jobs.control import running_job
from nasnav.markdown import message
from nasnav.model.ops import list_ops
from nasnav.ui import guide, lego, space_edit, space_panels, state, store, widgets
from nasnav.ui.diagram import template_dot

widgets.page_setup()
st.title("1 · Search space")

with widgets.guarded():  # every error is a message on the page, never a traceback
    path = state.run_path()
    run, cfg = store.load(path) if path is not None else (None, None)
    if run is not None:
        widgets.run_header(run, cfg)
    widgets.callout(guide.SPACE, run)

    k = run.current_round() if run is not None else 0
    owner = f"{path}@{k}" if path is not None else "no run"  # a new round shows that round's space
    if st.session_state.get("draft_owner") != owner:
        space_panels.reset_draft(cfg if cfg is not None else load_config(preset_path(guide.DEFAULT_PRESET)),
                                 store.space(run, cfg, k).to_dict() if run is not None else None)
        st.session_state["draft_owner"] = owner
    draft = st.session_state["draft"]

    live = running_job(run) if run is not None else None
    why_not = space_edit.editable(run) if run is not None else None
    if live:
        st.warning(f"A {live.get('job')} job is running on this run: the space is read-only until it ends.")
    elif why_not:
        st.info(f"Read-only for this run: {why_not}.", icon=":material/lock:")
    locked = bool(live)

    space_panels.presets_and_yaml(draft, locked, expanded=run is None)

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
    space_panels.component_list(kind)
    st.session_state.setdefault("sp_stem", int(draft.get("stem_channels", 16)))
    st.columns(4)[0].number_input("Stem channels", min_value=1, max_value=4096, step=8, key="sp_stem", disabled=locked)
    draft["stem_channels"] = int(st.session_state["sp_stem"])
    lego.stage_grid(draft, ops, locked)

    issues = space_edit.problems(draft, kind)
    if issues:
        st.error("This space cannot be saved yet:\n" + "\n".join(f"- {message(p)}" for p in issues))
    else:
        lego.space_metrics(draft, kind, info)
        st.graphviz_chart(template_dot(space_edit.to_space(draft, kind)), width="stretch")

    space_panels.save(run, why_not, draft, data, issues, locked)
    if run is not None:
        widgets.next_link(run, guide.SPACE)
