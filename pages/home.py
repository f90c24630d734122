"""Home: what nasnav does, create or open a run, the guided walkthrough switch."""

import streamlit as st

from nasnav.markdown import text
from nasnav.store.run_dir import RunDir
from nasnav.ui import guide, run_panels, state, widgets
from nasnav.ui.diagram import LOOP_DOT

widgets.page_setup()
st.title("nasnav")

with widgets.guarded():  # every error is a message on the page, never a traceback
    st.markdown(
        "**Steer a neural architecture search by eye.** Build a template network out of stages of candidate "
        "layers, train it once as a weight-sharing *supernet*, score thousands of sub-networks with those "
        "weights, and see where the good ones are: a map of the search space and a fitness score for every "
        "component. Prune what does not help, round after round, then retrain the winner from scratch and "
        "export it. After NAS-Navigator (Tyagi, Xie, Mueller, IEEE VIS 2022)."
    )
    left, right = st.columns([3, 2], vertical_alignment="center")
    with left:
        st.graphviz_chart(LOOP_DOT, width="stretch")
    with right:
        widgets.guide_toggle("guide_toggle_home")
        st.caption("The walkthrough explains each step and highlights the next action. "
                   f"On the {guide.DEFAULT_PRESET} preset the whole loop takes a few minutes on a laptop CPU.")
        path = state.run_path()
        if path is not None:
            st.success(f"Open run: **{text(path.name)}**", icon=":material/folder_open:")
    run = RunDir(path) if path is not None else None
    widgets.callout(guide.HOME, run)

    root = state.runs_root()
    run_panels.run_tabs(root, run)

    if run is not None:
        st.divider()
        st.markdown("**Continue with the open run:**")
        cols = st.columns(4)
        for col, (page, label, icon) in zip(cols, [(guide.SPACE, "1 · Search space", ":material/view_module:"),
                                                   (guide.SUPERNET, "2 · Supernet training", ":material/model_training:"),
                                                   (guide.EXPLORE, "3 · Explore", ":material/scatter_plot:"),
                                                   (guide.RETRAIN, "4 · Retrain & export", ":material/deployed_code:")]):
            with col:
                widgets.page_link(page, label, icon)
