"""The lego editor's model: a draft space (plain dict, stages carrying a UI-only ``_id``) and
the edits on it; checking and saving go through the engine's own validation. No Streamlit."""

from __future__ import annotations

import copy
import itertools
import re

from nasnav.config import config_from_dict, save_config
from nasnav.errors import InvalidInput
from nasnav.jobs.control import running_job
from nasnav.model.ops import list_ops
from nasnav.names import is_name
from nasnav.space import SearchSpace
from nasnav.store import layout
from nasnav.store.io import write_yaml
from nasnav.store.run_dir import RunDir
from nasnav.store.state_lock import state_lock
from nasnav.workflow import access

STAGE_KEYS = ("name", "candidates", "select", "max_active", "channels", "stride", "pruned", "pinned")
_ids = itertools.count(1)


def new_id() -> int:
    return next(_ids)


def draft_from(space_dict: dict) -> dict:
    """An editable copy of a space mapping, each stage tagged with a fresh ``_id``."""
    d = copy.deepcopy(space_dict)
    d.setdefault("stem_channels", 16)
    for s in d.get("stages", []):
        s["_id"] = new_id()
        s.setdefault("select", "one")
        s.setdefault("channels", 16)
        s.setdefault("stride", 1)
    return d


def clean(draft: dict) -> dict:
    """The draft as a space mapping (UI fields removed, empty optional keys dropped)."""
    out = {"stem_channels": int(draft.get("stem_channels", 16)), "stages": []}
    for s in draft.get("stages", []):
        st = {k: copy.deepcopy(s[k]) for k in STAGE_KEYS if k in s}
        if st.get("select") != "any" or not st.get("max_active"):
            st.pop("max_active", None)
        if not st.get("pruned"):
            st.pop("pruned", None)
        if not st.get("pinned"):
            st.pop("pinned", None)
        out["stages"].append(st)
    return out


def add_stage(draft: dict, ops: list[str]) -> dict:
    names = {s["name"] for s in draft["stages"]}
    n = len(draft["stages"]) + 1
    while f"s{n}" in names:
        n += 1
    last = draft["stages"][-1] if draft["stages"] else None
    defaults = [o for o in ("conv3x3", "maxpool3x3", "skip", "linear", "linear_wide") if o in ops] or ops[:3]
    draft["stages"].append({"_id": new_id(), "name": f"s{n}", "candidates": defaults, "select": "one",
                            "channels": last["channels"] if last else 16, "stride": 1})
    return draft


def remove_stage(draft: dict, stage_id: int) -> dict:
    draft["stages"] = [s for s in draft["stages"] if s["_id"] != stage_id]
    return draft


def move_stage(draft: dict, stage_id: int, delta: int) -> dict:
    stages = draft["stages"]
    i = next(j for j, s in enumerate(stages) if s["_id"] == stage_id)
    j = max(0, min(len(stages) - 1, i + delta))
    stages.insert(j, stages.pop(i))
    return draft


def order_like(chosen: list[str], previous: list[str], registry: list[str]) -> list[str]:
    """Keep the previous candidates' order; append new ones in registry order."""
    kept = [c for c in previous if c in chosen]
    return kept + [c for c in registry if c in chosen and c not in kept] + [c for c in chosen if c not in kept and c not in registry]


# How the editor's widgets name a stage's keys (the engine speaks in config keys).
FIELD_WORDS = {"candidates": "components", "channels": "channels", "max_active": "'at most'", "select": "select",
               "stride": "downsampling", "name": "name", "pruned": "pruned components", "pinned": "pinned choice"}


def in_user_words(message: str, draft: dict) -> str:
    """A space problem in the editor's words: ``space.stages[3].candidates: empty`` becomes
    ``stage 's4' (4th card) components: empty``; the stem's key becomes 'stem channels'."""
    stages = draft.get("stages", [])

    def stage(m: re.Match) -> str:
        i = int(m.group(1))
        name = stages[i].get("name") if i < len(stages) else None
        who = f"stage '{name}'" if is_name(name) else f"stage {name!r}" if name else "a stage without a name"
        field = FIELD_WORDS.get(m.group(2) or "", m.group(2) or "")
        return f"{who} (card {i + 1}){' ' + field if field else ''}"

    message = re.sub(r"space\.stages\[(\d+)\](?:\.(\w+))?", stage, message)
    return message.replace("space.stem_channels", "stem channels").replace("space.stages", "stages")


def problems(draft: dict, kind: str) -> list[str]:
    """Every problem with the draft, one line each, in the editor's words (empty: it can be saved)."""
    try:
        sp = SearchSpace.from_dict(clean(draft), kind)
    except ValueError as e:
        return [in_user_words(line, draft) for line in str(e).splitlines()]
    out = sp.problems(list_ops(kind))
    for i, s in enumerate(draft.get("stages", [])):
        if s.get("select") == "any" and s.get("max_active") and s["max_active"] > len(s.get("candidates", [])):
            out.append(f"space.stages[{i}].max_active: {s['max_active']} exceeds the {len(s['candidates'])} "
                       f"components of the stage")
    return [in_user_words(line, draft) for line in out]


def to_space(draft: dict, kind: str) -> SearchSpace:
    return SearchSpace.from_dict(clean(draft), kind)


def build_config(base: dict, draft: dict, data: dict | None = None, source: str = "space editor"):
    """A checked Config: ``base`` (a config mapping) with the draft space (and data section)."""
    raw = copy.deepcopy(base)
    raw["space"] = clean(draft)
    if data is not None:
        raw["data"] = {**raw.get("data", {}), **data}
    return config_from_dict(raw, source)


def editable(run: RunDir) -> str | None:
    """None if the run's space may still be changed in place, else why not."""
    if run.current_round() > 0 or (run.round_dir(0) / layout.SUPERNET).exists():
        return "the supernet of this run is trained on its space; prune or pin on Explore, or save the edits as a new run"
    if (run.round_dir(0) / layout.TRAINING_DIR).exists():
        return "supernet training has started on this space; save the edits as a new run instead"
    return None


def save_to_run(run: RunDir, cfg, user: access.User = access.LOCAL) -> None:
    """Write an edited config and round 0's space into an untrained run (``user``: its owner or an admin)."""
    access.require_act(user, run, "change the space of")

    with state_lock(run):  # checked and written at once: no job, decision or other save in between
        why = editable(run)
        if why:
            raise InvalidInput(f"cannot change the space of run '{run.path.name}': {why}")
        if running_job(run):
            raise InvalidInput(f"run '{run.path.name}' has a running job; stop it before changing the space")
        save_config(cfg, run.config_path)
        write_yaml(run.round_dir(0) / layout.SPACE, cfg.search_space().to_dict())


def space_from_upload(raw: object, name: str) -> dict:
    """A space mapping from an uploaded YAML: a space, or a whole config with a ``space`` section."""
    if isinstance(raw, dict) and "space" in raw and isinstance(raw["space"], dict):
        raw = raw["space"]
    if not isinstance(raw, dict) or "stages" not in raw:
        raise InvalidInput(f"{name}: expected a space (stem_channels, stages) or a config with a 'space' section")
    try:
        SearchSpace.from_dict(raw)
    except ValueError as e:
        raise InvalidInput(f"{name}: {e}") from None
    return raw

