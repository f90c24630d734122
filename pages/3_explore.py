"""3 · Explore: search, the search-space map linked to candidate information, fitness, decisions, rounds."""

import streamlit as st

from nasnav.ui import explore, guide, predict_panels, steer, store, widgets

widgets.page_setup()
st.title("3 · Explore")

with widgets.guarded():  # every error is a message on the page, never a traceback
    run, cfg = widgets.open_run_page(guide.EXPLORE)

    k = explore.view_round(run)
    current = run.current_round()
    space = store.space(run, cfg, k)
    if k != current:
        st.info(f"Showing round {k}, the latest with scored candidates; round {current} is prepared but not run yet.",
                icon=":material/info:")

    with st.container(border=True):
        if steer.next_round_ready(run):
            steer.next_round_panel(run)
        else:
            st.markdown(f"**Search** · round {k} · {space.size():,} architectures in the space")
            explore.search_controls(run, cfg, k)
        widgets.progress(run, ("search", "round", "spotcheck", "analyze", "supernet"))

    explore.scatter_and_selection(run, cfg, k, space)

    # keyed: a rerun (undo, redo, accept) stays on the tab in use; on_change: only the open tab runs
    tabs = st.tabs(["Fitness", "Pareto front", "Decisions", "Predictions", "Set operations", "Rounds", "Spot check"],
                   key="ex_tabs", on_change="rerun")
    views = [lambda: steer.fitness_views(run, cfg, k), lambda: steer.pareto_view(run, k),
             lambda: steer.decision_panel(run, cfg, store.space(run, cfg, current), current),
             lambda: predict_panels.predictions_tab(run, cfg, k),
             lambda: steer.set_operations(run), lambda: steer.rounds_panel(run, cfg),
             lambda: steer.spotcheck_panel(run, k)]
    for tab, view in zip(tabs, views):
        if tab.open:
            with tab:
                view()
