"""BENCHMARKS.md is generated from bench/results: records keep what runs printed, the page shows the
newest run per benchmark and group, with its command, and stays small."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import records, report  # noqa: E402

BODY = """Preset `tiny` (12 architectures). **Ceiling** (2 pairs): 0.500 [0.4, 0.6].

### Noise 1 pp

| variant | N | tau | p | share | time s | note |
|---|---|---|---|---|---|---|
| sampler=fair | 50 | 0.400 | 6e-05 | 96% | 0.979 [0.953, 1.05] | - |
| sampler=uniform | 50 | 0.456 | 0.001 | 4% | 265 [241, 265] | never |

Verdict: missed."""


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    """Nothing here may write into bench/results, whatever a test forgets to pass."""
    monkeypatch.setenv("NASNAV_BENCH_RESULTS", str(tmp_path / "env-results"))


def _record(bench: str, group: str, date: str, tau: str, command: str | None = None) -> dict:
    body = f"Group {group}.\n\n| variant | tau | target |\n|---|---|---|\n| v-{date} | {tau} | missed |\n"
    return {"benchmark": bench, "group": group, "title": f"{bench} ({group})", "date": date, "machine": "2 cores",
            "command": command or f"python bench/{bench}.py --preset {group} # {date}", "params": {"preset": group},
            "metrics": {"ceiling": 0.5}, "blocks": records.parse_body(body)}


def test_blocks_print_back_exactly_with_numbers_as_numbers():
    blocks = records.parse_body(BODY)
    assert [next(iter(b)) for b in blocks] == ["text", "heading", "table", "text"]
    table = blocks[2]["table"]
    assert table["rows"][0][:6] == ["sampler=fair", 50, 0.4, 6e-05, 0.96, [0.979, 0.953, 1.05]]
    assert table["rows"][1][6] == "never" and table["rows"][0][6] == "-"
    assert records.render_blocks(blocks) == BODY


def test_append_keeps_every_run_and_moves_latest(tmp_path):
    for date, cmd in [("2026-01-01 10:00", "a"), ("2026-01-02 10:00", "b"), ("2026-01-03 10:00", "a")]:
        records.append_record(_record("ranking", "tiny", date, "0.1", command=cmd), tmp_path)
    recs = records.read_records(tmp_path / "ranking.jsonl")
    assert [(r["command"], r["latest"]) for r in recs] == [("a", False), ("b", True), ("a", True)]


def test_page_shows_only_the_newest_run_per_benchmark_and_group(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PAGE_GROUPS", {})  # every group shown (the repository's page hides some)
    for rec in [_record("ranking", "digits", "2026-01-01 10:00", "0.111"),
                _record("ranking", "mnist1d", "2026-01-01 11:00", "0.222"),
                _record("ranking", "digits", "2026-01-02 10:00", "0.333"),
                _record("my_new_bench", "x", "2026-01-02 12:00", "0.444")]:
        records.append_record(rec, tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "ranking.md").write_text("Earlier: tau 0.111 ({cmd ranking 2026-01-01 10:00}).\n")
    page = report.render_page(tmp_path)
    assert page.startswith("# nasnav benchmarks")
    heads = [line for line in page.splitlines() if line.startswith("#")]
    assert heads == ["# nasnav benchmarks", "## Targets (the newest runs below)", f"## {report.HEADINGS['ranking']}",
                     "### digits", "### mnist1d", "## my_new_bench (x)", "### x"]
    assert "| v-2026-01-02 10:00 | 0.333 | missed |" in page  # the newest digits run
    assert "v-2026-01-01 10:00" not in page  # the older digits run is only in the records
    assert "`python bench/ranking.py --preset digits # 2026-01-02 10:00` — 2026-01-02 10:00" in page
    assert "Every run below: 2 cores" in page  # what every run shares is said once
    assert "Earlier: tau 0.111 (`python bench/ranking.py --preset digits # 2026-01-01 10:00` (2026-01-01 10:00))." in page
    assert "| ranking (digits): tau >= 0.8 and >= 0.9 of the ceiling | best 0.333 (v-2026-01-02 10:00), 0.67 of 0.500 |" \
        in page
    # written next to the records, never to the repository's page
    assert report.main(["--results", str(tmp_path)]) == 0
    assert (tmp_path / "BENCHMARKS.md").read_text() == page
    assert report.main(["--results", str(tmp_path), "--check"]) == 0


def test_a_note_citing_no_run_is_an_error(tmp_path):
    records.append_record(_record("ranking", "digits", "2026-01-01 10:00", "0.1"), tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "ranking.md").write_text("{cmd ranking 2025-01-01 10:00}")
    with pytest.raises(ValueError, match="names no run"):
        report.render_page(tmp_path)


def test_check_fails_on_a_stale_page(tmp_path):
    records.append_record(_record("ranking", "digits", "2026-01-01 10:00", "0.1"), tmp_path)
    (tmp_path / "BENCHMARKS.md").write_text("# hand-edited\n")
    assert report.main(["--results", str(tmp_path), "--check"]) == 1


def test_repository_page_is_generated_small_and_every_run_has_its_command():
    page = report.render_page(records.DEFAULT_RESULTS)
    assert len(page.encode()) < 25_000  # grew with the realistic search (and its re-measured view), Slurm, lab server
    assert (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") == page, "run: python -m bench.report"
    sections = page.split("\n### ")[1:]
    assert sections and all("\n\n`python bench/" in s.split("\n\n## ")[0] for s in sections)
    every = records.load_all(records.DEFAULT_RESULTS)
    assert all(r["blocks"] and r["command"].startswith("python bench/") for rs in every.values() for r in rs)
    for rs in every.values():  # exactly one latest run per command
        latest = [r["command"] for r in rs if r["latest"]]
        assert sorted(latest) == sorted({r["command"] for r in rs})


def test_a_benchmark_can_show_only_some_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PAGE_GROUPS", {"ranking": ("mnist1d",)})
    for rec in [_record("ranking", "digits", "2026-01-01 10:00", "0.111"),
                _record("ranking", "mnist1d", "2026-01-01 11:00", "0.222")]:
        records.append_record(rec, tmp_path)
    page = report.render_page(tmp_path)
    assert "### mnist1d" in page and "### digits" not in page and "v-2026-01-01 10:00" not in page
    monkeypatch.setattr(report, "PAGE_GROUPS", {"ranking": ("cifar10",)})  # none of its groups recorded: all shown
    assert "### digits" in report.render_page(tmp_path)


def test_a_superseded_benchmark_stays_in_the_records_but_leaves_the_page(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PAGE_GROUPS", {})
    for rec in [_record("ranking", "digits", "2026-01-01 10:00", "0.111"),
                _record("search_efficiency", "digits", "2026-01-01 11:00", "0.222")]:
        records.append_record(rec, tmp_path)
    monkeypatch.setattr(report, "SUPERSEDED", frozenset({"ranking"}))
    page = report.render_page(tmp_path)
    assert "v-2026-01-01 10:00" not in page and "v-2026-01-01 11:00" in page
    assert len(records.load_all(tmp_path)["ranking"]) == 1


def test_search_targets_of_a_realistic_run(tmp_path):
    """The issue-24 targets: both ratios, the incumbent at nasnav's end and twice it, the space's difficulty
    (spaces of 100,000+ only), and whether the final round's supernet ranks its space better."""
    rec = _record("search_efficiency", "big", "2026-01-01 10:00", "0.1")
    tau = lambda r0, fin: {"space_r0": {"tau": r0}, "space_final": {"tau": fin}}  # noqa: E731
    rec["metrics"] = {"ratio": 0.15, "ratios": {"optuna-tpe": 0.15, "evolution": None, "random": 0.5},
                      "at_end": {"nasnav": {"1": 0.98, "2": 0.98}, "evolution": {"1": 0.97, "2": 0.985}},
                      "share_random": 0.05, "draws_random": 120, "space_size": 262_144, "ranking": [tau(0.2, 0.4), tau(0.3, 0.1), None]}
    got = {t: (res, met) for t, res, met in report._search_efficiency(rec)}
    assert got["search (big): nasnav <= 1/5 of Optuna's time to 0.5 pp of the best"] == ("ratio 0.15", True)
    assert got["search (big): nasnav <= 1/5 of regularized evolution's time to 0.5 pp of the best"][1] is False
    assert got["search (big): nasnav's median incumbent >= every baseline's at its end time and twice it"] == (
        "behind: evolution at 2x", False)
    assert got["difficulty (big, 262,144 architectures): <= 2 % of >= 100 uniform draws within 0.5 pp of the best"] == (
        "5.0% of 120", False)
    assert got["rounds (big): the final round's supernet ranks the final space better than round 0's"] == (
        "in 1/2 runs", False)
    rerun = "search (big), incumbents re-measured on 5 fresh seeds: nasnav's median >= every baseline's at its end time and twice it"
    assert rerun not in got  # no re-measurement in this run: no row
    rec["metrics"]["reseeded"] = {"seeds": 5, "at_end": {"nasnav": {"1": 0.95, "2": 0.96}, "local": {"1": 0.96, "2": 0.95},
                                                         "random": {"1": 0.94, "2": 0.96}}}
    got = {t: (res, met) for t, res, met in report._search_efficiency(rec)}
    assert got[rerun] == ("behind: local at 1x", False)
    rec["metrics"]["reseeded"]["at_end"]["local"]["1"] = 0.95
    assert {t: met for t, _, met in report._search_efficiency(rec)}[rerun] is True
    rec["metrics"].update(space_size=2_058, ranking=[])  # a small space: no difficulty target, no rounds row
    assert [t for t in dict.fromkeys(t for t, _, _ in report._search_efficiency(rec)) if "difficulty" in t
            or "rounds" in t] == []


