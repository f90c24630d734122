"""The surrogate in the product: the guided strategy through run_search, the recommended candidate
and why, the predicted best not scored yet and scoring exactly those (CLI ``evaluate --arch``), on a
run directory with a table evaluator (no supernet)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis.surrogate import make_fit
from nasnav.cli import build_parser
from nasnav.config import load_config
from nasnav.jobs import commands
from nasnav.score.table import TableEvaluator
from nasnav.search.loop import run_search
from nasnav.space import SearchSpace, Stage
from nasnav.store.io import read_json
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir
from nasnav.workflow import predictions
from nasnav.workflow.round import run_round
from nasnav.workflow.runs import create_run

TINY = ["search.projection=pca", "search.budget=30"]


def _table(space: SearchSpace) -> dict[str, float]:
    rng = np.random.default_rng(0)
    return {str(a): 80 + 3 * str(a).count("conv3x3") - 2 * str(a).count("skip") + rng.normal(0, 0.3) for a in space}


def test_guided_search_through_run_search_and_its_refusal_without_a_model(tmp_path):
    space = SearchSpace(tuple(Stage(f"s{i}", ("a", "b", "c")) for i in range(4)))
    ev = TableEvaluator({str(a): 80 + 2 * str(a).count("a") for a in space})
    run = RunDir.create(tmp_path / "run")
    df = run_search(run, space, 0, ev, 40, np.random.default_rng(0), strategy="guided", fit=make_fit(space))
    assert len(df) == 40 and df["arch"].is_unique and (df["strategy"] == "guided").all()
    assert df["one_shot_acc"].iloc[20:].mean() > df["one_shot_acc"].iloc[:20].mean()  # guided after the warm-up
    with pytest.raises(ValueError, match="'guided' needs a model"):
        run_search(run, space, 1, ev, 5, np.random.default_rng(0), strategy="guided")
    local = run_search(run, space, 2, ev, 30, np.random.default_rng(0), strategy="local")
    assert len(local) == 30 and local["arch"].is_unique


def test_recommendation_prediction_and_scoring_the_predicted_best(tmp_path):
    cfg = load_config("configs/tiny.yaml", TINY)
    space = cfg.search_space()
    ev = TableEvaluator(_table(space))
    run = create_run(cfg, tmp_path / "run")
    run_round(run, cfg, evaluator=ev)
    rec = predictions.round_recommendations(run, cfg, n=3)
    assert list(rec.columns) == ["arch", "score", "predicted", "sd", "low", "high", "estimate"] and len(rec) == 3
    top = rec.iloc[0]
    assert top["low"] < top["predicted"] < top["high"]
    assert top["estimate"] == pytest.approx(0.2 * top["score"] + 0.8 * top["predicted"])  # steering.pick_blend 0.2
    text = predictions.why(top, cfg.steering)
    assert "own score" in text and "predicted" in text and "0.2 x own score + 0.8 x prediction" in text
    by_score = predictions.recommendations(read_candidates(run, 0), space, type(cfg.steering)(pick="score"), n=3)
    assert by_score["estimate"].tolist() == sorted(by_score["score"], reverse=True)

    best = predictions.round_predicted_best(run, cfg, n=4)
    scored = set(read_candidates(run, 0)["arch"])
    assert len(best) == 4 and not set(best["arch"]) & scored and (best["sd"] > 0).all()
    assert best["predicted"].is_monotonic_decreasing
    grey = [str(a) for a in list(space)[:5]]
    pred = predictions.round_predictions(run, cfg, 0, grey)
    assert list(pred["arch"]) == grey and pred["predicted"].notna().all() and (pred["predicted_sd"] >= 0).all()

    from nasnav.workflow.search import score_candidates

    more = score_candidates(run, cfg, 0, budget=6, strategy="guided", evaluator=ev)  # the search job's way
    assert len(more) == 36 and (more["strategy"].iloc[-6:] == "guided").all()
    best = predictions.round_predicted_best(run, cfg, n=4)
    plan = read_json(run.round_dir(0) / "search.json")
    df = predictions.score_archs(run, cfg, list(best["arch"]), evaluator=ev)
    assert set(best["arch"]) <= set(df["arch"]) and len(df) == 40 and df["arch"].is_unique
    assert read_json(run.round_dir(0) / "search.json") == plan  # a paused search's plan survives (for --resume)
    again = predictions.score_archs(run, cfg, list(best["arch"]), evaluator=ev)
    assert len(again) == 40  # already scored: nothing twice
    with pytest.raises(ValueError, match="has no component 'nope'"):
        predictions.score_archs(run, cfg, ["nope/" + "/".join(best["arch"].iloc[0].split("/")[1:])], evaluator=ev)


def test_evaluate_arch_command_line(tmp_path):
    run = RunDir(tmp_path / "r")
    a = build_parser().parse_args(commands.evaluate(run, ["conv3x3/skip", "skip/skip"]))
    assert (a.command, a.arch, a.n) == ("evaluate", ["conv3x3/skip", "skip/skip"], None)


def test_too_few_candidates_give_no_prediction():
    space = SearchSpace(tuple(Stage(f"s{i}", ("a", "b")) for i in range(2)))
    df = pd.DataFrame({"arch": ["a/a", "a/b"], "one_shot_acc": [0.9, 0.8]})
    rec = predictions.recommendations(df, space, type("S", (), {"pick": "surrogate", "pick_blend": 0.2})())
    assert rec["arch"].tolist() == ["a/a", "a/b"] and rec["predicted"].isna().all()
    assert "too few scored candidates" in predictions.why(rec.iloc[0])


def test_evaluate_refuses_bad_input_with_exit_2(tmp_path, capsys):
    from nasnav.cli import main

    run = create_run(load_config("configs/tiny.yaml", TINY), tmp_path / "r")
    assert main(["evaluate", str(run.path)]) == 2  # neither --n nor --arch
    assert "give --n" in capsys.readouterr().err
    assert main(["evaluate", str(run.path), "--arch", "nope/skip/skip"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (run.round_dir(0) / "candidates.csv").exists() or len(read_candidates(run, 0)) == 0  # nothing scored
