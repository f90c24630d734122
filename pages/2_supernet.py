"""2 · Supernet training: start, stop, resume; live curves and progress from the run directory."""

import streamlit as st

from nasnav.jobs import commands
from nasnav.jobs.control import running_job
from nasnav.store import records
from nasnav.ui import guide, store, widgets
from nasnav.ui.diagram import template_dot

widgets.page_setup()
st.title("2 · Supernet training")

with widgets.guarded():  # every error is a message on the page, never a traceback
    run, cfg = widgets.open_run_page(guide.SUPERNET)

    k = run.current_round()
    rdir = run.round_dir(k)
    trained = records.has_supernet(run, k)
    epochs = cfg.supernet.epochs if k == 0 else cfg.supernet.warm_start_epochs
    space = store.space(run, cfg, k)
    st.caption(f"Round {k}: {space.size():,} architectures · {epochs} epoch(s) "
               f"{'from scratch' if k == 0 else 'warm-started from round ' + str(k - 1)} · "
               f"{cfg.supernet.optimizer}, lr {cfg.supernet.lr}, sampler {cfg.supernet.sampler}"
               f"{' · distilled from the largest path' if cfg.supernet.distill else ''}")

    resume_ok = records.supernet_resume_path(run, k).exists()
    widgets.job_panel(
        run, "supernet", commands.supernet(run), key="sn", page=guide.SUPERNET,
        start_label=guide.START_TRAINING, resume_label=guide.RESUME_TRAINING, resume_args=commands.supernet(run, resume=True) if resume_ok else None,
        disabled_reason="The supernet of this round is trained; later rounds are fine-tuned from Explore." if trained else None,
    )

    @st.fragment(run_every=1.0 if running_job(run) else None)
    def curves() -> None:
        with widgets.guarded("Curves"):
            show_curves()

    def show_curves() -> None:
        df = store.metrics(rdir / "metrics.csv")
        if df.empty or "epoch" not in df.columns:
            st.info("No training curves yet: start training and they appear here after the first epoch.", icon=":material/show_chart:")
            return
        last = df.iloc[-1]
        m = st.columns(4)
        m[0].metric("Epochs done", f"{int(last['epoch'])}/{epochs}")
        m[1].metric("Val accuracy", f"{last['val_acc']:.3f}" if last["val_acc"] == last["val_acc"] else "–",
                    delta=f"{last['val_acc'] - df.iloc[-2]['val_acc']:+.3f}" if len(df) > 1 else None)
        m[2].metric("Train loss", f"{last['train_loss']:.3f}" if last["train_loss"] == last["train_loss"] else "–")
        if "samples_per_s" in df.columns and last["samples_per_s"] == last["samples_per_s"]:
            m[3].metric("Samples/s", f"{last['samples_per_s']:,.0f}")
        widgets.curves(df)


    curves()

    if k > 0:
        with st.expander("Earlier rounds"):
            for j in range(k - 1, -1, -1):
                df = store.metrics(run.round_dir(j) / "metrics.csv")
                if not df.empty and "epoch" in df.columns:
                    st.markdown(f"**Round {j}**")
                    widgets.curves(df, height=240)

    with st.expander("The template network being trained", expanded=False):
        st.graphviz_chart(template_dot(space), width="stretch")

    if trained:
        widgets.page_link(guide.EXPLORE, "Next: search and explore the candidates", icon=":material/scatter_plot:")
