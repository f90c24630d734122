"""nasnav: human-in-the-loop one-shot neural architecture search. ``streamlit run app.py``."""

import streamlit as st

from nasnav.markdown import code
from nasnav.ui import auth, state, widgets

st.set_page_config(page_title="nasnav", page_icon=":material/explore:", layout="wide", initial_sidebar_state="expanded")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_search_space.py", title="1 · Search space", icon=":material/view_module:"),
    st.Page("pages/2_supernet.py", title="2 · Supernet training", icon=":material/model_training:"),
    st.Page("pages/3_explore.py", title="3 · Explore", icon=":material/scatter_plot:"),
    st.Page("pages/4_retrain.py", title="4 · Retrain & export", icon=":material/deployed_code:"),
]
nav = st.navigation(pages)
auth.gate(state.runs_root())  # with logins (secrets.toml [auth]): nothing but a login button until logged in
path = state.run_path()  # before the sidebar: a run the user may not see is refused on the page itself

with st.sidebar:
    if path is not None:
        st.markdown(f"**Open run:** {code(path.name)}")
    else:
        st.caption("No run open: create or open one on Home.")
    if nav.url_path != "":  # Home has its own switch in the page
        widgets.guide_toggle("guide_toggle_sidebar")

widgets.navigation_ready()
nav.run()
