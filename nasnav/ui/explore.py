"""Explore page, part 1: search controls, the linked scatterplot and the selection panel."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from nasnav.analysis import trust
from nasnav.choices import STRATEGIES
from nasnav.config import config_from_dict, save_config
from nasnav.jobs import commands
from nasnav.jobs.control import running_job
from nasnav.space import SearchSpace
from nasnav.steering.actions import selection_actions
from nasnav.store import layout
from nasnav.store.run_dir import RunDir
from nasnav.ui import charts, guide, selection, state, store, widgets
from nasnav.ui.diagram import template_dot

METHODS = ("mds", "pca", "tsne", "umap")
STRATEGY_HELP = ("**random**: uniform draws; **evolution**: mutate the best of a sample; **local**: best neighbour, "
                 "with restarts; **guided** (the presets' default): a model of accuracy fitted on the scored candidates "
                 "picks what to score next, every second one a neighbour of the best score")
SEL_KEY = "explore_selection"  # the active selection (list of arch strings), shared with page 4


def view_round(run: RunDir) -> int:
    """The round to show: the current one once it has candidates, else the latest that has."""
    k = run.current_round()
    with_cands = [j for j in run.rounds() if j <= k and store.mtime(run.round_dir(j) / layout.CANDIDATES)]
    if not with_cands or with_cands[-1] == k:
        return k
    return with_cands[-1]


def _save_search_settings(run: RunDir, cfg, strategy: str, budget: int, max_params: int, max_flops: int) -> None:
    """Keep the chosen search settings in the run's config, so later rounds use them too."""
    raw = cfg.to_dict()
    new = {"strategy": strategy, "budget": int(budget), "max_params": int(max_params) or None,
           "max_flops": int(max_flops) or None}
    if all(raw["search"].get(k) == v for k, v in new.items()):
        return
    raw["search"].update(new)
    save_config(config_from_dict(raw, str(run.config_path)), run.config_path)


def search_controls(run: RunDir, cfg, k: int) -> None:
    """Strategy, budget and constraints, and the start / pause / resume buttons of the search job."""
    c = st.columns(4)
    strategy = c[0].selectbox("Strategy", STRATEGIES, index=STRATEGIES.index(cfg.search.strategy), key="ex_strategy",
                              help=STRATEGY_HELP)
    budget = c[1].number_input("Budget (candidates)", min_value=1, max_value=100_000, value=int(cfg.search.budget),
                               step=10, key="ex_budget")
    max_params = c[2].number_input("Max params (0: none)", min_value=0, value=int(cfg.search.max_params or 0),
                                   step=1000, key="ex_max_params")
    max_flops = c[3].number_input("Max FLOPs (0: none)", min_value=0, value=int(cfg.search.max_flops or 0),
                                  step=100_000, key="ex_max_flops")
    args = commands.search(run, strategy, budget)
    resume = commands.search(run, strategy, budget, resume=True)
    trained = (run.round_dir(k) / layout.SUPERNET).exists()
    widgets.job_panel(
        run, "search", args, key="ex_search", page=guide.EXPLORE, start_label=guide.START_SEARCH, stop_label="Pause",
        resume_label=guide.RESUME_SEARCH, resume_args=resume,
        disabled_reason=None if trained else "Train this round's supernet first (page 2, or Start next round).",
        before_start=lambda: _save_search_settings(run, cfg, strategy, budget, max_params, max_flops), poll=False)


def active_selection(run: RunDir, chart_sel: list[str]) -> tuple[str, list[str]]:
    """The selection the actions apply to: the chart's, or a saved one the analyst picked."""
    saved = state.saved_selections(run)
    if not saved:  # one source only: no radio with a single option
        st.session_state.pop("ex_sel_source", None)
        return "chart selection", chart_sel
    options = ["chart selection"] + [f"saved: {n}" for n in saved]
    src = st.session_state.get("ex_sel_source", "chart selection")
    if src not in options:
        st.session_state.pop("ex_sel_source", None)
    src = st.radio("Selection", options, key="ex_sel_source", horizontal=True,
                   help="Brush or click the scatterplot, or use a saved selection")
    if src == "chart selection":
        return src, chart_sel
    return src, saved.get(src.removeprefix("saved: "), [])


