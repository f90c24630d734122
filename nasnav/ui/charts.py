"""Altair chart builders: pure functions from data frames to ``alt.Chart`` (no Streamlit here,
so they are unit-tested directly). Callers check for empty data and show a message instead."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

BRUSH = "brush"  # names of the scatterplot's selections (read back from the chart event)
PICK = "pick"
GREY = "#c8c8c8"
ACC_SCHEME = "viridis"


SPLIT_COLORS = alt.Scale(domain=["train", "val"], range=["#8896ab", "#d6336c"])


def training_curves(df: pd.DataFrame, metric: str = "loss", height: int = 300) -> alt.Chart:
    """One metric per epoch, train vs val. ``df``: epoch, train_<metric>, val_<metric> (metric: loss or acc)."""
    cols = [c for c in (f"train_{metric}", f"val_{metric}") if c in df.columns]
    long = df.melt(id_vars=["epoch"], value_vars=cols, var_name="series", value_name="value").dropna()
    long["split"] = long["series"].str.split("_").str[0]
    title = "Loss" if metric == "loss" else "Accuracy"
    return (
        alt.Chart(long, title=alt.Title(title, subtitle="grey: train · pink: validation", anchor="start"),
                  height=height)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(nice=False, padding=8)),
            y=alt.Y("value:Q", title=title.lower(), scale=alt.Scale(zero=False)),
            color=alt.Color("split:N", title=None, scale=SPLIT_COLORS, legend=None),
            tooltip=["epoch:Q", "split:N", alt.Tooltip("value:Q", format=".4f")],
        )
    )


def candidate_scatter(points: pd.DataFrame, height: int = 460) -> alt.LayerChart:
    """The search-space view: one point per candidate on the stable projection.

    Colour = one-shot accuracy (grey = not yet scored; with ``predicted`` / ``predicted_sd`` columns the
    unscored are diamonds coloured by the surrogate's prediction, faint where it is unsure), size =
    params; a brush (interval,
    ``BRUSH``) and a click selection (``PICK``, fields=["arch"]) on the scored points select
    candidates. ``points``: arch, x, y, one_shot_acc, params, flops, scored.
    """
    data = points.copy()
    data["params"] = data["params"].fillna(0)
    scored, grey = data[data["scored"]], data[~data["scored"]]
    brush = alt.selection_interval(name=BRUSH, encodings=["x", "y"])
    pick = alt.selection_point(name=PICK, fields=["arch"], on="click", toggle="true")
    x = alt.X("x:Q", title="projection 1", axis=alt.Axis(labels=False, ticks=False),
              scale=alt.Scale(domain=_pad(data["x"])))
    y = alt.Y("y:Q", title="projection 2", axis=alt.Axis(labels=False, ticks=False),
              scale=alt.Scale(domain=_pad(data["y"])))
    base_tips = [alt.Tooltip("arch:N", title="architecture")]
    lo, hi = (scored["one_shot_acc"].min(), scored["one_shot_acc"].max()) if len(scored) else (0.0, 1.0)
    predicted = "predicted" in grey and grey["predicted"].notna().any()
    if predicted:  # the surrogate's prediction map: colour = predicted accuracy, faint where it is unsure
        grey_layer = prediction_layer(grey, x, y, base_tips, [float(lo), float(hi) if hi > lo else float(lo) + 1e-3])
    else:
        grey_layer = alt.Chart(grey.assign(status="not yet scored")).mark_circle(color=GREY, size=25, opacity=0.6).encode(
            x=x, y=y, tooltip=base_tips + [alt.Tooltip("status:N", title="status")])
    big = float(np.clip(260 * np.sqrt(150 / max(1, len(scored))), 40, 260))  # many points: smaller dots
    dots = alt.Chart(scored).mark_circle(stroke="#1f2933").encode(
        x=x, y=y,
        color=alt.Color("one_shot_acc:Q", title="one-shot acc",
                        scale=alt.Scale(scheme=ACC_SCHEME, domain=[float(lo), float(hi) if hi > lo else float(lo) + 1e-3])),
        size=alt.Size("params:Q", title="params", scale=alt.Scale(range=[big / 6, big]), legend=None),
        opacity=alt.condition(brush | pick, alt.value(0.95), alt.value(0.25)),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0), empty=False),
        tooltip=base_tips + [
            alt.Tooltip("one_shot_acc:Q", title="one-shot acc", format=".4f"),
            alt.Tooltip("params:Q", title="params", format=","),
            alt.Tooltip("flops:Q", title="FLOPs", format=","),
        ],
    ).add_params(brush, pick).properties(name="candidates")  # a fixed view name: same data, same spec
    # independent colour scales (same scheme and domain): the predictions' legend=None would hide the accuracy legend
    return alt.layer(grey_layer, dots).resolve_scale(color="independent").properties(height=height)


def prediction_layer(grey: pd.DataFrame, x, y, tips: list, domain: list[float]) -> alt.Chart:
    """Unscored architectures as diamonds coloured by the surrogate's predicted accuracy on the scored
    points' scale; opacity is the uncertainty channel (opaque: the surrogate is sure, faint: unsure)."""
    data = grey.copy()
    sd = pd.to_numeric(data["predicted_sd"], errors="coerce").fillna(np.inf)
    top = float(sd[np.isfinite(sd)].max()) if np.isfinite(sd).any() else 1.0
    data["certainty"] = np.clip(1.0 - sd / (top or 1.0), 0.0, 1.0).round(3)
    data["status"] = "not yet scored (predicted)"
    return alt.Chart(data).mark_point(shape="diamond", filled=True, size=55).encode(
        x=x, y=y,
        color=alt.Color("predicted:Q", legend=None, scale=alt.Scale(scheme=ACC_SCHEME, domain=domain, clamp=True)),
        opacity=alt.Opacity("certainty:Q", title="prediction certainty", scale=alt.Scale(domain=[0, 1], range=[0.25, 0.9])),
        tooltip=tips + [alt.Tooltip("status:N", title="status"),
                        alt.Tooltip("predicted:Q", title="predicted acc", format=".4f"),
                        alt.Tooltip("predicted_sd:Q", title="± (sd)", format=".4f")],
    ).properties(name="predictions")


def _pad(values: pd.Series, share: float = 0.05) -> list[float]:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return [-1.0, 1.0]
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * share or 0.1
    return [lo - pad, hi + pad]


def label_room(data: pd.DataFrame, x: str, y: str, width: float = 0.14, height: float = 0.06) -> pd.Series:
    """Which points get a text label: the most extreme |x| first, then any point whose label box
    (a share ``width`` x ``height`` of the axis ranges) does not overlap one already kept; the rest
    keep their tooltip. Rows with a missing coordinate get none."""
    xs, ys = pd.to_numeric(data[x], errors="coerce"), pd.to_numeric(data[y], errors="coerce")
    keep = pd.Series(False, index=data.index)
    ok = xs.notna() & ys.notna()
    if not ok.any():
        return keep
    span_x = max(float(xs[ok].max() - xs[ok].min()), 1e-12)
    span_y = max(float(ys[ok].max() - ys[ok].min()), 1e-12)
    placed: list[tuple[float, float]] = []
    for i in xs[ok].abs().sort_values(ascending=False, kind="stable").index:
        px, py = (xs[i] - xs[ok].min()) / span_x, (ys[i] - ys[ok].min()) / span_y
        if all(abs(px - qx) >= width or abs(py - qy) >= height for qx, qy in placed):
            placed.append((px, py))
            keep[i] = True
    return keep


def fitness_frequency(fit: pd.DataFrame, height: int = 340) -> alt.LayerChart:
    """The paper's candidate-information view: fitness (x, with CI) vs frequency (y) per component."""
    data = fit.copy()
    data["label"] = data["stage"].astype(str) + ":" + data["component"].astype(str)
    data["state"] = np.where(data["pruned"].astype(bool), "pruned",
                             np.where(data["pinned"].astype(bool), "pinned", "active"))
    base = alt.Chart(data, height=height)
    tips = ["label:N", alt.Tooltip("fitness:Q", format="+.4f"), alt.Tooltip("ci_low:Q", format="+.4f"),
            alt.Tooltip("ci_high:Q", format="+.4f"), "frequency:Q", alt.Tooltip("mean_with:Q", format=".4f"),
            alt.Tooltip("mean_without:Q", format=".4f"), "state:N"]
    stage_colour = alt.Color("stage:N", title="stage", legend=alt.Legend(orient="right"))
    bars = base.mark_rule(opacity=0.5).encode(x="ci_low:Q", x2="ci_high:Q", y="frequency:Q", color=stage_colour)
    pts = base.mark_point(filled=True, size=80).encode(
        x=alt.X("fitness:Q", title="fitness (accuracy with - without)"),
        y=alt.Y("frequency:Q", title="frequency (candidates using it)"),
        color=stage_colour,
        shape=alt.Shape("state:N", title="state", scale=alt.Scale(domain=["active", "pinned", "pruned"],
                                                                   range=["circle", "diamond", "cross"])),
        tooltip=tips,
    )
    shown = data[(data["state"] != "pruned") & label_room(data, "fitness", "frequency")]
    text = alt.Chart(shown).mark_text(align="left", dx=7, dy=-7, fontSize=10).encode(
        x="fitness:Q", y="frequency:Q", text="label:N", color=stage_colour)
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="#888").encode(x="x:Q")
    return alt.layer(zero, bars, pts, text).resolve_scale(color="shared")


