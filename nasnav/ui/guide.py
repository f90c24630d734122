"""The guided walkthrough: what each step does and why, and the one next action for a run.

Pure functions over the run directory (no Streamlit), so the path through the loop is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nasnav import config
from nasnav.store import layout, records
from nasnav.store.run_dir import RunDir
from nasnav.ui import retrain_plan
from nasnav.workflow.runs import load_run

HOME, SPACE, SUPERNET, EXPLORE, RETRAIN = "home", "space", "supernet", "explore", "retrain"
DEFAULT_PRESET = config.DEFAULT_PRESET  # what a new user starts from

PAGE_FILES = {
    HOME: "pages/home.py",
    SPACE: "pages/1_search_space.py",
    SUPERNET: "pages/2_supernet.py",
    EXPLORE: "pages/3_explore.py",
    RETRAIN: "pages/4_retrain.py",
}

EXPLAIN = {
    HOME: (
        "**Neural architecture search** picks a network's layers for you. nasnav does it *one-shot*: "
        "it builds one big **template network** (the *supernet*) holding every candidate layer of every "
        "stage, trains it once with shared weights, then scores thousands of sub-networks by borrowing "
        "those weights. You look at the results, prune the weak parts, and repeat. "
        f"Start by creating a run from the **{DEFAULT_PRESET}** preset: the whole loop takes a few minutes on a laptop."
    ),
    SPACE: (
        "This is the **search space**: the template network. Each *stage* offers candidate components "
        "(convolutions, pooling, skip); an architecture picks one (or, in `any` stages, a few summed in "
        "parallel) per stage. The count of architectures grows as the product of the stages' choices. "
        "A preset is a good start: you can change it until the supernet is trained."
    ),
    SUPERNET: (
        "The **supernet** holds the weights of every component. Each training step samples one path "
        "(one architecture) and updates only its weights, so every candidate gets trained a little. "
        "It is not meant to be a good network itself: it is a cheap way to *estimate* how good each "
        "sub-network would be. Watch validation accuracy rise; a few epochs are enough for the tiny preset."
    ),
    EXPLORE: (
        "Each dot is a candidate scored with the supernet's weights (**one-shot accuracy**, after "
        "recalibrating BatchNorm). Nearby dots share components. **Fitness** of a component is how much "
        "candidates using it beat those that don't, with a confidence interval; components with "
        "negative fitness and a narrow interval are good pruning targets. One-shot rankings are noisy: "
        "a **spot check** trains a few candidates for real and reports Kendall's tau between the two "
        "rankings, so you know how much to trust the scatterplot."
    ),
    RETRAIN: (
        "One-shot accuracy is only an estimate. The chosen network is now **retrained from scratch**, "
        "alone, and tested on the held-out test split, which no earlier step has seen. Compare the "
        "estimate with the real accuracy, then download the network as plain PyTorch (`model.py` + weights) "
        "or ONNX."
    ),
}


# The labels of the buttons the walkthrough points at: pages label their buttons with these, so the
# walkthrough's "press X" always names a button that is there.
CREATE_RUN = "Create run"
START_TRAINING, RESUME_TRAINING = "Start training", "Resume training"
START_SEARCH, RESUME_SEARCH = "Start search", "Resume search"
NEXT_ROUND = "Start next round"
KEEP_SELECTION = "Keep only what the selection uses"
RETRAIN_EXPORT, EXPORT, DOWNLOAD = "Retrain & export", "Export", "Download model.py"


@dataclass(frozen=True)
class Step:
    page: str  # one of the page ids above
    action: str  # the label of the button to press (pages mark it as the primary button)
    why: str


def _has(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def next_step(run: RunDir | None, plan: retrain_plan.Plan | None = None) -> Step:
    """The one next action of the default path: create, train, search, prune, next round, retrain, download.

    ``plan``: what the Retrain page's selection will retrain (the page passes it); by default what that page
    retrains when nothing is changed on it (``retrain_plan.default_plan``: the spot check's advice, else the
    recommended candidate). The retrain step names that count and its time."""
    if run is None or not run.exists():
        return Step(HOME, CREATE_RUN, f"create a run from the {DEFAULT_PRESET} preset (or tiny, for a quick look)")
    k = run.current_round()
    rdir = run.round_dir(k)
    stopped = run.read_status()["state"] in ("stopped", "failed", "interrupted")
    if not _has(rdir / layout.SUPERNET):
        if k > 0 and records.has_space(run, k):
            return Step(EXPLORE, NEXT_ROUND, "fine-tune the supernet on the pruned space and re-score it")
        if stopped and records.supernet_resume_path(run, k).exists():
            return Step(SUPERNET, RESUME_TRAINING, "continue the stopped training from its last epoch")
        return Step(SUPERNET, START_TRAINING, "train the supernet once over the whole space")
    search = records.search_state(run, k)
    if stopped and search.get("state") in ("running", "stopped", "failed"):
        return Step(EXPLORE, RESUME_SEARCH, "continue the stopped search to its budget")
    if not _has(rdir / layout.CANDIDATES):
        return Step(EXPLORE, START_SEARCH, "score candidates with the supernet's weights")
    if k == 0:
        return Step(EXPLORE, KEEP_SELECTION, "brush the best region of the scatterplot (or accept the "
                                             "auto-pilot's suggestions) and keep only what it uses")
    finals = run.finals()
    if not finals:
        return Step(RETRAIN, RETRAIN_EXPORT, (plan or retrain_plan.default_plan(run, load_run(run.path)[1])).words())
    if not any((run.final_dir(f) / layout.MODEL_PY).exists() for f in finals):
        return Step(RETRAIN, EXPORT, "write the standalone model.py, weights and ONNX")
    return Step(RETRAIN, DOWNLOAD, "download the network; the loop is complete")
