"""4 · Retrain & export: retrain chosen networks from scratch, compare with the estimate, download."""

import streamlit as st

from nasnav.ui import explore, final, guide, store, widgets

widgets.page_setup()
st.title("4 · Retrain & export")

with widgets.guarded():  # every error is a message on the page, never a traceback
    run, cfg = widgets.open_run_page(guide.RETRAIN, guide_here=False)
    walkthrough = st.container()  # drawn once the picker knows what a press retrains
    plan = None

    k = explore.view_round(run)
    cands = store.candidates(run, k).dropna(subset=["arch", "one_shot_acc"])
    with st.container(border=True):
        if cands.empty:
            st.info("No scored candidates yet: run a search on Explore first.", icon=":material/scatter_plot:")
            widgets.page_link(guide.EXPLORE, "3 · Explore", icon=":material/scatter_plot:")
        else:
            plan = final.picker(run, cfg, cands, k)
        widgets.progress(run, ("retrain", "export"))
    with walkthrough:
        widgets.callout(guide.RETRAIN, run, plan)
    final.live_curves(run)

    st.subheader("Results")
    finals = final.results(run)
    final.downloads(run, finals)