def component_shares(data: pd.DataFrame, height_per_row: int = 16) -> alt.Chart:
    """Per component (``label``), the ``share`` of each ``group`` (selection, rest) of candidates that
    use it: where the selection differs from the rest is what defines it (the scatterplot's linked view)."""
    return (
        alt.Chart(data, height=max(120, height_per_row * 2 * data["label"].nunique()))
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, sort=list(dict.fromkeys(data["label"]))),
            yOffset=alt.YOffset("group:N", sort=["selection", "rest"]),
            x=alt.X("share:Q", title="share of candidates using it", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("group:N", title=None, sort=["selection", "rest"], legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=["selection", "rest"], range=["#d6336c", "#8896ab"])),
            tooltip=["label:N", "group:N", alt.Tooltip("share:Q", format=".0%")],
        )
    )


def fitness_heatmap(fit: pd.DataFrame) -> alt.LayerChart:
    """Stage x component grid coloured by fitness; each cell shows fitness and its interval."""
    data = fit.copy()
    data["cell"] = data.apply(
        lambda r: "pruned" if r["pruned"] else (
            f"{r['fitness']:+.3f}" if pd.notna(r["fitness"]) else "n/a"), axis=1)
    data["ci"] = data.apply(
        lambda r: f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if pd.notna(r["ci_low"]) and not r["pruned"] else "",
        axis=1)
    lim = float(np.nanmax(np.abs(data["fitness"].to_numpy(dtype=float)))) if data["fitness"].notna().any() else 0.1
    lim = lim or 0.1
    comps = list(dict.fromkeys(data["component"]))
    base = alt.Chart(data).encode(
        x=alt.X("component:N", sort=comps, title=None, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("stage:N", sort=list(dict.fromkeys(data["stage"])), title=None),
    )
    rect = base.mark_rect(stroke="white").encode(
        color=alt.condition("datum.pruned", alt.value("#eeeeee"), alt.Color(
            "fitness:Q", title="fitness", scale=alt.Scale(scheme="redblue", domain=[-lim, lim]))),
        tooltip=["stage:N", "component:N", alt.Tooltip("fitness:Q", format="+.4f"),
                 alt.Tooltip("ci_low:Q", format="+.4f"), alt.Tooltip("ci_high:Q", format="+.4f"), "frequency:Q"],
    )
    dark = alt.condition(f"abs(datum.fitness) > {0.6 * lim}", alt.value("white"), alt.value("#1f2933"))
    val = base.mark_text(dy=-7, fontSize=12).encode(text="cell:N", color=dark)
    ci = base.mark_text(dy=8, fontSize=9).encode(text="ci:N", color=dark)
    return alt.layer(rect, val, ci).properties(height=110 + 64 * data["stage"].nunique())


def pareto_front(df: pd.DataFrame, x: str = "params", y: str = "one_shot_acc") -> pd.DataFrame:
    """Rows not dominated by another (fewer or equal ``x`` and higher or equal ``y``), by ``x``."""
    d = df.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    best, keep = -np.inf, []
    for idx, val in zip(d.index, d[y]):
        if val > best:
            keep.append(idx)
            best = val
    return d.loc[keep]


def pareto_chart(df: pd.DataFrame, height: int = 300) -> alt.LayerChart:
    """Accuracy vs params of scored candidates with the Pareto front drawn as a step line."""
    data = df.dropna(subset=["params", "one_shot_acc"])
    front = pareto_front(data)
    tips = [alt.Tooltip("arch:N", title="architecture"), alt.Tooltip("one_shot_acc:Q", format=".4f"),
            alt.Tooltip("params:Q", format=","), alt.Tooltip("flops:Q", format=",")]
    pts = alt.Chart(data, height=height).mark_circle(size=30, color="#9aa7b8", opacity=0.6).encode(
        x=alt.X("params:Q", title="params", scale=alt.Scale(zero=False)),
        y=alt.Y("one_shot_acc:Q", title="one-shot accuracy", scale=alt.Scale(zero=False)), tooltip=tips)
    line = alt.Chart(front).mark_line(interpolate="step-after", color="#d6336c").encode(x="params:Q", y="one_shot_acc:Q")
    top = alt.Chart(front).mark_circle(size=70, color="#d6336c").encode(x="params:Q", y="one_shot_acc:Q", tooltip=tips)
    return alt.layer(pts, line, top)


def selection_distribution(df: pd.DataFrame, selected: list[str], height: int = 260) -> alt.Chart:
    """Histogram of one-shot accuracy: the selection against the rest of the scored candidates."""
    data = df.dropna(subset=["one_shot_acc"])[["arch", "one_shot_acc"]].copy()
    data["group"] = np.where(data["arch"].isin(set(selected)), "selection", "rest")
    return (
        alt.Chart(data, height=height)
        .transform_joinaggregate(total="count()", groupby=["group"])
        .transform_calculate(share="1 / datum.total")
        .mark_bar(opacity=0.6, binSpacing=0)
        .encode(
            x=alt.X("one_shot_acc:Q", bin=alt.Bin(maxbins=25), title="one-shot accuracy"),
            y=alt.Y("sum(share):Q", stack=None, title="share of group", axis=alt.Axis(format="%")),
            color=alt.Color("group:N", scale=alt.Scale(domain=["selection", "rest"], range=["#d6336c", "#8896ab"])),
            tooltip=["group:N", alt.Tooltip("count():Q", title="candidates")],
        )
    )


def timeline_chart(hist: pd.DataFrame, height: int = 260) -> alt.LayerChart:
    """Per round: space size (grey, log scale, left axis) and best one-shot accuracy (pink, right axis)."""
    data = hist.copy()
    data["round"] = data["round"].astype(int)
    base = alt.Chart(data, height=height).encode(x=alt.X("round:O", title="round", axis=alt.Axis(labelAngle=0)))
    tips = ["round:O", alt.Tooltip("space_size:Q", format=","), "candidates:Q",
            alt.Tooltip("best_one_shot:Q", format=".4f"), "decisions:N"]
    size = base.mark_line(point=alt.OverlayMarkDef(size=60, color="#8896ab"), color="#8896ab").encode(
        y=alt.Y("space_size:Q", title="space size (architectures)", scale=alt.Scale(type="log"),
                axis=alt.Axis(titleColor="#8896ab")), tooltip=tips)
    acc = base.mark_line(point=alt.OverlayMarkDef(size=60, color="#d6336c"), color="#d6336c").encode(
        y=alt.Y("best_one_shot:Q", title="best one-shot accuracy", scale=alt.Scale(zero=False, padding=10),
                axis=alt.Axis(titleColor="#d6336c", orient="right", format=".3f", tickCount=5)), tooltip=tips)
    return alt.layer(size, acc).resolve_scale(y="independent")


def accuracy_domain(acc: pd.Series, pad: float = 0.25) -> list[float]:
    """An x range around the accuracies shown (padded by a share of their spread, at least half a
    point), so that 0.984 and 0.993 look different; clipped to [0, 1]."""
    acc = pd.to_numeric(acc, errors="coerce").dropna()
    if acc.empty:
        return [0.0, 1.0]
    lo, hi = float(acc.min()), float(acc.max())
    margin = max(0.005, pad * (hi - lo))
    return [max(0.0, lo - margin), min(1.0, hi + margin)]


def finals_chart(finals: pd.DataFrame, height: int = 260) -> alt.Chart:
    """Per retrained network: one-shot estimate vs standalone validation and test accuracy, on an axis
    that spans the values shown (not 0..1)."""
    data = finals.copy()
    cols = [c for c in ("one_shot_acc", "val_acc", "test_acc") if c in data.columns]
    long = data.melt(id_vars=["arch"], value_vars=cols, var_name="measure", value_name="accuracy").dropna()
    names = {"one_shot_acc": "one-shot (supernet)", "val_acc": "standalone val", "test_acc": "standalone test"}
    long["measure"] = long["measure"].map(names)
    order = list(names.values())
    return (
        alt.Chart(long, height=max(height, 70 * data["arch"].nunique()))
        .mark_bar(clip=True)  # the axis starts near the values: bars are cut at its left edge
        .encode(
            y=alt.Y("arch:N", title=None, axis=alt.Axis(labelLimit=360)),
            x=alt.X("accuracy:Q", title="accuracy", scale=alt.Scale(domain=accuracy_domain(long["accuracy"]))),
            yOffset=alt.YOffset("measure:N", sort=order),
            color=alt.Color("measure:N", title=None, sort=order, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=order, range=["#8896ab", "#f3a5bf", "#d6336c"])),
            tooltip=["arch:N", "measure:N", alt.Tooltip("accuracy:Q", format=".4f")],
        )
    )


