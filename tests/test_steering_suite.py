"""The steering suite (bench/steering_suite.py) and its tables: the NAS-Bench-Graph reader refuses
foreign code, the suite runs end to end on small synthetic tables, and, where the wheel is
installed, the real graph tables map onto their spaces."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from bench import steering_suite
from bench.nbg_data import ALLOWED, graph_space, installed_dir, load_bench
from bench.suite_ceiling import neighbour_mean, validation_ceiling
from bench.suite_tables import SuiteTable, _choices
from bench.table_pickle import TableUnpickler
from nasnav.space import SearchSpace, Stage


class _Remove:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.remove, (self.path,)


def test_graph_reader_refuses_other_code_and_reads_numpy_scalars(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    bad = tmp_path / "bad.bench"
    bad.write_bytes(pickle.dumps({1: _Remove(str(victim))}))
    with pytest.raises(ValueError, match=r"bad\.bench: table pickle refers to (posix|os|nt)\.remove"):
        load_bench(bad)
    assert victim.read_text() == "still here"
    with pytest.raises(ValueError, match=r"builtins\.eval"):
        TableUnpickler(pickle.dumps(eval), ALLOWED, "numpy scalars").load()
    good = tmp_path / "good.bench"
    good.write_bytes(pickle.dumps({7: {"valid_perf": np.float64(0.8), "perf": 0.75, "latency": 0.01,
                                       "para": np.float64(1.5)}}))
    assert load_bench(good) == {7: {"valid_perf": 0.8, "perf": 0.75, "latency": 0.01, "para": 1.5}}
    (tmp_path / "missing.bench").write_bytes(pickle.dumps({7: {"valid_perf": 0.8}}))
    with pytest.raises(ValueError, match="entry 7 has no number 'perf'"):
        load_bench(tmp_path / "missing.bench")


def test_graph_spaces():
    assert graph_space("cora").size() == 9 * 9**4 and graph_space("proteins").size() == 9 * 5**4
    assert [s.name for s in graph_space("cora").stages] == ["link", "op1", "op2", "op3", "op4"]


def _table(name: str, seed: int, noise: float = 0.0) -> SuiteTable:
    """4 stages x 4 components with an interaction; observed = truth + a fixed error (validation-like)."""
    space = SearchSpace(tuple(Stage(f"s{i}", ("a", "b", "c", "d")) for i in range(4)))
    keys = [str(a) for a in space]
    rng = np.random.default_rng(seed)
    truth = np.array([80 + k.count("a") - 3 * k.count("d") + (4 if k.split("/")[2] == "c" and k.count("a") == 3 else 0)
                      for k in keys], dtype=float)
    observed = truth + (0 if noise else rng.normal(0, 0.8, len(keys)))
    return SuiteTable(name, space, keys, observed, truth, noise, _choices(space, keys))


def test_the_suite_runs_end_to_end_on_small_tables(monkeypatch, capsys, tmp_path):
    tables = {"nb201": _table("nb201", 0, noise=1.0), "cora": _table("cora", 1), "pubmed": _table("pubmed", 2)}
    monkeypatch.setattr(steering_suite, "load_table", tables.__getitem__)
    monkeypatch.setattr(steering_suite, "TRACK_RECORD", tmp_path / "track_record.json")
    monkeypatch.setenv("NASNAV_BENCH_RESULTS", str(tmp_path / "results"))
    assert steering_suite.main(["--seeds", "2", "--budgets", "20", "40", "--tables", "nb201", "cora", "pubmed",
                                "--workers", "1", "--variants", "--methods", "random", "evolution", "local",
                                "auto-pilot", "surrogate", "surrogate:kappa=1,blend=0.5"]) == 0
    out = capsys.readouterr().out
    assert "### Pick regret at 20 evaluations" in out and "### Pick regret at 40 evaluations" in out
    assert "| table | random | evolution | local | auto-pilot | surrogate |" in out
    assert "| tuning 20 |" in out and "| test 40 |" in out and "### Regret at 40 (SE <= " in out
    for m in ("random", "evolution", "local", "auto-pilot", "surrogate", "guided", "auto-pilot + surrogate pick",
              "surrogate:kappa=1,blend=0.5"):
        assert f"| {m} |" in out
    assert "At 315: test tables" not in out  # the verdict speaks of 315 evaluations only
    assert "### Test tables: picks knowing every validation score" in out and "| test pool |" in out
    records = (tmp_path / "results" / "steering_suite.jsonl").read_text().splitlines()
    rec = json.loads(records[-1])
    assert rec["params"]["seeds"] == 2 and rec["group"] == "seeds from 0"
    saved = json.loads((tmp_path / "track_record.json").read_text())
    assert saved["records"]["narrow"]["runs"] >= 1 and saved["pick"]["runs"] == 4
    with pytest.raises(SystemExit, match="method 'best' is unknown"):
        steering_suite.main(["--methods", "best", "--no-write", "--workers", "1"])


def test_neighbour_means_and_the_whole_table_picks():
    t = _table("cora", 3)
    nb = neighbour_mean(t.observed, t.choice, [4, 4, 4, 4])
    for i in (0, 17, 255):  # brute force: the architectures that differ in exactly one stage
        near = [j for j in range(len(t.keys)) if (t.choice[j] != t.choice[i]).sum() == 1]
        assert len(near) == 12 and nb[i] == pytest.approx(t.observed[near].mean())
    # a table whose best validation score is a fluke: the smoothed pick avoids it
    truth = np.array([80.0 - 2 * k.count("d") for k in t.keys])
    observed = truth.copy()
    fluke = t.keys.index("d/d/d/d")
    observed[fluke] = 99.0
    c = validation_ceiling(SuiteTable("x", t.space, t.keys, observed, truth, 0.0, t.choice))
    assert c["argmax"] == pytest.approx(8.0)  # the fluke: 80 - 72
    assert c["smoothed10"] < c["argmax"] and c["top10"] < c["argmax"]


def test_the_suite_verdict_at_315(monkeypatch, capsys):
    tables = {"nb201": _table("nb201", 0, noise=1.0), "pubmed": _table("pubmed", 2)}
    monkeypatch.setattr(steering_suite, "load_table", tables.__getitem__)
    assert steering_suite.main(["--seeds", "2", "--budgets", "315", "--tables", "nb201", "pubmed", "--workers", "1",
                                "--methods", "evolution", "surrogate", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "At 315: test tables " in out and "NB201: a cell within 0.1 pp kept" in out
    assert "Worse than evolution by > 2 SE" in out


@pytest.mark.skipif(installed_dir() is None, reason="the nas-bench-graph wheel is not installed "
                    "(pip install -r requirements-bench.txt)")
def test_the_real_graph_tables():
    from bench.nbg_data import graph_table

    g = graph_table("cora")
    assert g.entries == 26206 and len(g.valid) == len(g.test) == 9 * 9**4
    assert round(max(g.test.values()), 2) == 83.13
    best_valid = max(g.valid, key=g.valid.get)
    assert round(max(g.test.values()) - g.test[best_valid], 2) == 0.50  # the winner's curse, measured
    p = graph_table("proteins")
    assert p.entries == 2021 and len(p.valid) == 9 * 5**4


def test_track_record_sentences(tmp_path):
    from nasnav.workflow import track_record as tr

    path = tmp_path / "track_record.json"
    path.write_text(json.dumps({"budget": 315, "seeds": 100, "records": {"narrow": {
        "runs": 600, "kept_near_best": 0.912, "shrink_median": 101.0, "tables": ["cora", "nb201"]}},
        "pick": {"runs": 600, "surrogate": 0.8, "score": 0.95}}))
    line = tr.track_record("narrow", path)
    assert "on 2 tuning tables (cora, nb201; 100 seeds, 315 evaluations)" in line
    assert "kept a near-best architecture (the best 0.1%) in 91% of 600 runs" in line and "101x" in line
    assert tr.track_record("prune", path) is None
    assert "0.80 pp" in tr.pick_record(path) and "0.95 pp" in tr.pick_record(path)
    (tmp_path / "bad.json").write_text("{not json")
    assert tr.track_record("narrow", tmp_path / "bad.json") is None and tr.pick_record(tmp_path / "bad.json") is None
