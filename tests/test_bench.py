"""Smoke tests: every benchmark script runs end to end on the tiny preset (correctness, not speed).

Each runs as its own process (``--threads 1`` would otherwise leak into the test process), records
its run the way a real one does, but into a temporary results directory (``NASNAV_BENCH_RESULTS``),
so bench/results and BENCHMARKS.md are never touched, and with the standalone-training cache in a
temporary file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"

SCRIPTS = {
    "throughput": (["--preset", "tiny", "--quick", "--methods", "mds,pca"], "Engine throughput (tiny)"),
    "ranking": (["--preset", "tiny", "--archs", "6", "--seeds", "2", "--epochs", "1", "--quick",
                 "--variants", "sampler=uniform,split=1,sub_epochs=1,kd=1,ens=2; engine=1,kd=1"],
                "Ranking fidelity (tiny)"),
    "search_curve": (["--preset", "tiny", "--budget", "12", "--seeds", "2"], "Search: evolution vs random"),
    "search_efficiency": (["--preset", "tiny", "--reps", "1", "--epochs", "1", "--max-evals", "3", "--quick",
                           "--ranking", "4", "--ranking-top", "3", "--jobs", "2", "--clock", "cpu", "--reseeds", "2"],
                          "Search efficiency (tiny)"),
    "explore_render": (["--quick", "--candidates", "40", "--reps", "1"], "Explore page render (40 candidates"),
}


def _run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASNAV_BENCH_CACHE": str(tmp_path / "standalone.jsonl"), "PYTHONWARNINGS": "ignore",
           "NASNAV_BENCH_RESULTS": str(tmp_path / "results")}
    return subprocess.run([sys.executable, str(ROOT / "bench" / f"{script}.py"), *args, "--threads", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # a hang guard, not a speed test


def _snapshot() -> dict[str, bytes]:
    """The repository's benchmark results and page, byte for byte."""
    files = [BENCHMARKS, *sorted(p for p in RESULTS.rglob("*") if p.is_file())]
    return {str(p): p.read_bytes() for p in files if p.exists()}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_bench_script_runs_on_tiny(script, tmp_path):
    before = _snapshot()
    args, title = SCRIPTS[script]
    if script == "search_efficiency":
        pytest.importorskip("optuna")
    if script == "explore_render":
        pytest.importorskip("playwright")
        from bench.browser import chromium_path

        if chromium_path() is None:
            pytest.skip("explore_render needs Chromium")
    proc = _run(script, args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert title in proc.stdout
    assert "|---|" in proc.stdout  # a markdown table was printed
    if script == "search_efficiency":
        assert "Time to nasnav's median final incumbent" in proc.stdout
        assert "nasnav / each baseline's median time to reach: " in proc.stdout
        assert "mean test accuracy over 2 fresh seeds" in proc.stdout
        assert "nasnav / each baseline's median time to reach, re-measured: " in proc.stdout
    assert _snapshot() == before  # the repository's results and page are untouched
    # the run went into the temporary results directory, and the page there was regenerated from it
    (record,) = [json.loads(line) for line in (tmp_path / "results" / f"{script}.jsonl").read_text().splitlines()]
    assert record["benchmark"] == script and record["latest"] and record["title"].startswith(title)
    assert record["command"].startswith(f"python bench/{script}.py ") and record["params"]["threads"] == 1
    assert record["group"] == ("tiny (quick)" if "--quick" in args else "tiny")  # never the real run's group
    assert any("table" in b for b in record["blocks"])
    page = (tmp_path / "results" / "BENCHMARKS.md").read_text()
    assert f"`{record['command']}` — {record['date']}" in page


def test_ranking_spotcheck_mode_runs_on_tiny(tmp_path):
    """The product's two-question spot check against a multi-seed truth (bench/ranking_spotcheck.py)."""
    before = _snapshot()
    args = ["--spotcheck", "--preset", "tiny", "--run-seeds", "1", "--n", "6", "--m", "4", "--truth-seeds", "2",
            "--epochs", "1", "--quick"]
    proc = _run("ranking", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "two-question spot check (tiny)" in proc.stdout and "| seed |" in proc.stdout
    assert _snapshot() == before
    (record,) = [json.loads(line) for line in (tmp_path / "results" / "ranking.jsonl").read_text().splitlines()]
    assert record["group"] == "tiny, spot check (quick)" and record["metrics"]["seeds"] == [0]
    per_seed = record["metrics"]["per_seed"][0]
    assert {"prune", "pick"} <= set(per_seed) and per_seed["prune"]["truth"]["n"] == 6


def test_no_write_records_nothing(tmp_path):
    args = ["--preset", "tiny", "--budget", "6", "--seeds", "1", "--threads", "1", "--no-write"]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "search_curve.py"), *args], cwd=tmp_path, text=True,
                          env={**os.environ, "NASNAV_BENCH_RESULTS": str(tmp_path / "results")}, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|---|" in proc.stdout and not (tmp_path / "results").exists()