def class_counts_chart(counts: dict[str, dict[str, int]], height: int = 240) -> alt.Chart:
    """Samples per class and split (``counts``: split -> class -> n)."""
    rows = [{"split": s, "class": c, "n": n} for s, per in counts.items() for c, n in per.items()]
    return (
        alt.Chart(pd.DataFrame(rows), height=height)
        .mark_bar()
        .encode(x=alt.X("class:N", sort=None), y=alt.Y("n:Q", title="samples"),
                color=alt.Color("split:N", scale=alt.Scale(domain=["train", "val", "test"],
                                                           range=["#8896ab", "#d6336c", "#1f2933"])),
                tooltip=["split:N", "class:N", "n:Q"])
    )


def sequence_preview(samples: list[tuple[list, str]], height: int = 240) -> alt.Chart:
    """A few 1-D samples as lines (channel 0), coloured by class."""
    rows = []
    for i, (x, label) in enumerate(samples):
        seq = np.asarray(x, dtype=float).reshape(len(x), -1)[0] if np.ndim(x) > 1 else np.asarray(x, dtype=float)
        rows += [{"sample": i, "t": t, "value": float(v), "class": label} for t, v in enumerate(seq)]
    return alt.Chart(pd.DataFrame(rows), height=height).mark_line(opacity=0.7).encode(
        x="t:Q", y="value:Q", color="class:N", detail="sample:N")