def test_a_steering_suite_run_of_the_test_tables_alone_is_judged_without_nb201():
    """A run on held-out seeds of the test tables only judges those tables (no NB201 row to read as 0 % kept)."""
    rec = _record("steering_suite", "seeds from 100", "2026-01-01 10:00", "0.1")
    rec["metrics"] = {"test_ratio": 0.94, "significantly_worse": []}
    ((target, result, met),) = report._steering_suite(rec)
    assert "NB201" not in target and "seeds from 100" in target and result == "0.94x; worse: none" and met is True
    rec["metrics"] = {"test_ratio": 0.75, "significantly_worse": ["pubmed"]}
    assert list(report._steering_suite(rec))[0][1:] == ("0.75x; worse: pubmed", False)
    rec["metrics"] = {"test_ratio": 1.05, "significantly_worse": []}
    assert list(report._steering_suite(rec))[0][2] is False
    rec["metrics"] = {"test_ratio": 0.75, "significantly_worse": [], "nb201_kept_share": 0.95}  # the whole suite
    ((target, result, met),) = report._steering_suite(rec)
    assert "NB201 kept" in target and result == "0.75x; none; 95%" and met is True


def test_search_target_says_which_median_run_did_not_reach_the_level():
    """No ratio: the page says whether nasnav's median run missed the level, or the baseline's (then nasnav's time
    over the baseline's budget bounds the ratio, and a bound <= 0.2 meets the target)."""
    rec = _record("search_efficiency", "big", "2026-01-01 10:00", "0.1")
    target = "search (big): nasnav <= 1/5 of Optuna's time to 0.5 pp of the best"
    rec["metrics"] = {"ratios": {"optuna-tpe": None}, "reach_s": {"nasnav": None, "optuna-tpe": 146.0}, "budget_s": 650}
    got = {t: (res, met) for t, res, met in report._search_efficiency(rec)}
    assert got[target] == ("nasnav's median run did not reach it", False)
    rec["metrics"]["reach_s"] = {"nasnav": 100.0, "optuna-tpe": None}
    got = {t: (res, met) for t, res, met in report._search_efficiency(rec)}
    assert got[target] == ("< 0.15 (optuna-tpe's median run did not reach it)", True)
    rec["metrics"]["budget_s"] = 300
    got = {t: (res, met) for t, res, met in report._search_efficiency(rec)}
    assert got[target] == ("< 0.33 (optuna-tpe's median run did not reach it)", False)
