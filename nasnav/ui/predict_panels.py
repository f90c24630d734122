"""Explore page, the surrogate's views: the recommended final candidate and why, the architectures
predicted best but not scored yet (one click scores them)."""

from __future__ import annotations

import math

import streamlit as st

from nasnav.jobs import commands
from nasnav.jobs.control import running_job
from nasnav.store import layout
from nasnav.store.run_dir import RunDir
from nasnav.ui import guide, store, widgets
from nasnav.workflow import predictions
from nasnav.workflow.track_record import pick_record

PREDICTED_N = 10  # rows of the "predicted best, not yet scored" list


def recommendation_panel(run: RunDir, cfg, k: int) -> None:
    """The candidate to retrain, by ``steering.pick``, with its own score, prediction and interval."""
    rec = store.recommended(run, k)
    if rec.empty:
        st.info("No scored candidates in this round's space yet.", icon=":material/info:")
        return
    top = rec.iloc[0]
    how = "the surrogate's estimate" if cfg.steering.pick == "surrogate" else "the best own score"
    st.markdown(f"**Recommended final candidate** (by {how}): `{top['arch']}`")
    st.caption(predictions.why(top, cfg.steering))
    best_own = store.candidates(run, k)["one_shot_acc"].max()
    if cfg.steering.pick == "surrogate" and top["score"] < best_own:
        st.caption(f"Not the best own score ({best_own:.4f}): a single high score among many noisy ones is often "
                   "luck (the winner's curse); candidates like this one score well too.")
    if note := pick_record():
        st.caption(note)
    st.dataframe(rec.drop(columns=["sd"]), hide_index=True, width="stretch", key="ex_recommended",
                 column_config={"arch": st.column_config.TextColumn("architecture", width="medium"),
                                **{c: st.column_config.NumberColumn(c, format="%.4f")
                                   for c in ("score", "predicted", "low", "high", "estimate")}})
    if widgets.button(st, "Retrain the recommended (page 4)", key="ex_retrain_recommended", width="stretch"):
        st.session_state["retrain_pick"] = list(rec["arch"].head(1))
        st.session_state["retrain_pick_new"] = True  # page 4 opens on "choose candidates" with it
        try:
            st.switch_page(guide.PAGE_FILES[guide.RETRAIN])
        except Exception:  # outside a multipage app (tests): say where to go
            st.caption("Open page 4 to retrain it.")


def predicted_best_panel(run: RunDir, cfg, k: int) -> None:
    """The unscored architectures of the current space with the best predicted accuracy; one click
    scores them (an ``evaluate --arch`` search job)."""
    best = store.predicted_best(run, k, PREDICTED_N)
    st.markdown("**Predicted best, not yet scored**")
    if best.empty:
        st.info("Too few scored candidates for a prediction (at least 3).", icon=":material/info:")
        return
    st.caption("The surrogate (a Gaussian process over the scored candidates) predicts these to score best; the "
               "interval is 95%. Scoring them tests the prediction and may find a better candidate.")
    show = best.assign(interval=[f"[{lo:.4f}, {hi:.4f}]" for lo, hi in zip(best["low"], best["high"])])
    st.dataframe(show[["arch", "predicted", "interval"]], hide_index=True, width="stretch", key="ex_predicted_best",
                 column_config={"arch": st.column_config.TextColumn("architecture", width="medium"),
                                "predicted": st.column_config.NumberColumn("predicted acc", format="%.4f")})
    live = running_job(run) is not None
    current = run.current_round() == k
    if widgets.button(st, f"Score these {len(best)}", key="ex_score_predicted", type="primary", width="stretch",
                 disabled=live or not current or not (run.round_dir(k) / layout.SUPERNET).exists(),
                 help="Score them with this round's supernet (a search job)" if current else
                 "Only the current round can be scored"):
        with widgets.guarded("Score the predicted best"):
            if widgets.start(run, "search", commands.evaluate(run, list(best["arch"]))):
                st.rerun()


def predictions_tab(run: RunDir, cfg, k: int) -> None:
    """The Predictions tab: recommendation first, then what to score next."""
    left, right = st.columns(2)
    with left:
        recommendation_panel(run, cfg, k)
    with right:
        predicted_best_panel(run, cfg, k)
    pts = store.candidates(run, k)
    if len(pts) and not math.isnan(float(pts["one_shot_acc"].max())):
        st.caption("On the map, unscored architectures are diamonds coloured by predicted accuracy; the fainter, "
                   "the less sure the prediction.")
