"""AppTest of the Explore page's surrogate views: the prediction map (unscored points coloured by
predicted accuracy, faint where unsure), the recommended final candidate and why, and the
"predicted best, not yet scored" list whose button scores exactly those."""

from __future__ import annotations

from test_app_support import finished_copy, ok, page, texts, wait_job_gone

from nasnav.config import load_config
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir
from nasnav.ui import charts
from nasnav.workflow import predictions


def test_prediction_map_recommendation_and_one_click_scoring(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    cfg = load_config(run.config_path)
    at = ok(page("3_explore.py", path, ex_tabs="Predictions").run())
    words = texts(at)
    assert "Recommended final candidate" in words and "own score" in words and "predicted" in words
    assert "Predicted best, not yet scored" in words and "the fainter, the less sure" in words
    best = predictions.round_predicted_best(run, cfg, 0, 10)
    shown = [d.value for d in at.dataframe if "interval" in d.value.columns]
    assert len(shown) == 1 and list(shown[0]["arch"]) == list(best["arch"])
    rec = [d.value for d in at.dataframe if "estimate" in d.value.columns][0]
    assert rec["arch"].iloc[0] in words
    # the map: the unscored points carry the surrogate's prediction and certainty
    from nasnav.ui import store

    points = store.scatter_points(run, cfg, 0, cfg.search.projection)
    grey = points[~points["scored"]]
    assert len(grey) and grey["predicted"].notna().all() and (grey["predicted_sd"] > 0).all()
    spec = charts.candidate_scatter(points).to_dict()
    layer = spec["layer"][0]
    assert layer["name"] == "predictions" and layer["encoding"]["color"]["field"] == "predicted"
    assert layer["encoding"]["opacity"]["field"] == "certainty"
    live = store.scatter_points(run, cfg, 0, cfg.search.projection, predict=False)  # while a search runs
    assert live[~live["scored"]]["predicted"].isna().all() and len(live) == len(points)

    n0 = len(read_candidates(run, 0))
    at.button(key="ex_score_predicted").click()
    ok(at.run())
    wait_job_gone(path, timeout=120)
    after = read_candidates(run, 0)
    assert set(best["arch"]) <= set(after["arch"]) and len(after) == n0 + len(best)
