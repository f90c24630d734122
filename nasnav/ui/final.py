"""Retrain & export page widgets: the picker, live curves, results and downloads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nasnav.analysis import trust
from nasnav.jobs import commands
from nasnav.jobs.control import running_job
from nasnav.store import layout
from nasnav.store.records import by_validation, latest_spotcheck
from nasnav.store.run_dir import RunDir, arch_key
from nasnav.ui import auth, charts, guide, state, store, widgets
from nasnav.ui import queue as jobq
from nasnav.ui.retrain_plan import ADVISED, CHOOSE, RECOMMENDED, SAVED, Plan, advice_in_space, plan
from nasnav.workflow import access
from nasnav.workflow.card_use import split_front_matter

DOWNLOADS = [  # file, label, mime
    (layout.MODEL_PY, layout.MODEL_PY, "text/x-python"),
    (layout.WEIGHTS, layout.WEIGHTS, "application/octet-stream"),
    (layout.ARCH, layout.ARCH, "application/x-yaml"),
    (layout.EXAMPLE, layout.EXAMPLE, "application/octet-stream"),  # model.py's self-check reads it
    (layout.ONNX, layout.ONNX, "application/octet-stream"),
    (layout.PT2, layout.PT2, "application/octet-stream"),
    (layout.CARD, layout.CARD, "text/markdown"),
]


def one_shot_lookup(run: RunDir) -> dict[str, float]:
    """Best one-shot accuracy of each architecture over all rounds."""
    out: dict[str, float] = {}
    for j in run.rounds():
        df = store.candidates(run, j).dropna(subset=["arch", "one_shot_acc"])
        for a, acc in zip(df["arch"].astype(str), df["one_shot_acc"]):
            out[a] = max(out.get(a, float("-inf")), float(acc))
    return out


def picker(run: RunDir, cfg, cands: pd.DataFrame, k: int) -> Plan:
    """Choose networks of round k (the recommended one, the spot check's advice, or any) and queue their
    retraining; returns what a press retrains (the walkthrough's words come from it)."""
    ranked = cands.sort_values("one_shot_acc", ascending=False)
    options = list(dict.fromkeys(list(st.session_state.get("retrain_pick", [])) + list(ranked["arch"].head(200))))
    saved = state.saved_selections(run)
    advice = advice_in_space(run, cfg)
    c1, c2 = st.columns([3, 1])
    modes = ([ADVISED] if advice else []) + [RECOMMENDED, CHOOSE] + ([SAVED] if saved else [])
    if st.session_state.pop("retrain_pick_new", False):  # just sent here from Explore with networks to retrain
        st.session_state["rt_mode"] = CHOOSE
    if st.session_state.get("rt_mode") not in modes:
        st.session_state.pop("rt_mode", None)
    mode = c1.radio("Networks to retrain", modes, key="rt_mode", horizontal=True)
    seeds = c2.number_input("Seeds", min_value=1, max_value=5, value=int(cfg.retrain.seeds), key="rt_seeds",
                            help="Several seeds give a mean and a spread")
    if mode == ADVISED and advice:
        archs = advice[0]
        st.markdown(f"Spot check: {advice[1]}: " + ", ".join(f"`{a}`" for a in archs))
    elif mode == RECOMMENDED:  # the same candidate Explore recommends and the headless pipeline retrains
        rec = store.recommended(run, k)
        how = "the surrogate's estimate" if cfg.steering.pick == "surrogate" else "the best own score"
        archs = list(rec["arch"].head(1)) if len(rec) else list(ranked["arch"].head(1))
        if archs and len(rec):
            st.markdown(f"Recommended (by {how}): `{archs[0]}` (own score {rec['score'].iloc[0]:.4f}, estimate "
                        f"{rec['estimate'].iloc[0]:.4f})")
        elif archs:
            st.markdown(f"Best one-shot candidate: `{archs[0]}` ({ranked['one_shot_acc'].iloc[0]:.4f})")
    elif mode == CHOOSE:
        default = [a for a in st.session_state.get("retrain_pick", []) if a in options] or options[:1]
        archs = st.multiselect("Candidates (best first)", options, default=default, key="rt_pick")
    else:
        name = st.selectbox("Saved selection", list(saved), key="rt_saved")
        archs = saved.get(name, [])[:10]
        st.caption(f"the {len(archs)} best of '{name}' (at most 10)")
    chosen = plan(run, cfg, len(archs), int(seeds), mode)
    label = guide.RETRAIN_EXPORT
    primary = widgets.is_next(guide.RETRAIN, label, run)
    live = running_job(run)
    b1, b2, _ = st.columns([1, 1, 3])
    if widgets.button(b1, label, key="rt_start", type="primary" if primary else "secondary", disabled=not archs or bool(live),
                 width="stretch"):
        with widgets.guarded("Retrain"):
            access.require_act(auth.current(), run, "retrain on")
            jobq.enqueue(run, jobq.retrain_items(run, archs, seeds))
            jobq.advance(run, auth.lab().limits)
            st.rerun()
    if widgets.button(b2, "Stop", key="rt_stop", disabled=not live, width="stretch",
                 help="Stop the running job; the queue pauses and can be continued"):
        with widgets.guarded("Stop"):
            widgets.stop(run)
            st.rerun()
    queue_panel(run)
    return chosen


def queue_panel(run: RunDir) -> None:
    q = jobq.items(run)
    if not q:
        return
    st.caption("Queued: " + " → ".join(f"{d['job']} `{d.get('arch', '')}`" for d in q))
    b1, b2, _ = st.columns([1, 1, 4])
    status = run.read_status()
    paused = not running_job(run) and status["state"] in ("failed", "interrupted", "stopped")
    if widgets.button(b1, "Continue queue", key="rt_q_resume", disabled=not paused):
        with widgets.guarded("Continue queue"):
            access.require_act(auth.current(), run, "retrain on")
            jobq.resume(run, auth.lab().limits)
            st.rerun()
    if widgets.button(b2, "Clear queue", key="rt_q_clear"):
        with widgets.guarded("Clear queue"):
            access.require_act(auth.current(), run, "retrain on")
            jobq.clear(run)
            st.rerun()


def live_curves(run: RunDir) -> None:
    cur = jobq.current(run)
    if not cur or cur.get("job") != "retrain" or not cur.get("arch"):
        return
    path = run.final_dir(arch_key(cur["arch"])) / layout.TRAIN_METRICS

    @st.fragment(run_every=1.0 if running_job(run) else None)
    def curves() -> None:
        with widgets.guarded("Curves"):
            draw()

    def draw() -> None:
        df = store.metrics(path)
        if df.empty or "epoch" not in df.columns:
            if running_job(run):
                st.caption(f"Training `{cur['arch']}`: curves appear after the first epoch.")
            return
        st.markdown(f"**Training curves** of `{cur['arch']}`")
        widgets.curves(df, height=260)

    curves()


def recommended(top: pd.Series) -> None:
    """The network to use: the best by standalone validation accuracy, its test accuracy reported
    once beside it (it played no part in the choice)."""
    st.markdown(f"**Recommended network** (best standalone validation accuracy): `{top['arch']}`")
    c = st.columns(4)
    c[0].metric("Validation accuracy (chose it)", f"{float(top['val_acc']):.4f}")
    c[1].metric("Test accuracy (reported only)", f"{float(top['test_acc']):.4f}")
    one_shot = pd.to_numeric(pd.Series([top.get("one_shot_acc")]), errors="coerce").iloc[0]
    c[2].metric("One-shot estimate", "–" if one_shot != one_shot else f"{one_shot:.4f}")
    c[3].metric("Params", f"{int(top['params']):,}")


def results(run: RunDir) -> pd.DataFrame:
    """The results table and comparison chart; returns the finals frame."""
    finals = store.finals(run)
    if finals.empty:
        st.info("No retrained networks yet.", icon=":material/deployed_code:")
        return finals
    lookup = one_shot_lookup(run)
    finals = finals.copy()
    if "one_shot_acc" not in finals.columns:
        finals["one_shot_acc"] = None
    finals["one_shot_acc"] = [o if o is not None and o == o else lookup.get(a)
                              for a, o in zip(finals["arch"], finals["one_shot_acc"])]
    recommended(by_validation(finals).iloc[0])
    if "seeds" in finals.columns and "test_acc_std" in finals.columns:  # one seed has no spread: "–", not 0
        one = pd.to_numeric(finals["seeds"], errors="coerce").fillna(1) < 2
        std = pd.to_numeric(finals["test_acc_std"], errors="coerce")
        finals["test_acc_std"] = ["–" if single or v != v else f"±{v:.4f}" for single, v in zip(one, std)]
    cols = [c for c in ("arch", "one_shot_acc", "val_acc", "test_acc", "test_acc_std", "params", "flops",
                        "latency_ms", "train_seconds", "seeds") if c in finals.columns]
    fmt = st.column_config.NumberColumn
    # chosen by validation accuracy: the test split only reports (never sorts, picks or defaults)
    st.dataframe(by_validation(finals)[cols], hide_index=True, width="stretch",
                 column_config={"one_shot_acc": fmt("one-shot (estimate)", format="%.4f"),
                                "test_acc": fmt("standalone test acc", format="%.4f"),
                                "test_acc_std": st.column_config.TextColumn("± (seeds)"),
                                "val_acc": fmt("standalone val acc", format="%.4f"),
                                "params": fmt("params", format="localized"),
                                "flops": fmt("FLOPs", format="localized"),
                                "latency_ms": fmt("latency (ms)", format="%.2f"),
                                "train_seconds": fmt("train time (s)", format="%.1f")})
    st.altair_chart(charts.finals_chart(finals), width="stretch")
    trust_panel(run)
    return finals


def trust_panel(run: RunDir) -> None:
    """What the latest spot check says, in its own words (the same as the Explore page's spot-check tab,
    the model card and the CLI): whether the one-shot score can pick the winner, and prune."""
    k, sc = latest_spotcheck(run, run.current_round())
    got = trust.answers(sc)
    if not got:
        st.caption(trust.trust_line(store.spotcheck(run, run.current_round())))
        return
    st.markdown(f"**How far to trust the one-shot score** (spot check of round {k})")
    widgets.answer_boxes(got, order=(trust.PICK, trust.PRUNE))  # picking comes first here


def downloads(run: RunDir, finals: pd.DataFrame) -> None:
    if finals.empty:
        return
    st.subheader("Download")
    arch = st.selectbox("Network (best validation accuracy first)", list(by_validation(finals)["arch"]),
                        key="rt_dl_arch")
    folder = run.final_dir(arch_key(arch))
    present = [(f, label, mime) for f, label, mime in DOWNLOADS if (folder / f).exists()]
    cols = st.columns(max(1, len(DOWNLOADS)))
    for col, (f, label, mime) in zip(cols, present):
        col.download_button(label, (folder / f).read_bytes(), file_name=f, mime=mime, key=f"rt_dl_{f}",
                            type="primary" if f == layout.MODEL_PY and widgets.is_next(guide.RETRAIN, guide.DOWNLOAD, run)
                            else "secondary", width="stretch")
    missing = [f for f, _, _ in DOWNLOADS if not (folder / f).exists()]
    if layout.MODEL_PY in missing:
        if widgets.button(st, guide.EXPORT, key="rt_export", disabled=bool(running_job(run)),
                     type="primary" if widgets.is_next(guide.RETRAIN, guide.EXPORT, run) else "secondary"):
            if widgets.start(run, "export", commands.export(run, arch)):
                st.rerun()
    elif missing:
        st.caption("Not written yet: " + ", ".join(missing))
    card = folder / layout.CARD
    if card.exists():
        with st.expander("Model card"):
            front, body = split_front_matter(card.read_text(encoding="utf-8", errors="replace"))
            if front:
                st.code(front, language="yaml")  # the metadata a model hub reads
            st.markdown(body)  # values from the run are escaped in the file itself (nasnav.markdown)
