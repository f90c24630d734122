"""AppTest of page 4 (retrain & export): no run, a finished run's results and downloads, a retrain
job started from the page (queued, one job at a time) and stopped."""

import time

from test_app_support import finished_copy, ok, page, texts, wait_job_gone

from nasnav.jobs.control import running_job
from nasnav.store.run_dir import RunDir
from nasnav.ui import queue as jobq


def test_without_a_run_it_points_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    at = ok(page("4_retrain.py").run())
    assert "No run is open" in texts(at)


def test_finished_run_shows_results_and_downloads(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    at = ok(page("4_retrain.py", path).run())
    table = at.dataframe[0].value
    assert {"arch", "one_shot_acc", "test_acc", "params", "flops", "latency_ms"} <= set(table.columns)
    assert table["one_shot_acc"].notna().all()  # the estimate is shown beside the standalone accuracy
    single = table["seeds"] < 2
    assert single.any() and (table.loc[single, "test_acc_std"] == "–").all()  # one seed: no spread, not "0.0000"
    # chosen by validation accuracy: the test split reports, never sorts or picks the default download
    assert list(table["val_acc"]) == sorted(table["val_acc"], reverse=True)
    assert at.selectbox(key="rt_dl_arch").value == table["arch"].iloc[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Validation accuracy (chose it)"] == f"{table['val_acc'].iloc[0]:.4f}"
    assert shown["Test accuracy (reported only)"] == f"{table['test_acc'].iloc[0]:.4f}"
    labels = {b.label for b in at.get("download_button")}
    # example.pt too: model.py's own check (`python model.py`) needs it beside the weights
    assert {"model.py", "weights.pt", "arch.yaml", "example.pt", "model.onnx", "model_card.md"} <= labels
    assert len(at.get("vega_lite_chart")) >= 1  # the comparison chart


def test_the_spot_checks_answers_and_advice_show_on_the_page(tmp_path_factory, tmp_path, monkeypatch):
    import numpy as np

    from nasnav.analysis import trust
    from nasnav.store.io import write_json
    from nasnav.store.records import read_candidates

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    top = read_candidates(run, run.current_round()).sort_values("one_shot_acc", ascending=False).head(4)
    acc = 0.985 + np.random.default_rng(1).normal(0, 0.0036, (4, 2))
    answers = {"pick": trust.pick_answer(list(top["one_shot_acc"]), acc, epochs=2),
               "prune": trust.prune_answer(np.linspace(0.5, 0.9, 6), np.linspace(0.5, 0.9, 6)[:, None] + [0, 0.001])}
    pairs = [{"sample": "top", "arch": a, "one_shot_acc": o, "params": p}
             for a, o, p in zip(top["arch"], top["one_shot_acc"], top["params"])]
    write_json(run.round_dir(run.current_round()) / "spotcheck.json",
               {"state": "done", "epochs": 2, "seeds": 2, "answers": answers, "pairs": pairs})
    at = ok(page("4_retrain.py", path).run())
    shown = texts(at)
    assert answers["pick"]["text"] in shown and answers["prune"]["text"] in shown  # the spot check's own words
    assert at.radio(key="rt_mode").value == "as the spot check advises"  # equivalent: the smallest of them
    smallest = top.sort_values("params")["arch"].iloc[0]
    assert "the smallest of them" in shown and f"`{smallest}`" in shown


def test_retrain_button_starts_a_queued_job_that_can_be_stopped(tmp_path_factory, tmp_path, monkeypatch):
    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run = RunDir(path)
    at = ok(page("4_retrain.py", path).run())
    at.radio(key="rt_mode").set_value("choose candidates").run()
    ok(at)
    picks = at.multiselect(key="rt_pick").options[:2]
    at.multiselect(key="rt_pick").set_value(picks).run()
    start = next(b for b in at.button if b.key == "rt_start")
    start.click().run()
    ok(at)
    status = run.read_status()
    assert status["job"] == "retrain" and status["state"] == "running"
    assert jobq.current(run)["arch"] == picks[0]
    assert [i["arch"] for i in jobq.items(run) if i["job"] == "retrain"] == picks[1:]  # waits its turn
    assert "Queued:" in texts(at)
    time.sleep(0.5)
    from nasnav.jobs.control import stop_job

    stop_job(run)
    assert running_job(run) is None
    at.run()
    ok(at)
    assert not at.button(key="rt_q_resume").disabled  # the queue pauses after a stop
    at.button(key="rt_q_clear").click().run()
    assert jobq.items(run) == []
    wait_job_gone(path)


def test_recommended_is_explores_recommendation_and_a_pick_from_explore_opens_on_choose(tmp_path_factory, tmp_path,
                                                                                        monkeypatch):
    from nasnav.workflow.predictions import round_recommendations
    from nasnav.workflow.runs import load_run

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run, cfg = load_run(path)
    k = max(j for j in run.rounds() if (run.round_dir(j) / "candidates.csv").exists())
    expected = round_recommendations(run, cfg, k, n=1)["arch"].iloc[0]
    at = ok(page("4_retrain.py", path).run())
    assert at.radio(key="rt_mode").value == "recommended candidate"
    assert f"`{expected}`" in texts(at)  # the candidate Explore recommends and `run` retrains
    at = ok(page("4_retrain.py", path, retrain_pick=[expected], retrain_pick_new=True).run())
    assert at.radio(key="rt_mode").value == "choose candidates"  # sent from Explore: those networks, ready
    assert at.multiselect(key="rt_pick").value == [expected]


def test_the_walkthrough_names_what_the_selection_retrains(tmp_path_factory, tmp_path, monkeypatch):
    """Issue 27: the walkthrough's next step counts the networks the picker's selection will retrain (it
    said "retrain the best candidate" while the page's default, the spot check's advice, retrained 8)."""
    import re
    import shutil

    import numpy as np

    from nasnav.analysis import trust
    from nasnav.store import records
    from nasnav.store.io import write_json
    from nasnav.workflow.runs import load_run

    path = finished_copy(tmp_path_factory, tmp_path)
    monkeypatch.setenv("NASNAV_RUNS", str(path.parent))
    run, cfg = load_run(path)
    shutil.rmtree(path / "final")  # round 1 searched, nothing retrained yet: the walkthrough's retrain step
    records.write_space(run, 1, records.read_space(run, 0, kind=cfg.kind))
    for f in ("supernet.ckpt", "candidates.csv"):
        shutil.copy(run.round_dir(0) / f, run.round_dir(1) / f)
    run.set_current_round(1)
    top = records.read_candidates(run, 0).sort_values("one_shot_acc", ascending=False).head(6)
    truth = np.linspace(0.80, 0.99, 6)  # the one-shot order reversed: "no", retrain all 6
    answer = trust.pick_answer(list(top["one_shot_acc"]), np.stack([truth, truth + 0.002], 1), epochs=2)
    assert answer["verdict"] == "no"
    pairs = [{"sample": "top", "arch": a, "one_shot_acc": o, "params": p}
             for a, o, p in zip(top["arch"], top["one_shot_acc"], top["params"])]
    write_json(run.round_dir(0) / "spotcheck.json", {"state": "done", "epochs": 2, "seeds": 2,
                                                      "answers": {"pick": answer}, "pairs": pairs})

    def networks(at) -> int:
        return int(re.search(r"retrain (\d+) networks? from scratch", texts(at)).group(1))

    at = ok(page("4_retrain.py", path, walkthrough=True).run())
    assert at.radio(key="rt_mode").value == "as the spot check advises" and networks(at) == 6
    assert "about " in texts(at) and "by this run's own timings" in texts(at)  # its supernet's epochs
    at.radio(key="rt_mode").set_value("recommended candidate").run()
    assert networks(ok(at)) == 1
    at.radio(key="rt_mode").set_value("choose candidates").run()
    at.multiselect(key="rt_pick").set_value(at.multiselect(key="rt_pick").options[:2]).run()
    at.number_input(key="rt_seeds").set_value(2).run()
    assert networks(ok(at)) == 2 and "2 x 2 seeds" in texts(at)
    ex = ok(page("3_explore.py", path, walkthrough=True).run())  # Explore names the Retrain page's default
    assert networks(ex) == 6
