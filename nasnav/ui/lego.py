"""Widgets of the search-space page: data choice with a preview, and the stage grid ("lego view")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from nasnav.choices import FILE_SOURCES
from nasnav.config import SOURCE_KIND
from nasnav.ui import charts, space_edit, store


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def data_section(data: dict, locked: bool) -> dict:
    """Data source widgets; returns the edited data section (source, path, target, max_samples)."""
    _init("data_source", data.get("source", "digits"))
    _init("data_path", data.get("path") or "")
    _init("data_target", data.get("target") or "")
    _init("data_max", int(data.get("max_samples") or 0))
    c1, c2, c3 = st.columns([1, 2, 1])
    c1.selectbox("Data set", list(SOURCE_KIND), key="data_source", disabled=locked,
                 help="digits and mnist1d are generated offline; folder, cifar and csv read a local path")
    source = st.session_state["data_source"]
    if source in FILE_SOURCES:
        c2.text_input("Path", key="data_path", disabled=locked, help="folder of class sub-folders, CIFAR batch folder or CSV file")
        if source == "csv":
            c3.text_input("Target column", key="data_target", disabled=locked)
    else:
        c2.number_input("Use at most this many samples (0: all)", min_value=0, step=100, key="data_max",
                        disabled=locked)
    out = {**data, "source": source}
    out["path"] = st.session_state["data_path"] or None if source in FILE_SOURCES else data.get("path")
    out["target"] = st.session_state["data_target"] or None if source == "csv" else data.get("target")
    if source not in FILE_SOURCES:
        out["max_samples"] = int(st.session_state["data_max"]) or None
    return out


def to_image(x: list) -> np.ndarray:
    """A normalised (C, H, W) sample as an upscaled uint8 image for display."""
    a = np.asarray(x, dtype=float)
    a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))
    a = (a - a.min()) / (a.max() - a.min() + 1e-9)
    scale = max(1, 48 // a.shape[0])
    a = np.kron(a, np.ones((scale, scale))) if a.ndim == 2 else a.repeat(scale, 0).repeat(scale, 1)
    return (a * 255).astype(np.uint8)


def data_preview(info: dict) -> None:
    """Samples, class counts and split sizes of a loaded data set."""
    sizes = info["sizes"]
    st.caption(f"{info['kind']} data, per-sample shape {tuple(info['shape'])}, {info['num_classes']} classes · "
               f"train {sizes['train']:,} · val {sizes['val']:,} · test {sizes['test']:,}")
    left, right = st.columns([3, 2])
    with left:
        samples = info["samples"]
        if info["kind"] == "image":
            st.image([to_image(x) for x, _ in samples], caption=[c for _, c in samples], width=52)
        elif info["kind"] == "sequence":
            st.altair_chart(charts.sequence_preview(samples[:8]), width="stretch")
        else:
            rows = pd.DataFrame([np.asarray(x, dtype=float) for x, _ in samples]).round(3)
            rows.columns = [f"f{i}" for i in range(rows.shape[1])]
            rows.insert(0, "class", [c for _, c in samples])
            st.dataframe(rows, hide_index=True, height=220)
    with right:
        st.altair_chart(charts.class_counts_chart(info["class_counts"]), width="stretch")


def stage_grid(draft: dict, ops: list[str], locked: bool, per_row: int = 4) -> None:
    """One card per stage: components (toggle), select mode, width, downsampling, move/remove."""
    stages = draft["stages"]
    for start in range(0, max(1, len(stages)), per_row):
        cols = st.columns(per_row)
        for col, s in zip(cols, stages[start:start + per_row]):
            with col.container(border=True):
                _stage_card(draft, s, ops, locked)
    if st.button("Add stage", key="sp_add", icon=":material/add:", disabled=locked):
        space_edit.add_stage(draft, ops)
        st.rerun()


def _stage_card(draft: dict, s: dict, ops: list[str], locked: bool) -> None:
    uid = s["_id"]
    k = f"sp_{uid}_"
    _init(k + "name", s["name"])
    _init(k + "cands", list(s["candidates"]))
    _init(k + "select", s.get("select", "one"))
    _init(k + "max", int(s.get("max_active") or 0))
    _init(k + "ch", int(s.get("channels", 16)))
    _init(k + "down", int(s.get("stride", 1)) == 2)
    st.session_state[k + "cands"] = [c for c in st.session_state[k + "cands"] if c in ops]
    st.text_input("Stage name", key=k + "name", disabled=locked)
    st.pills("Components", ops, selection_mode="multi", key=k + "cands", disabled=locked,
             help="Candidate components of this stage; an architecture picks one (or several, in 'any')")
    st.radio("Select", ["one", "any"], key=k + "select", horizontal=True, disabled=locked,
             help="one: exactly one component (single path); any: a non-empty subset, outputs summed")
    c1, c2 = st.columns(2)
    c1.number_input("Channels", min_value=1, max_value=4096, step=8, key=k + "ch", disabled=locked)
    if st.session_state[k + "select"] == "any":
        c2.number_input("At most (0: all)", min_value=0, max_value=16, key=k + "max", disabled=locked)
    st.toggle("Downsample (stride 2)", key=k + "down", disabled=locked)
    s["name"] = st.session_state[k + "name"].strip()
    s["candidates"] = space_edit.order_like(st.session_state[k + "cands"], s["candidates"], ops)
    s["select"] = st.session_state[k + "select"]
    s["channels"] = int(st.session_state[k + "ch"])
    s["max_active"] = int(st.session_state[k + "max"]) or None
    s["stride"] = 2 if st.session_state[k + "down"] else 1
    b1, b2, b3 = st.columns(3)
    if b1.button("", key=k + "left", icon=":material/chevron_left:", help="Move this stage earlier", disabled=locked, width="stretch"):
        space_edit.move_stage(draft, uid, -1)
        st.rerun()
    if b2.button("", key=k + "right", icon=":material/chevron_right:", help="Move this stage later", disabled=locked, width="stretch"):
        space_edit.move_stage(draft, uid, 1)
        st.rerun()
    if b3.button("", key=k + "remove", icon=":material/delete:", help="Remove this stage", disabled=locked or len(draft["stages"]) <= 1,
                 width="stretch"):
        space_edit.remove_stage(draft, uid)
        st.rerun()
    marks = [f"pruned: {', '.join(s['pruned'])}"] if s.get("pruned") else []
    marks += [f"pinned: {'+'.join(s['pinned'])}"] if s.get("pinned") else []
    try:
        n = space_edit.to_space({"stages": [s]}, None).stages[0].size()
        st.caption(" · ".join([f"{n} choice(s) in this stage", *marks]))
    except (ValueError, IndexError):
        st.caption(" · ".join(marks))


def space_metrics(draft: dict, kind: str, info: dict | None) -> None:
    """Live count of architectures and params of the smallest / largest architecture."""
    sp = space_edit.to_space(draft, kind)
    c = st.columns(4)
    c[0].metric("Architectures", f"{sp.size():,}")
    c[1].metric("Stages", len(sp.stages))
    if info is not None:
        try:
            lo, hi = store.space_cost(space_edit.clean(draft), kind, tuple(info["shape"]), info["num_classes"])
            c[2].metric("Params, largest", f"{hi:,}")
            c[3].metric("Params, smallest", f"{lo:,}")
        except ValueError as e:
            c[2].caption(f"params unavailable: {e}")