def test_ranking_variants_parse():
    from bench.ranking import parse_variant
    from nasnav.config import load_config, preset_path

    cfg = load_config(preset_path("tiny"))
    v = parse_variant("sampler=uniform,epochs=3x,recal=16,kd=1,score=loss,ens=2", cfg)
    assert v == {"sampler": "uniform", "epochs": 3 * cfg.supernet.epochs, "recal": 16, "kd": 1, "score": "loss",
                 "ens": 2, "seed": 0, "engine": 0, "split": 0, "sub_epochs": max(1, cfg.supernet.epochs // 4)}
    assert parse_variant("engine=1,kd=1", cfg)["engine"] == 1
    assert parse_variant("split=3,sub_epochs=3", cfg)["split"] == 3
    with pytest.raises(ValueError, match="split needs a stage that selects one component"):
        parse_variant("split=2", cfg)  # s2 selects any
    with pytest.raises(ValueError, match="split is a stage number 1..3"):
        parse_variant(f"split={len(cfg.space.stages) + 1}", cfg)
    with pytest.raises(ValueError, match="not with engine=1"):
        parse_variant("split=1,engine=1", cfg)
    with pytest.raises(ValueError, match="preset's seed"):
        parse_variant("engine=1,ens=2", cfg)
    assert parse_variant("", cfg)["sampler"] == cfg.supernet.sampler
    with pytest.raises(ValueError, match="unknown key"):
        parse_variant("lr=3", cfg)


def test_ranking_trains_and_scores_as_the_workflow_does():
    """engine=0 (the product's modules, trainer and evaluator called directly) gives exactly the scores of
    engine=1 (the workflow's train_supernet in a run directory and its supernet_evaluator)."""
    from bench.ranking import engine_evaluator, one_shot_evaluator, parse_variant, sample_archs, train_supernet
    from nasnav.config import load_config, preset_path
    from nasnav.workflow.runs import load_data

    cfg = load_config(preset_path("tiny"))
    splits, space = load_data(cfg), cfg.search_space()
    archs = sample_archs(space, 4)
    v = parse_variant("epochs=1,kd=1,sampler=uniform", cfg)
    net = train_supernet(cfg, space, splits, v["sampler"], v["epochs"], cfg.seed, bool(v["kd"]))
    direct = [one_shot_evaluator(net, cfg, splits, v["recal"])(a) for a in archs]
    assert direct == [engine_evaluator(preset_path("tiny"), v)(a) for a in archs]


def test_standalone_cache_reuses_results(tmp_path):
    from bench.standalone import StandaloneTrainer
    from nasnav.config import load_config, preset_path
    from nasnav.workflow.runs import load_data

    cfg = load_config(preset_path("tiny"))
    splits = load_data(cfg)
    arch = str(cfg.search_space().sample(__import__("numpy").random.default_rng(0)))
    cache = tmp_path / "c.jsonl"
    first = StandaloneTrainer(cfg, splits, epochs=1, cache=cache)(arch, 3)
    assert not first["cached"] and 0.0 <= first["test_acc"] <= 1.0
    again = StandaloneTrainer(cfg, splits, epochs=1, cache=cache)(arch, 3)
    assert again["cached"] and again["val_acc"] == first["val_acc"] and again["seconds"] == first["seconds"]
    other = StandaloneTrainer(cfg, splits, epochs=2, cache=cache)(arch, 3)  # another budget: another key
    assert not other["cached"]
    patient = load_config(preset_path("tiny"), ["retrain.patience=2"])  # early stopping: another key
    assert StandaloneTrainer(patient, splits, epochs=1, cache=cache).key != StandaloneTrainer(cfg, splits, 1, cache).key
    # what does not change a result does not void the cache: loader workers, a key added to the data section later
    workers = load_config(preset_path("tiny"), ["data.num_workers=2"])
    assert StandaloneTrainer(workers, splits, epochs=1, cache=cache).key == StandaloneTrainer(cfg, splits, 1, cache).key
    smaller = load_config(preset_path("tiny"), ["data.batch_size=32"])  # another batch size: another training
    assert StandaloneTrainer(smaller, splits, epochs=1, cache=cache).key != StandaloneTrainer(cfg, splits, 1, cache).key


def test_standalone_trainer_is_the_products(tmp_path):
    """The ground truth is nasnav.train.standalone.train_standalone's result, not a re-implementation."""
    from bench.standalone import StandaloneTrainer
    from nasnav.config import load_config, preset_path
    from nasnav.train.standalone import train_standalone
    from nasnav.workflow.runs import load_data

    cfg = load_config(preset_path("tiny"))
    splits, space = load_data(cfg), cfg.search_space()
    arch = space.sample(__import__("numpy").random.default_rng(1))
    ours = StandaloneTrainer(cfg, splits, epochs=1, cache=None)(str(arch), 5)
    theirs = train_standalone(cfg, space, arch, splits, 5, 1, quiet=True, single_process=True, test=True)
    assert (ours["val_acc"], ours["test_acc"]) == (theirs["val_acc"], theirs["test_acc"])
