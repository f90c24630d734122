"""Test-set discipline: the test split reports and never selects. Every pick, sort order and default among
retrained networks follows validation accuracy, also when the test split would choose another network."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
from test_app_support import finished_copy, ok, page, texts

from nasnav.config import load_config
from nasnav.store import layout
from nasnav.store.io import read_json, write_json
from nasnav.store.records import by_validation, read_finals
from nasnav.store.run_dir import RunDir, arch_key
from nasnav.workflow import pipeline
from nasnav.workflow.model_card import model_card

ROOT = Path(__file__).resolve().parents[1]

# sorting, ranking or taking the best of a test-accuracy column
CHOOSES_BY_TEST = re.compile(
    r"(sort_values|nlargest|nsmallest|sort|sorted|max|min)\([^)]*test_acc"
    r"|\[\s*[\"']test_acc[\"']\s*\]\s*\.\s*(idxmax|idxmin|argmax|argmin|rank|max|min)\(")


def test_no_code_sorts_or_picks_by_test_accuracy():
    files = [*(ROOT / "nasnav").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py",
             *(ROOT / "bench").glob("*.py")]
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
           for i, line in enumerate(p.read_text().splitlines(), 1) if CHOOSES_BY_TEST.search(line)]
    assert not bad, "the test split reports, never selects:\n" + "\n".join(bad)


def _two_finals(path: Path) -> tuple[str, str]:
    """The finished run's retrained network plus a copy under another name: the first has the better
    validation accuracy, the second the better test accuracy. Returns (best by validation, best by test)."""
    run = RunDir(path)
    (key,) = run.finals()
    m = read_json(run.final_dir(key) / layout.FINAL_METRICS)
    first = m["arch"]
    parts = first.split("/")
    other = "/".join(["skip" if parts[0] != "skip" else "conv3x3", *parts[1:]])
    shutil.copytree(run.final_dir(key), run.final_dir(arch_key(other)))
    write_json(run.final_dir(key) / layout.FINAL_METRICS, {**m, "val_acc": 0.95, "test_acc": 0.80})
    write_json(run.final_dir(arch_key(other)) / layout.FINAL_METRICS,
               {**m, "arch": other, "key": arch_key(other), "val_acc": 0.90, "test_acc": 0.99, "params": 1})
    return first, other


def test_retrain_page_and_card_follow_validation(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    by_val, by_test = _two_finals(path)
    run = RunDir(path)
    assert list(by_validation(read_finals(run))["arch"]) == [by_val, by_test]
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    at = ok(page("4_retrain.py", path).run())
    assert list(at.dataframe[0].value["arch"]) == [by_val, by_test]  # the table's order
    assert at.selectbox(key="rt_dl_arch").value == by_val  # the default download
    assert f"Recommended network** (best standalone validation accuracy): `{by_val}`" in texts(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Validation accuracy (chose it)"] == "0.9500" and shown["Test accuracy (reported only)"] == "0.8000"
    cfg = load_config(path / "config.yaml")
    card = model_card(run, cfg, arch_key(by_val))
    assert "test accuracy (reported only)" in card and "what networks are chosen by" in card


def test_headless_run_exports_the_best_by_validation(tmp_path, monkeypatch):
    """``nasnav run`` retrains its top candidates; the one it exports is the best by validation accuracy."""
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["steering.autopilot=false", "supernet.epochs=1",
                                                       "search.budget=6", "retrain.top_k=2"])
    results = iter([(0.90, 0.99), (0.95, 0.80)])  # (val, test): the second retrained is the best by validation
    retrained, exported = [], []

    def fake_retrain(run, cfg, space, picks, **kw):  # every pick at once, as the pipeline sends them
        for arch, one_shot_acc in picks:
            val, test = next(results)
            d = run.final_dir(arch_key(str(arch)))
            d.mkdir(parents=True, exist_ok=True)
            write_json(d / layout.FINAL_METRICS, {"arch": str(arch), "key": arch_key(str(arch)), "val_acc": val, "test_acc":
                                                   test, "params": 10, "flops": 10, "one_shot_acc": one_shot_acc})
            retrained.append(str(arch))
        return [{} for _ in picks]

    def fake_export(run, cfg, arch, **kw):
        exported.append(arch)
        return {"files": []}

    monkeypatch.setattr(pipeline, "retrain_all", fake_retrain)
    monkeypatch.setattr(pipeline, "export_final", fake_export)
    assert pipeline.run_pipeline(cfg, tmp_path / "run") == 0
    assert len(retrained) == 2 and exported == [retrained[1]]
    finals = read_finals(RunDir(tmp_path / "run"))
    assert pd.Series(finals["test_acc"]).idxmax() != pd.Series(finals["val_acc"]).idxmax()  # they disagree
