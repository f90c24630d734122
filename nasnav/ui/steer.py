"""Explore page, part 2: fitness views, decisions (pending basket, prune / pin, auto-pilot,
set operations), the round timeline with undo, next round and the spot check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nasnav.analysis import trust
from nasnav.analysis.fitness import stage_importance
from nasnav.errors import InvalidInput
from nasnav.jobs import commands
from nasnav.jobs.control import running_job
from nasnav.space import SearchSpace
from nasnav.steering.actions import Action, Op, combine_selections
from nasnav.store import layout
from nasnav.store.records import latest_spotcheck
from nasnav.store.run_dir import RunDir
from nasnav.ui import auth, charts, guide, selection, state, store, widgets
from nasnav.ui.explore import SEL_KEY, spotcheck_line
from nasnav.workflow import access, decisions
from nasnav.workflow.track_record import track_record


def fitness_views(run: RunDir, cfg, k: int) -> None:
    """Fitness vs frequency per component (the paper's view) and the stage x component heatmap."""
    with widgets.guarded("Fitness"):
        fit = store.fitness(run, cfg, k)
        if fit is None or fit.empty or fit["fitness"].notna().sum() == 0:
            st.info("Fitness appears once candidates are scored.", icon=":material/bar_chart:")
            return
        left, right = st.columns([3, 1])
        with left:
            st.markdown("**Fitness vs frequency**: right = the component helps, up = measured on more candidates; "
                        f"bars = {cfg.steering.confidence:.0%} interval")
            st.altair_chart(charts.fitness_frequency(fit), width="stretch")
        with right:
            imp = stage_importance(store.candidates(run, k), store.space(run, cfg, k))
            st.markdown("**Stage importance** (share of accuracy variance)")
            r2 = float(imp["r2"].iloc[0]) if "r2" in imp.columns and len(imp) else None
            for row in imp[["stage", "importance"]].itertuples():  # plain bars: a data grid costs a new tab ~0.2 s
                share = float(row.importance) if row.importance == row.importance else 0.0
                st.progress(min(1.0, max(0.0, share)), text=f"{row.stage}: {share:.2f}")
            if r2 is not None:
                st.caption(f"Stages explain {r2:.0%} of the accuracy differences when each component is "
                           "credited on its own (an additive model, R² {:.2f}); the rest comes from combinations "
                           "of components and from estimation noise.".format(r2))
        st.markdown("**Stage × component fitness** with intervals (grey: pruned; n/a: never or always used)")
        st.altair_chart(charts.fitness_heatmap(fit), width="stretch")
        selection_shares(run, cfg, k)


def selection_shares(run: RunDir, cfg, k: int) -> None:
    """The scatterplot's selection against the rest: how often each component is used in each."""
    sel = st.session_state.get(SEL_KEY) or []
    if not sel:
        st.caption("Select candidates on the scatterplot to compare the components they use with the rest.")
        return
    cands = store.candidates(run, k).dropna(subset=["arch"])
    rest = [a for a in cands["arch"].astype(str).unique() if a not in set(sel)]
    st.markdown(f"**Your selection ({len(sel)}) against the rest ({len(rest)})**: share of candidates using each component")
    shares = selection.shares_against_rest(store.space(run, cfg, k), sel, rest)
    st.altair_chart(charts.component_shares(shares), width="stretch")


def pareto_view(run: RunDir, k: int) -> None:
    cands = store.candidates(run, k)
    if cands["one_shot_acc"].notna().sum() == 0:
        st.info("The Pareto front appears once candidates are scored.", icon=":material/show_chart:")
        return
    front = charts.pareto_front(cands)
    left, right = st.columns([3, 2])
    left.altair_chart(charts.pareto_chart(cands), width="stretch")
    with right:
        st.markdown("**Pareto front** (no candidate is both smaller and more accurate)")
        st.dataframe(front[["arch", "one_shot_acc", "params", "flops"]].sort_values("one_shot_acc", ascending=False),
                     hide_index=True, width="stretch", height=240,
                     column_config={"arch": st.column_config.TextColumn("architecture", width="medium"),
                                    "one_shot_acc": st.column_config.NumberColumn("one-shot acc", format="%.4f"),
                                    "params": st.column_config.NumberColumn(format="localized"),
                                    "flops": st.column_config.NumberColumn("FLOPs", format="localized")})

        st.caption(spotcheck_line(run, k))


def decision_panel(run: RunDir, cfg, space: SearchSpace, k: int) -> None:
    """Prune / pin / restore components, auto-pilot suggestions, and the pending decision."""
    left, right = st.columns(2)
    with left:
        st.markdown("**Prune, pin or restore a component**")
        c1, c2 = st.columns(2)
        names = [s.name for s in space.stages]
        stage = c1.selectbox("Stage", names, key="ex_dec_stage")
        st_obj = space.stages[names.index(stage)]
        comp = c2.selectbox("Component", list(st_obj.candidates), key=f"ex_dec_comp_{stage}")
        b = st.columns(3)
        if widgets.button(b[0], "Prune", key="ex_dec_prune", width="stretch", disabled=comp in st_obj.pruned,
                       type="primary" if widgets.is_next(guide.EXPLORE, "Prune", run) else "secondary"):
            state.add_pending(run, [Action(Op.PRUNE, stage, comp)])
            st.rerun()
        if widgets.button(b[1], "Pin", key="ex_dec_pin", width="stretch", disabled=comp in st_obj.pruned):
            state.add_pending(run, [Action(Op.PIN, stage, choice=(comp,))])
            st.rerun()
        if widgets.button(b[2], "Restore", key="ex_dec_restore", width="stretch",
                       disabled=comp not in st_obj.pruned and not st_obj.pinned):
            state.add_pending(run, [Action(Op.RESTORE, stage, comp)])
            st.rerun()
        suggestions(run, cfg, k)
    with right:
        pending_panel(run, cfg, space)


def suggestions(run: RunDir, cfg, k: int) -> None:
    """Auto-pilot suggestions with their evidence, to accept (into the pending decision) or reject."""
    st.markdown("**Auto-pilot suggestions**")
    with widgets.guarded("Auto-pilot"):
        stamp = store.mtime(run.round_dir(k) / layout.CANDIDATES)
        key = f"ex_proposal_{k}_{stamp}"  # a steering.policy.Decision
        if key not in st.session_state:
            st.session_state[key] = decisions.proposal(run, cfg, k, now=True)
        decision = st.session_state[key]
        rejected = st.session_state.setdefault("ex_rejected", set())
        todo = [(i, p) for i, p in enumerate(decision.actions) if (k, str(p.op), p.stage, p.target) not in rejected]
        if not todo:
            st.caption(f"No suggestions: {decision.why or 'each one has been accepted or rejected'}.")
            return
        st.markdown(selection.describe_proposal([p for _, p in todo]))
        if record := track_record(str(decision.kind)):
            st.caption(record)
        a, r = st.columns(2)
        if widgets.button(a, f"Accept all {len(todo)}", key=f"ex_acc_all_{k}", type="primary", width="stretch",
                    help="Add every suggestion to the pending decision"):
            _settle(run, [p for _, p in todo], rejected, k, accept=True)
        if widgets.button(r, "Reject all", key=f"ex_rej_all_{k}", width="stretch"):
            _settle(run, [p for _, p in todo], rejected, k, accept=False)
        with st.expander(f"One by one, with the evidence ({len(todo)})"):
            for i, p in todo:
                c1, c2, c3 = st.columns([6, 1, 1], vertical_alignment="center")
                c1.markdown(selection.describe_action(p) + (f"  \n:gray[{selection.describe_evidence(p.evidence)}]"
                                                            if p.evidence is not None else ""))
                if widgets.button(c2, "", key=f"ex_acc_{k}_{i}", icon=":material/check:", help="Accept"):
                    _settle(run, [p], rejected, k, accept=True)
                if widgets.button(c3, "", key=f"ex_rej_{k}_{i}", icon=":material/close:", help="Reject"):
                    _settle(run, [p], rejected, k, accept=False)


def _settle(run: RunDir, actions: list[Action], rejected: set, k: int, accept: bool) -> None:
    """Accept (into the pending decision) or reject suggestions; either way they leave the list."""
    if accept:
        state.add_pending(run, actions)
    rejected.update((k, str(p.op), p.stage, p.target) for p in actions)
    st.rerun()


def pending_panel(run: RunDir, cfg, space: SearchSpace) -> None:
    """The decision being prepared; applying it writes the next round's space (no training)."""
    st.markdown("**Pending decision**")
    acts = state.pending(run)
    if not acts:
        st.caption("Nothing pending. Add actions from the selection, the component controls or the auto-pilot.")
    for i, a in enumerate(acts):
        c1, c2 = st.columns([5, 1])
        c1.markdown("- " + selection.describe_action(a))
        if widgets.button(c2, "", key=f"ex_pend_rm_{i}", icon=":material/close:", help="Remove this action"):
            state.remove_pending(run, i)
            st.rerun()
    b1, b2 = st.columns(2)
    live = running_job(run)
    prepared, shown = next_round_ready(run), run.current_round()
    if prepared and acts:
        st.caption(f"Round {run.current_round()}'s space is prepared but not run yet: start the next round (or undo) before the next "
                   "decision.")
    if widgets.button(b1, "Apply decision", key="ex_apply", type="primary" if acts and not prepared else "secondary",
                 disabled=not acts or bool(live) or prepared, width="stretch",
                 help="Write the next round's pruned space; then start the next round"):
        with widgets.guarded("Apply decision"):
            if not acts or prepared:  # another session applied it meanwhile
                raise InvalidInput("nothing to apply, or the next round is already prepared")
            access.decide(auth.current(), run, cfg, acts, at_round=shown)
            state.clear_pending(run)
            st.toast("Decision applied: the next round's space is ready.", icon=":material/content_cut:")
            st.rerun()
    if widgets.button(b2, "Clear", key="ex_clear", disabled=not acts, width="stretch"):
        state.clear_pending(run)
        st.rerun()


def next_round_ready(run: RunDir) -> bool:
    """A decision prepared round k > 0 (its space) but its supernet is not trained yet."""
    k = run.current_round()
    rdir = run.round_dir(k)
    return k > 0 and (rdir / layout.SPACE).exists() and not (rdir / layout.SUPERNET).exists()


def next_round_panel(run: RunDir) -> None:
    k = run.current_round()
    st.success(f"Round {k}'s space is ready. **Start next round** fine-tunes the supernet on it "
               "(warm start), scores candidates and updates the analysis. **Undo** (Rounds tab) takes the "
               "decision back.", icon=":material/arrow_forward:")
    widgets.job_panel(run, "round", commands.next_round(run), key="ex_round", page=guide.EXPLORE,
                      start_label="Start next round", resume_args=commands.next_round(run), poll=False)


def rounds_panel(run: RunDir, cfg) -> None:
    """Timeline of rounds (space size, best one-shot accuracy, decisions) with undo / redo."""
    k = run.current_round()
    live = running_job(run)
    with widgets.guarded("Timeline"):
        hist = store.history(run)
        if hist is not None and not hist.empty:
            left, right = st.columns([2, 3])
            left.altair_chart(charts.timeline_chart(hist), width="stretch")
            right.dataframe(rounds_table(hist), hide_index=True, width="stretch")
    u1, u2, _ = st.columns([1, 1, 4])
    if widgets.button(u1, "Undo", key="ex_undo", icon=":material/undo:", disabled=bool(live) or k == 0, width="stretch",
                 help="Go back to the previous round (its files are kept; redo returns)"):
        with widgets.guarded("Undo"):
            access.undo(auth.current(), run, at_round=k)
            st.rerun()
    if widgets.button(u2, "Redo", key="ex_redo", icon=":material/redo:", disabled=bool(live), width="stretch"):
        with widgets.guarded("Redo"):
            access.redo(auth.current(), run, at_round=k)
            st.rerun()


def rounds_table(hist: pd.DataFrame) -> pd.DataFrame:
    """The rounds as the page shows them: plain headers, no raw None or NaN (a prepared round reads
    'not run yet')."""
    def num(v, fmt):
        return "–" if v is None or v != v else format(v, fmt)

    return pd.DataFrame({
        "round": hist["round"],
        "architectures": [num(v, ",.0f") for v in hist["space_size"]],
        "candidates scored": hist["candidates"],
        "best one-shot": ["not run yet" if n == 0 else num(v, ".4f") for v, n in zip(hist["best_one_shot"], hist["candidates"])],
        "decision": hist["decisions"].map(_decisions_text),
        "supernet": ["trained" if v else "not yet" for v in hist["supernet"]],
        "current": ["◀" if v else "" for v in hist["current"]],
    })


def _decisions_text(value) -> str:
    """Decisions of a round as text (a list of actions or already text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "; ".join(selection.describe_action(a).replace("**", "") if isinstance(a, Action) else str(a)
                         for a in value)
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def set_operations(run: RunDir) -> None:
    """Union / intersection / difference / complement of two saved selections, saved as a new one."""
    saved = state.saved_selections(run)
    if not saved:
        st.caption("Save selections from the scatterplot to combine them here.")
        return
    names = list(saved)
    c = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    a = c[0].selectbox("Selection A", names, key="ex_set_a")
    op = c[1].selectbox("Operation", ["union", "intersection", "difference", "complement"], key="ex_set_op")
    b = c[2].selectbox("Selection B", names, key="ex_set_b", index=min(1, len(names) - 1),
                       disabled=op == "complement")
    if widgets.button(c[3], "Combine", key="ex_set_go", width="stretch"):
        with widgets.guarded("Combine"):
            k = run.current_round()
            universe = list(store.candidates(run, k)["arch"].dropna().astype(str))
            out = combine_selections(saved[a], saved[b], op, universe=universe)
            sym = {"union": "∪", "intersection": "∩", "difference": "−", "complement": "not"}[op]
            name = f"not {a}" if op == "complement" else f"{a} {sym} {b}"
            state.save_selection(run, name, out)
            st.toast(f"Saved '{name}' ({len(out)} candidates).", icon=":material/join:")
            st.rerun()
    st.dataframe(pd.DataFrame([{"selection": n, "candidates": len(v)} for n, v in saved.items()]),
                 hide_index=True, width="content")


def spotcheck_panel(run: RunDir, k: int) -> None:
    """Both answers of round k's spot check in its own words, the button that runs one, its table."""
    sc = store.spotcheck(run, k) or {}
    got = trust.answers(sc)
    if not got:
        st.markdown(spotcheck_line(run, k))
        earlier, old = latest_spotcheck(run, k)
        if earlier is not None and earlier != k and trust.answers(old):
            st.caption(f"The latest spot check, of round {earlier}, said this (the space has changed since):")
            for a in trust.answers(old).values():
                st.caption(f"Round {earlier}: {a['text']}")
    widgets.answer_boxes(got)
    if sc.get("state") in ("running", "stopped", "interrupted") and got:
        st.caption(f"Spot check {sc['state']}: the answers cover the trainings finished so far.")
    st.caption(f"A spot check trains, standalone ({cfg_budget(sc)}), {trust.SPACE_N} architectures sampled evenly over "
               f"this round's space (can you prune by fitness?) and the round's {trust.TOP_M} best candidates (can you "
               "pick the winner by one-shot score?), and compares each with its one-shot accuracy. Trainings are "
               "reused by later spot checks; the Explore page stays usable while it runs.")
    spotcheck_controls(run, k, ready=store.candidates(run, k)["one_shot_acc"].notna().sum() >= 3)
    sc_path = run.round_dir(k) / layout.SPOTCHECK_PAIRS
    if sc_path.exists():
        st.dataframe(store.csv(sc_path), hide_index=True, width="stretch")


def spotcheck_controls(run: RunDir, k: int, ready: bool) -> None:
    """Start and stop a spot check of round k: a side job, so searching and deciding go on meanwhile; its
    progress is polled from spotcheck.json, and the page refreshes when it ends."""
    live = running_job(run, layout.SPOTCHECK_LANE)
    c = st.columns([1, 1, 4])
    if widgets.button(c[0], "Run spot check", key="ex_spot_start", disabled=bool(live) or not ready, width="stretch"):
        with widgets.guarded("Run spot check"):
            if widgets.start(run, "spotcheck", commands.spotcheck(run, trust.SPACE_N, trust.TOP_M, k), lane=layout.SPOTCHECK_LANE):
                st.rerun()
    if widgets.button(c[1], "Stop", key="ex_spot_stop", disabled=not live, width="stretch",
                   help="Stop the spot check; finished trainings are kept and reused by the next one"):
        with widgets.guarded("Stop spot check"):
            widgets.stop(run, lane=layout.SPOTCHECK_LANE)
            st.rerun()
    if not ready:
        c[2].caption("Score a few candidates first.")
    elif live:
        path = str(run.path)

        @st.fragment(run_every=2.0)
        def _poll() -> None:
            here = RunDir(path)
            if not running_job(here, layout.SPOTCHECK_LANE):
                st.rerun(scope="app")  # it ended: show its answers
            sc = store.spotcheck(here, k) or {}
            st.progress(min(1.0, float(sc.get("progress") or 0.0)),
                        text=sc.get("message") or "spot check starting ... (keep exploring meanwhile)")

        with c[2]:
            _poll()


def cfg_budget(sc: dict) -> str:
    """'15 epochs x 2 seeds' of a spot check (the run's settings until one has run)."""
    return f"{sc['epochs']} epochs x {sc['seeds']} seeds" if sc.get("epochs") else "a short budget, 2 seeds or more"
