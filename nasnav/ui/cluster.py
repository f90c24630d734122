"""The run's Slurm jobs (``cluster.backend: slurm``): state, Slurm job id, log tail, and a cancel button.
Drawn inside the job-status fragment, so it refreshes with it; nothing shows for a run without such jobs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nasnav.jobs import slurm
from nasnav.store.run_dir import RunDir

STATE_ICONS = {"pending": "⏳ pending", "running": "▶ running", "done": "✔ done", "failed": "✖ failed",
               "killed": "✖ killed", "cancelled": "■ cancelled", "gone": "? gone"}


def remote_jobs(run: RunDir) -> None:
    """A table of the run's remote jobs and the chosen job's log tail; a live job can be cancelled, which
    stops the work it belongs to (what finished is kept; starting it again resumes)."""
    jobs = slurm.current_jobs(run)
    if not jobs:
        return
    live = [j for j in jobs if j.get("state") in slurm.LIVE_STATES]
    orphans = [j for j in jobs if j.get("unwatched")]
    with st.expander(f"Slurm jobs · {len(live)} pending or running of {len(jobs)}", expanded=bool(live or orphans)):
        if orphans:
            st.warning(f"{len(orphans)} of these jobs {'has' if len(orphans) == 1 else 'have'} nobody watching: the "
                       "process that submitted them ended, so their results are not collected and a killed one is not resubmitted. Their state "
                       "comes from Slurm now (gone: Slurm no longer knows the job). Cancel those still pending or "
                       "running unless you need them; starting the work again submits what has no result.")
        table = pd.DataFrame([{"job": j.get("group"), "training": j.get("name"), "Slurm id": str(j.get("job_id")),
                               "state": STATE_ICONS.get(j.get("state"), j.get("state")),
                               "Slurm state": j.get("slurm_state") or "", "attempt": j.get("attempt")}
                              for j in jobs])
        st.dataframe(table, hide_index=True, width="stretch", height=min(300, 38 + 35 * len(jobs)))
        ids = [str(j.get("job_id")) for j in (live or jobs)]
        pick = st.selectbox("Job", ids, key="cl_job", help="Its log tail below; a pending or running job can be "
                            "cancelled")
        job = next(j for j in jobs if str(j.get("job_id")) == pick)
        if st.button("Cancel this job", key="cl_cancel", disabled=job.get("state") not in slurm.LIVE_STATES,
                     help="scancel: the spot check, retrain or supernet it belongs to stops; what finished is kept "
                          "and starting it again resumes"):
            try:
                slurm.cancel(run, pick)
                st.toast(f"Slurm job {pick} cancelled")
            except ValueError as e:
                st.error(str(e))
        st.code(slurm.log_tail(run, job) or "(no log yet)", language=None)
