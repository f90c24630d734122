"""Chart builders (pure functions returning altair charts) and the template diagram."""

import math

import altair as alt
import numpy as np
import pandas as pd
import pytest

from nasnav.space import SearchSpace, Stage
from nasnav.ui import charts
from nasnav.ui.diagram import LOOP_DOT, template_dot


def space() -> SearchSpace:
    return SearchSpace(stages=(
        Stage("s1", ("conv3x3", "maxpool3x3", "skip"), pruned=("skip",)),
        Stage("s2", ("conv1x1", "avgpool3x3", "skip"), select="any", max_active=2, stride=2, pinned=("conv1x1",)),
    ), stem_channels=8, kind="image")


def points(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"arch": [f"a{i}/b{i}" for i in range(n)], "x": rng.normal(size=n), "y": rng.normal(size=n),
                       "one_shot_acc": rng.uniform(0.5, 0.9, n), "params": rng.integers(1000, 9000, n),
                       "flops": rng.integers(10**5, 10**6, n)})
    df.loc[n // 2:, ["one_shot_acc", "params", "flops"]] = np.nan  # the second half is not yet scored
    df["scored"] = df["one_shot_acc"].notna()
    return df


def fitness() -> pd.DataFrame:
    return pd.DataFrame({
        "stage": ["s1", "s1", "s1", "s2"], "component": ["conv3x3", "maxpool3x3", "skip", "conv1x1"],
        "fitness": [0.02, -0.03, math.nan, 0.01], "ci_low": [-0.01, -0.05, math.nan, -0.02],
        "ci_high": [0.05, -0.01, math.nan, 0.04], "frequency": [12, 10, 0, 22], "mean_with": [0.8, 0.7, math.nan, 0.75],
        "mean_without": [0.78, 0.73, 0.75, math.nan], "best_with": [0.9, 0.8, math.nan, 0.9],
        "pruned": [False, False, True, False], "pinned": [False, False, False, True]})


def test_scatter_has_named_brush_and_arch_point_selection():
    spec = charts.candidate_scatter(points()).to_dict()
    params = {p["name"]: p["select"] for p in spec["params"]}
    assert params[charts.BRUSH]["type"] == "interval" and params[charts.BRUSH]["encodings"] == ["x", "y"]
    assert params[charts.PICK]["type"] == "point" and params[charts.PICK]["fields"] == ["arch"]
    grey, scored = spec["layer"]
    assert grey["mark"]["color"] == charts.GREY  # unscored candidates are grey
    assert scored["encoding"]["color"]["field"] == "one_shot_acc" and scored["encoding"]["size"]["field"] == "params"
    tips = {t["field"] for t in scored["encoding"]["tooltip"]}
    assert {"arch", "one_shot_acc", "params", "flops"} <= tips


def test_scatter_works_with_nothing_scored_and_one_point():
    df = points(4)
    df["scored"] = False
    df["one_shot_acc"] = np.nan
    charts.candidate_scatter(df).to_dict()
    charts.candidate_scatter(points(2).head(1)).to_dict()


def test_pareto_front_keeps_only_non_dominated_rows():
    df = pd.DataFrame({"arch": list("abcde"), "params": [10, 20, 30, 15, 40], "one_shot_acc": [0.5, 0.7, 0.6, 0.4, 0.8]})
    front = charts.pareto_front(df)
    assert list(front["arch"]) == ["a", "b", "e"]
    charts.pareto_chart(df.assign(flops=1)).to_dict()


def test_fitness_views_handle_nan_and_flags():
    fit = fitness()
    for chart in (charts.fitness_frequency(fit), charts.fitness_heatmap(fit)):
        spec = chart.to_dict()
        assert spec["layer"]
    text = charts.fitness_heatmap(fit).data
    cells = dict(zip(text["component"], text["cell"]))
    assert cells["skip"] == "pruned" and cells["conv3x3"] == "+0.020"


def test_fitness_labels_do_not_pile_up():
    """Components at (nearly) the same place get one label, the most extreme fitness first; apart
    ones keep theirs; a missing coordinate gets none."""
    data = pd.DataFrame({"fitness": [0.010, 0.011, -0.050, 0.060, np.nan], "frequency": [8, 8, 2, 9, 5]})
    keep = charts.label_room(data, "fitness", "frequency")
    assert list(keep) == [False, True, True, True, False]  # 0.011 is the more extreme of the pair
    assert charts.label_room(data.iloc[[4]], "fitness", "frequency").sum() == 0


def test_curves_timeline_finals_selection_and_data_charts():
    metrics = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.7, 1.4],
                            "train_acc": [0.2, 0.4, 0.5], "val_acc": [0.2, 0.35, 0.45]})
    for metric in ("loss", "acc"):
        spec = charts.training_curves(metrics, metric).to_dict()
        assert spec["encoding"]["color"]["scale"]["domain"] == ["train", "val"]
        assert len(charts.training_curves(metrics, metric).data) == 6
    hist = pd.DataFrame({"round": [0, 1], "space_size": [120, 60], "candidates": [24, 24],
                         "best_one_shot": [0.8, 0.85], "decisions": ["prune s1:skip", ""]})
    assert len(charts.timeline_chart(hist).to_dict()["layer"]) == 2
    finals = pd.DataFrame({"arch": ["a/b", "c/d"], "one_shot_acc": [0.8, None], "val_acc": [0.9, 0.85],
                           "test_acc": [0.88, 0.86]})
    assert set(charts.finals_chart(finals).data["measure"]) == {"one-shot (supernet)", "standalone val", "standalone test"}
    df = points()
    sel = list(df["arch"].head(5))
    dist = charts.selection_distribution(df, sel)
    assert set(dist.data["group"]) == {"selection", "rest"}
    counts = {"train": {"0": 5, "1": 6}, "val": {"0": 1, "1": 1}}
    charts.class_counts_chart(counts).to_dict()
    charts.sequence_preview([(np.zeros((1, 10)).tolist(), "a"), (np.ones((1, 10)).tolist(), "b")]).to_dict()