def scatter_and_selection(run: RunDir, cfg, k: int, space: SearchSpace) -> None:
    """The search-space view linked to the candidate-information view (inside a fragment that
    polls while a job runs, so new candidates arrive live)."""
    live = running_job(run) is not None

    @st.fragment(run_every=2.0 if live else None)
    def view() -> None:
        with widgets.guarded("Scatterplot"):
            draw()

    def draw() -> None:
        cands = store.candidates(run, k)
        left, right = st.columns([3, 2])
        with left:
            m1, _ = st.columns([1, 2])
            default = METHODS.index(cfg.search.projection) if cfg.search.projection in METHODS else 0
            method = m1.selectbox("Projection", METHODS, index=default, key="ex_method",
                                  help="How architectures are laid out in 2-D; the layout is stable across rounds")
            t0 = time.perf_counter()
            with st.spinner("Projecting candidates ..."):
                points = store.scatter_points(run, cfg, k, method, predict=not live)
            n_scored = int(points["scored"].sum())
            predicted = "predicted" in points and points["predicted"].notna().any()
            event = st.altair_chart(charts.candidate_scatter(points),
                                    key=f"ex_scatter_{k}_{method}", on_select="rerun",
                                    selection_mode=[charts.BRUSH, charts.PICK], width="stretch")
            # below the chart: above it, the chart's toolbar (shown on hover, top right) covered its end
            st.caption(f"{n_scored:,} scored candidates (coloured) · {len(points) - n_scored:,} not yet scored "
                       f"({'diamonds: predicted accuracy' if predicted else 'grey'}) · size = params · brush or click "
                       "to select")
            st.caption(spotcheck_line(run, k))  # how far the map's colours can be trusted
            st.session_state["ex_render_s"] = time.perf_counter() - t0
        event_sel = getattr(event, "selection", None)
        chart_sel = selection.archs_from_selection(event_sel, points)
        with right:
            src, sel = active_selection(run, chart_sel)
            st.session_state[SEL_KEY] = sel
            drawn = src == "chart selection" and selection.is_drawn(event_sel)
            selection_panel(run, cfg, k, space, cands, sel, src, drawn=drawn)
        if sel:
            d1, d2 = st.columns([3, 2])
            with d1:
                st.markdown("**Components the selection uses** (share of selected candidates)")
                st.graphviz_chart(template_dot(space, used=selection.components_used(space, sel)), width="stretch")
            with d2:
                st.markdown("**Accuracy: selection vs the rest**")
                st.altair_chart(charts.selection_distribution(cands, sel), width="stretch")

    view()


def spotcheck_line(run: RunDir, k: int) -> str:
    """One line: what round k's spot check says the one-shot score can be trusted for (both questions);
    "running" from the moment a spot-check job holds the run."""
    return trust.trust_line(store.spotcheck(run, k), running=running_job(run, layout.SPOTCHECK_LANE) is not None)


def selection_panel(run: RunDir, cfg, k: int, space: SearchSpace, cands: pd.DataFrame, sel: list[str],
                    src: str, drawn: bool = False) -> None:
    """The selected candidates: count, table and the actions on them. ``drawn``: a rectangle or
    clicked points exist on the chart (then an empty selection means they hold no scored candidate)."""
    if not sel and drawn:
        st.info("The rectangle holds no scored candidate (grey points are not scored yet). Drag a larger one, "
                "or double-click the chart to clear it.", icon=":material/touch_app:")
        return
    if not sel:
        st.info("Nothing selected. Drag a rectangle over the scatterplot (brush) or click points "
                "(shift-click adds); double-click clears.", icon=":material/touch_app:")
        return
    rows = cands[cands["arch"].isin(set(sel))].sort_values("one_shot_acc", ascending=False)
    rest = cands[~cands["arch"].isin(set(sel))]["one_shot_acc"]
    c = st.columns(3)
    c[0].metric("Selected", f"{len(sel):,}")
    c[1].metric("Mean one-shot acc", f"{rows['one_shot_acc'].mean():.3f}" if len(rows) else "–",
                delta=f"{rows['one_shot_acc'].mean() - rest.mean():+.3f} vs rest" if len(rows) and len(rest) else None)
    c[2].metric("Best", f"{rows['one_shot_acc'].max():.3f}" if len(rows) else "–")
    st.dataframe(rows[["arch", "one_shot_acc", "params", "flops"]].head(500), hide_index=True, height=210,
                 width="stretch", column_config={"arch": st.column_config.TextColumn("architecture", width="medium"),
                                                 "one_shot_acc": st.column_config.NumberColumn("one-shot acc", format="%.4f"),
                                                 "params": st.column_config.NumberColumn(format="localized"),
                                                 "flops": st.column_config.NumberColumn("FLOPs", format="localized")})
    primary = widgets.is_next(guide.EXPLORE, guide.KEEP_SELECTION, run)
    if widgets.button(st, guide.KEEP_SELECTION, key="ex_keep", type="primary" if primary else "secondary",
                 help="Prune every component no selected candidate uses (added to the pending decision)",
                 width="stretch"):
        with widgets.guarded("Keep only the selection"):
            actions = selection_actions(space, sel, mode="keep")
            if not actions:
                st.info("The selection uses every active component: nothing to prune.")
            else:
                state.add_pending(run, actions)
                st.rerun(scope="app")
    if widgets.button(st, "Retrain the best of these (page 4)", key="ex_to_retrain", width="stretch"):
        st.session_state["retrain_pick"] = sel[:5]
        st.session_state["retrain_pick_new"] = True  # page 4 opens on "choose candidates" with them
        try:
            st.switch_page(guide.PAGE_FILES[guide.RETRAIN])
        except Exception:
            st.caption("Open page 4 to retrain them.")
    if src == "chart selection":
        s1, s2 = st.columns([2, 1], vertical_alignment="bottom")
        free = f"selection {len(state.saved_selections(run)) + 1}"
        # keyed by the free name: once saved, the box is a new widget showing the next free one
        name = s1.text_input("Save selection as", value=free, key=f"ex_sel_name_{free}")
        if widgets.button(s2, "Save selection", key="ex_sel_save", width="stretch"):
            with widgets.guarded("Save selection"):
                state.save_selection(run, name, sel)
                st.toast(f"Saved '{name}' ({len(sel)} candidates).", icon=":material/save:")
                st.rerun(scope="app")  # the fragment alone would leave Set operations without it
