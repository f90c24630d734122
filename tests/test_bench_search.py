"""The searches over standalone trainings that bench/search_efficiency.py compares (bench/search_methods.py),
its anytime plot (bench/search_plot.py), and the rounds' ranking on a real nasnav run (bench/search_rounds.py).

The searches run against a table "trainer" (accuracy a fixed function of the architecture, a fixed cost
per training): the same interface as bench/standalone.py, so the search logic is checked in milliseconds.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class TableTrainer:
    """Validation accuracy = sum over stages of a per-(stage, choice) value; test = validation - 0.001."""

    def __init__(self, space, seconds: float = 2.0):
        self.space, self.seconds, self.calls = space, seconds, []

    def value(self, arch: str) -> float:
        parts = str(arch).split("/")
        return 0.5 + sum((zlib.crc32(f"{i}:{p}".encode()) % 100) / 1000 for i, p in enumerate(parts))

    def __call__(self, arch, seed: int) -> dict:
        self.calls.append(str(arch))
        v = self.value(arch)
        return {"arch": str(arch), "val_acc": v, "test_acc": v - 0.001, "seconds": self.seconds}


@pytest.fixture(scope="module")
def space():
    from nasnav.config import load_config, preset_path

    return load_config(preset_path("mnist1d")).search_space()


@pytest.mark.parametrize("method", ["random", "optuna-tpe", "evolution", "local"])
def test_each_baseline_keeps_its_budget_and_never_trains_twice(method, space):
    if method == "optuna-tpe":
        pytest.importorskip("optuna")
    from bench.search_methods import baseline

    tr = TableTrainer(space)
    c = baseline(method, space, tr, rep=0, max_evals=100, max_seconds=41.0)
    assert c.evals == len(tr.calls) == len(set(tr.calls)) == 21  # 2 s each: stops at the first step past 41 s
    assert 42.0 <= c.t < 43.0  # training seconds plus the method's own (small) measured overhead
    vals = [p[1] for p in c.points]
    assert vals == sorted(vals) and c.best_val == max(tr.value(a) for a in tr.calls)
    assert c.at(0.5) != c.at(0.5) and c.at(c.t) == c.best_test  # nan before the first result
    c2 = baseline(method, space, TableTrainer(space), rep=0, max_evals=5, max_seconds=1e9)
    assert c2.evals == 5 and [p[3] for p in c2.points][:1] == [p[3] for p in c.points][:1]  # deterministic


def test_evolution_is_regularized_evolution(space):
    """Real et al. 2019: after the random population, every child is one mutation of a population member."""
    from bench.search_methods import REA_POPULATION, baseline

    tr = TableTrainer(space)
    baseline("evolution", space, tr, rep=1, max_evals=60, max_seconds=1e9)
    for i in range(REA_POPULATION, len(tr.calls)):
        child = tr.calls[i].split("/")
        window = tr.calls[i - REA_POPULATION:i]  # the population: the last P trained (the oldest left)
        assert any(sum(a != b for a, b in zip(child, m.split("/"))) == 1 for m in window), i


def test_local_search_walks_to_a_local_optimum(space):
    from bench.search_methods import baseline
    from nasnav.search.guided import neighbours

    tr = TableTrainer(space)
    c = baseline("local", space, tr, rep=0, max_evals=200, max_seconds=1e9)
    best = space.parse(c.best_arch)
    # the table is additive: local search climbs to its optimum, the best choice in every stage
    assert all(tr.value(str(n)) <= c.best_val for n in neighbours(space, best))


def test_unknown_method_is_refused():
    from bench.search_efficiency import main

    with pytest.raises(SystemExit):
        main(["--preset", "tiny", "--methods", "random,hillclimb", "--no-write"])


def test_anytime_plot_is_a_png(space, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("NASNAV_BENCH_RESULTS", str(tmp_path / "results"))
    from bench.search_methods import baseline
    from bench.search_plot import link_from_page, plot_curves, plot_path

    curves = {m: [baseline(m, space, TableTrainer(space), rep, 30, 40.0) for rep in range(2)]
              for m in ("random", "local")}
    path = plot_curves(curves, 0.9, [10.0, 20.0], "test", plot_path("my preset/x"))
    assert path == tmp_path / "results" / "plots" / "search_efficiency-my_preset_x.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert link_from_page(path) == "plots/search_efficiency-my_preset_x.png"  # the page sits in the results dir


def test_round_ranking_on_a_real_run(tmp_path):
    """Round 0's and the final round's supernet score the same architectures of the final space."""
    from bench.search_rounds import fmt, round_ranking
    from nasnav.config import load_config, preset_path
    from nasnav.store.records import read_space
    from nasnav.store.run_dir import RunDir
    from nasnav.workflow.pipeline import run_pipeline

    cfg = load_config(preset_path("tiny"), ["supernet.epochs=1", "supernet.warm_start_epochs=1", "search.budget=12"])
    run_pipeline(cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    tr = TableTrainer(cfg.search_space())
    out = round_ranking(run, cfg, tr, n=5, top=4, rng=np.random.default_rng(0))
    k = run.current_round()
    assert out["round"] == k >= 1 and out["size"] < out["full"] == cfg.search_space().size()
    final = run.round_dir(k) / "space.yaml"
    assert final.exists()
    assert out["space_r0"]["n"] == min(5, out["size"]) and out["top_final"]["n"] == 4
    final_space = read_space(run, k, cfg.kind)
    assert tr.calls and all(final_space.contains(final_space.parse(a)) for a in tr.calls)  # all in the final space
    assert fmt({"tau": None, "p": None, "n": 3}) == "-" and fmt({"tau": 0.5, "p": 0.01, "n": 20}) == "0.50 (p 1e-02, N 20)"


def test_an_interrupted_benchmark_goes_on_from_its_progress_file(tmp_path):
    """Finished runs are kept in --progress; a rerun with the same settings runs only what is missing."""
    from bench.search_jobs import run_tasks
    from nasnav.config import preset_path

    init = (str(preset_path("tiny")), [], True, 1, str(tmp_path / "cache.jsonl"), 1, "cpu")
    progress = tmp_path / "progress.jsonl"
    a, b = ("random", 0, {"max_evals": 2, "max_seconds": 1e9}), ("local", 0, {"max_evals": 2, "max_seconds": 1e9})
    ran = []
    (first,) = run_tasks([a], 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [0] and len(progress.read_text().splitlines()) == 1 and first[0].evals == 2
    ran.clear()
    again, other = run_tasks([a, b], 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [1]  # the finished run was read back, only the new one ran
    assert again[0].points == first[0].points and again[0].best_arch == first[0].best_arch and other[0].evals == 2
    changed = (init[0], [], True, 2, *init[4:])  # other standalone epochs: other runs
    ran.clear()
    run_tasks([a], 1, changed, lambda i, r: ran.append(i), progress)
    assert ran == [0]
    from bench.search_jobs import _STATE

    assert _STATE["trainer"].epochs == 2  # this process set up anew for the other settings


def test_an_edited_config_reruns_what_the_edit_changes_and_reuses_the_rest(tmp_path):
    """The progress file keys a baseline's run by what its trainings depend on and a nasnav run by the config
    file's content: an edit of the supernet's settings reruns nasnav only; an edit of the seed reruns both."""
    from bench.search_jobs import run_tasks
    from nasnav.config import preset_path

    config = tmp_path / "space.yaml"
    config.write_text(preset_path("tiny").read_text())
    init = (str(config), [], True, 1, str(tmp_path / "cache.jsonl"), 1, "cpu")
    progress = tmp_path / "progress.jsonl"
    tasks = [("random", 0, {"max_evals": 1, "max_seconds": 1e9}), ("nasnav", 0, {"topk": 1, "ranking": (0, 0)})]
    ran = []
    run_tasks(tasks, 1, init, lambda i, r: ran.append(i), progress)
    run_tasks(tasks, 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [0, 1]  # the same content: both read back
    config.write_text("# a comment changes no setting\n" + config.read_text())
    run_tasks(tasks, 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [0, 1]
    config.write_text(config.read_text().replace("  epochs: 8\n  warm_start_epochs", "  epochs: 7\n  warm_start_epochs"))
    ran.clear()
    run_tasks(tasks, 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [1]  # the supernet's settings: nasnav's run only
    config.write_text(config.read_text().replace("seed: 0", "seed: 1"))
    ran.clear()
    run_tasks(tasks, 1, init, lambda i, r: ran.append(i), progress)
    assert ran == [0, 1] and len(progress.read_text().splitlines()) == 5  # the seed (the data split): both
    from nasnav.workflow.runs import _SPLITS

    assert not _SPLITS  # the bench's split (the base config's, under the rep's seed) left nothing for later runs


def test_reseeded_incumbents_are_judged_by_their_mean_over_fresh_seeds():
    """A search that found a lucky single training (0.99, but 0.90 on fresh seeds) does not beat one whose
    incumbent holds up on fresh seeds (bench/search_reseed.py)."""
    from bench.search_methods import Curve
    from bench.search_reseed import Remeasured, incumbents, reseed_tasks, section

    lucky, solid, weak = "s/lucky", "s/solid", "s/weak"
    fast, slow = Curve(), Curve()
    fast.add(10, {"arch": weak, "val_acc": 0.80, "test_acc": 0.80})
    fast.add(10, {"arch": lucky, "val_acc": 0.99, "test_acc": 0.99})
    slow.add(30, {"arch": solid, "val_acc": 0.95, "test_acc": 0.95})
    curves = {"nasnav": [slow], "evolution": [fast]}
    assert incumbents(curves) == [lucky, solid, weak]
    tasks = reseed_tasks(incumbents(curves), 2, jobs=2)
    assert len(tasks) == 2 and all(t[0] == "reseed" for t in tasks)
    pairs = sorted(p for t in tasks for p in t[2]["pairs"])
    assert pairs == sorted((a, s) for a in (lucky, solid, weak) for s in (101, 102))  # each once, fresh seeds

    tests = {lucky: {101: 0.89, 102: 0.91}, solid: {101: 0.95, 102: 0.97}, weak: {101: 0.80, 102: 0.80}}
    means = {a: float(np.mean(list(s.values()))) for a, s in tests.items()}
    r = Remeasured(curves, means)
    assert r.level == pytest.approx(0.955)
    assert r.reach(slow) == 30 and r.reach(fast) is None
    assert np.isnan(r.at(slow, means, 29)) and r.at(slow, means, 30) == pytest.approx(0.96)
    assert r.at(fast, means, 15) == pytest.approx(0.80) and r.at(fast, means, 25) == pytest.approx(0.90)

    text, metrics = section(curves, tests, 2, t_end=30, budget=100, baselines=["evolution"])
    assert "seeds 101..102" in text and "level = best - 0.5 pp = 0.9550" in text
    assert ("time to reach, re-measured: evolution **< 0.30 (baseline's median run did not reach it in 100 s)** "
            "(target <= 0.20)") in text
    assert "twice it is at least every baseline's: **met**" in text
    assert metrics["reach_s"] == {"nasnav": 30, "evolution": None}
    assert metrics["at_end"]["nasnav"] == {"1": pytest.approx(0.96), "2": pytest.approx(0.96)}
    assert metrics["seed_std"] == pytest.approx(0.01)
    short, _ = section(curves, tests, 2, t_end=30, budget=45, baselines=["evolution"])  # no baseline ran to 60 s
    assert "twice it is at least every baseline's: **not judged**" in short