@pytest.mark.parametrize("used", [None, {("s1", "conv3x3"): 0.75, ("s2", "avgpool3x3"): 0.2}])
def test_template_diagram_marks_pruned_pinned_and_selection(used):
    dot = template_dot(space(), used=used, arch="conv3x3/conv1x1")
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert "skip\\n(pruned)" in dot and "(pinned)" in dot
    assert dot.count("subgraph cluster_") == 2
    if used:
        assert "75% of selection" in dot
    assert "graph" in LOOP_DOT


def test_charts_are_altair_objects():
    assert isinstance(charts.candidate_scatter(points()), alt.TopLevelMixin)


def test_finals_chart_axis_spans_the_accuracies_shown():
    finals = pd.DataFrame({"arch": ["a/b", "c/d"], "one_shot_acc": [0.95, 0.96], "val_acc": [0.984, 0.993],
                           "test_acc": [0.981, 0.99]})
    lo, hi = charts.finals_chart(finals).to_dict()["encoding"]["x"]["scale"]["domain"]
    assert 0.9 < lo < 0.95 and 0.993 < hi <= 1.0  # 0.984 and 0.993 do not look the same
    assert charts.finals_chart(finals).to_dict()["mark"]["clip"] is True  # no bar drawn left of the axis
    assert charts.accuracy_domain(pd.Series([], dtype=float)) == [0.0, 1.0]
    assert charts.accuracy_domain(pd.Series([0.5, 0.5])) == [0.495, 0.505]


def test_loop_diagram_numbers_each_step_once():
    import re

    numbers = re.findall(r'label="(\w+) ·', LOOP_DOT)
    assert len(numbers) == len(set(numbers)) >= 5, numbers


def test_fitness_view_has_a_stage_legend():
    """Issue 18, item 11: the points are coloured by stage, so the chart says which colour is which."""
    fit = pd.DataFrame({"stage": ["s1", "s1", "s2"], "component": ["a", "b", "c"], "fitness": [0.01, -0.02, 0.0],
                        "ci_low": [-0.01, -0.04, -0.01], "ci_high": [0.03, 0.0, 0.01], "frequency": [5, 6, 7],
                        "mean_with": [0.5, 0.4, 0.45], "mean_without": [0.45, 0.5, 0.45], "pruned": [False] * 3,
                        "pinned": [False] * 3})
    layers = charts.fitness_frequency(fit).to_dict()["layer"]
    legends = [lay["encoding"]["color"].get("legend", "default") for lay in layers if "color" in lay.get("encoding", {})]
    assert legends and None not in legends and any(isinstance(x, dict) for x in legends)


def test_selection_against_the_rest_per_component():
    """Issue 18, item 12: the fitness tab's linked view of the scatterplot's selection."""
    from nasnav.ui import selection

    sp = space()
    shares = selection.shares_against_rest(sp, ["conv3x3/conv1x1", "conv3x3/avgpool3x3"], ["skip/conv1x1"])
    got = shares.set_index(["label", "group"])["share"]
    assert got[("s1:conv3x3", "selection")] == 1.0 and got[("s1:conv3x3", "rest")] == 0.0
    assert got[("s2:conv1x1", "selection")] == 0.5 and got[("s2:conv1x1", "rest")] == 1.0
    assert set(charts.component_shares(shares).data["group"]) == {"selection", "rest"}


def test_prediction_map_keeps_the_accuracy_legend():
    """Unscored points coloured by prediction (legend-less) must not hide the one-shot accuracy legend."""
    df = points()
    df["predicted"] = np.where(df["scored"], np.nan, 0.7)
    df["predicted_sd"] = np.where(df["scored"], np.nan, 0.01)
    spec = charts.candidate_scatter(df).to_dict()
    predicted, scored = spec["layer"]
    assert predicted["mark"]["shape"] == "diamond" and predicted["encoding"]["color"]["legend"] is None
    assert scored["encoding"]["color"].get("legend", {}) is not None
    assert spec["resolve"]["scale"]["color"] == "independent"  # else the shared scale drops the legend
    assert predicted["encoding"]["color"]["scale"]["domain"] == scored["encoding"]["color"]["scale"]["domain"]
