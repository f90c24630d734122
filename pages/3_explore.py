"""3 · Explore: search, the search-space map linked to candidate information, fitness, decisions, rounds."""

import streamlit as st

from nasnav.ui import explore, guide, steer, store, widgets

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

    fit_tab, pareto_tab, dec_tab, sets_tab, rounds_tab, spot_tab = st.tabs(
        ["Fitness", "Pareto front", "Decisions", "Set operations", "Rounds", "Spot check"])
    with fit_tab:
        steer.fitness_views(run, cfg, k)
    with pareto_tab:
        steer.pareto_view(run, k)
    with dec_tab:
        steer.decision_panel(run, cfg, store.space(run, cfg, current), current)
    with sets_tab:
        steer.set_operations(run)
    with rounds_tab:
        steer.rounds_panel(run, cfg)
    with spot_tab:
        steer.spotcheck_panel(run, k)
