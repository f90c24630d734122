"""Export for people without nasnav: self-contained model.py, ONNX, torch.export, model card."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nasnav.analysis import trust
from nasnav.config import load_config
from nasnav.data.splits import InputSpec
from nasnav.model.supernet import build_network
from nasnav.space import SearchSpace
from nasnav.store.io import read_json, write_json
from nasnav.workflow import export, retrain
from nasnav.workflow.card_use import split_front_matter
from nasnav.workflow.runs import create_run, load_data, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

REPO = Path(__file__).resolve().parent.parent
ARCH = "conv3x3/conv3x3+skip/dilconv3x3"


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run with ARCH retrained (2 epochs) and exported."""
    cfg = load_config(
        REPO / "configs" / "tiny.yaml",
        ["steering.autopilot=false", "supernet.epochs=2", "search.budget=6", "retrain.epochs=2"],
    )
    run = create_run(cfg, tmp_path_factory.mktemp("export") / "run")
    train_supernet(run, cfg, 0)
    score_candidates(run, cfg, 0)
    space = round_space(run, cfg)
    m = retrain.retrain(run, cfg, space, space.parse(ARCH), one_shot_acc=0.4242)
    info = export.export_final(run, cfg, ARCH)
    return run, cfg, m, info


def _trained_net(run, cfg, key):
    space = round_space(run, cfg)
    spec = load_data(cfg).spec
    net = build_network(space, space.parse(ARCH), spec.kind, spec.shape[0], spec.num_classes)
    net.load_state_dict(retrain.load_weights(run.final_dir(key) / "weights.pt"))
    return net.eval()


def test_export_writes_every_file(exported):
    run, cfg, m, info = exported
    d = run.final_dir(m["key"])
    for f in (
        "weights.pt",
        "arch.yaml",
        "model.py",
        "example.pt",
        "model.onnx",
        "model.pt2",
        "model_card.md",
        "export.json",
        "metrics.json",
        "metrics.csv",
    ):
        assert (d / f).is_file(), f
    assert info["model_py"]["status"] == "ok"
    assert read_json(d / "export.json")["weights_sha256"] == info["weights_sha256"]


def test_model_py_runs_without_nasnav_and_reproduces_outputs(exported, tmp_path):
    run, cfg, m, info = exported
    d = run.final_dir(m["key"])
    splits = load_data(cfg)
    x_raw = (splits.x_test[:16] * splits.std + splits.mean).numpy()  # what a user hands in: raw scale
    net = _trained_net(run, cfg, m["key"])
    with torch.no_grad():
        expected = net(splits.x_test[:16]).numpy()
    np.save(tmp_path / "x.npy", x_raw)
    np.save(tmp_path / "expected.npy", expected)
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent(f"""
        import importlib.util, sys
        import numpy as np, torch
        assert importlib.util.find_spec("nasnav") is None, "nasnav must not be importable here"
        spec = importlib.util.spec_from_file_location("model", {str(d / "model.py")!r})
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        assert "nasnav" not in sys.modules
        net = model.load({str(d / "weights.pt")!r})
        with torch.no_grad():
            out = net(model.preprocess(np.load("x.npy"))).numpy()
        np.testing.assert_allclose(out, np.load("expected.npy"), atol=1e-5, rtol=0)
        assert model.predict(np.load("x.npy")[0], net).shape == (1,)
        print("OK", out.shape)
        """)
    )
    # -I: no PYTHONPATH, no user site, no script directory; cwd is outside the repository
    res = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "OK (16, 10)" in res.stdout
    # model.py's own self-check against example.pt
    res = subprocess.run(
        [sys.executable, "-I", str(d / "model.py")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "max |logit difference|" in res.stdout


def test_onnx_loads_in_onnxruntime_and_matches(exported):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: ONNX file not checkable here")
    run, cfg, m, info = exported
    assert info["onnx"]["status"] == "ok" and info["onnx"]["checked"]
    sess = ort.InferenceSession(str(run.final_dir(m["key"]) / "model.onnx"), providers=["CPUExecutionProvider"])
    x = load_data(cfg).x_test[:5]  # another batch size than the export's: the batch axis is dynamic
    with torch.no_grad():
        ref = _trained_net(run, cfg, m["key"])(x).numpy()
    np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], ref, atol=1e-4)


def test_torch_export_program_loads_and_matches(exported):
    run, cfg, m, info = exported
    assert info["torch_export"]["status"] == "ok"
    prog = torch.export.load(str(run.final_dir(m["key"]) / "model.pt2")).module()
    x = load_data(cfg).x_test[:3]
    with torch.no_grad():
        assert torch.allclose(prog(x), _trained_net(run, cfg, m["key"])(x), atol=1e-5)


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_skipped_with_a_reason_when_the_exporter_is_missing(monkeypatch, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import <missing> -> ImportError
    net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    res = export.export_onnx(net, torch.zeros(2, 3), tmp_path / "model.onnx")
    assert res["status"] == "skipped" and f"`{missing}`" in res["reason"]
    assert not (tmp_path / "model.onnx").exists()


def test_unchanged_weights_are_not_exported_again(exported):
    run, cfg, m, info = exported
    again = export.export_final(run, cfg, m["key"])  # by key works as well as by arch string
    assert again["exported"] == info["exported"]
    forced = export.export_final(run, cfg, ARCH, onnx=False, pt2=False, force=True)
    assert forced["exported"] > info["exported"] and "onnx" not in forced


def test_model_card_tells_the_story(exported):
    run, cfg, m, info = exported
    d = run.final_dir(m["key"])
    evidence = [
        {
            "stage": "s1",
            "component": "maxpool3x3",
            "fitness": -0.0712,
            "ci_low": -0.1,
            "ci_high": -0.04,
            "frequency": 7,
            "top_with": 0.2,
        }
    ]
    write_json(
        run.round_dir(0) / "decisions.json",
        [  # as nasnav.steering.policy writes it
            {
                "time": "2026-01-01T10:00:00",
                "source": "analyst",
                "round": 0,
                "next_round": 1,
                "status": "applied",
                "actions": [
                    {"op": "prune", "stage": "s1", "component": "maxpool3x3"},
                    {"op": "pin", "stage": "s3", "choice": "conv3x3", "reason": "best in every cell"},
                ],
                "space_size": 120,
                "next_space_size": 30,
                "evidence": evidence,
            },
            {
                "time": "2026-01-01T10:05:00",
                "source": "autopilot",
                "round": 0,
                "actions": [],
                "status": "stop",
                "stop": "round limit reached",
            },
        ],
    )
    acc = np.array([[0.97, 0.975], [0.972, 0.968], [0.969, 0.973], [0.971, 0.97], [0.974, 0.969], [0.968, 0.972]])
    answers = {"prune": trust.prune_answer(np.linspace(0.5, 0.9, 6), acc + np.linspace(-0.2, 0, 6)[:, None], epochs=2),
               "pick": trust.pick_answer(np.linspace(0.9, 0.8, 6), acc, epochs=2)}
    write_json(run.round_dir(0) / "spotcheck.json", {"state": "done", "epochs": 2, "seeds": 2, "answers": answers})
    cands = run.round_dir(0) / "candidates.csv"
    other = "random" if cfg.search.strategy == "evolution" else "evolution"
    saved = cands.read_text()
    df = pd.read_csv(cands)
    df["strategy"] = other  # as a search started with --strategy would record it
    df.to_csv(cands, index=False)
    export.export_final(run, cfg, ARCH)  # unchanged weights: only the card is rewritten
    cands.write_text(saved)
    card = (d / "model_card.md").read_text()
    assert f"candidates scored by {other} search" in card, card[card.find("## The search"):][:600]  # what was done
    assert ARCH in card
    assert f"{100 * m['test_acc']:.2f}%" in card and f"{100 * m['one_shot_acc']:.2f}%" in card
    assert "**prune** `s1:maxpool3x3` (fitness -0.0712 [-0.1000, -0.0400], in 7 candidates" in card
    assert "**pin** `s3:conv3x3`: best in every cell" in card and "space 120 -> 30" in card
    assert "autopilot: stopped here: round limit reached" in card
    assert answers["prune"]["text"] in card and answers["pick"]["text"] in card  # the spot check's own words
    assert answers["pick"]["verdict"] == "equivalent" and "pick by cost" in card.split("## Data")[0]  # in the summary
    assert "good for ranking" not in card  # never more than the spot check said
    assert 'model.load("weights.pt")' in card and "layout." not in card and "parameters" in card and "FLOPs" in card
    (run.round_dir(0) / "decisions.json").unlink()
    (run.round_dir(0) / "spotcheck.json").unlink()


def _fenced_blocks(markdown_text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a Markdown text."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", markdown_text, re.S | re.M)]


def test_every_code_block_of_the_card_runs_in_the_exported_folder(exported, tmp_path):
    run, cfg, m, info = exported
    d = run.final_dir(m["key"])
    blocks = _fenced_blocks((d / "model_card.md").read_text())
    langs = [lang for lang, _ in blocks]
    assert set(langs) <= {"python", "bash", "text", "bibtex"}, langs  # text: output; bibtex: the citation
    assert langs.count("python") == 3 and "bash" in langs  # PyTorch, ONNX, torch.export; model.py's self-check
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` is this one
    for lang, code in blocks:
        if lang == "python":  # -c: the folder (the working directory) is first on sys.path, as in a REPL there
            cmd = [sys.executable, "-c", code]
        elif lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        else:
            continue
        res = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=120, env=env)
        assert res.returncode == 0, f"{lang} block failed:\n{code}\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr


def test_card_front_matter_is_hugging_face_metadata(exported):
    run, cfg, m, info = exported
    card = (run.final_dir(m["key"]) / "model_card.md").read_text()
    front, body = split_front_matter(card)
    assert card.startswith("---\n") and body.startswith("\n# Model card")
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "pytorch" and meta["license"] == "cc-by-4.0" and meta["datasets"] == ["digits"]
    assert meta["metrics"] == ["accuracy"] and "image-classification" in meta["tags"]
    result = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == ARCH and result["dataset"]["name"] == "digits"
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == round(m["test_acc"], 6)
    assert "Tyagi" in meta["citation"] and "NAS-Navigator" in meta["citation"] and "Mueller" in meta["citation"]
    assert meta["intended_use"] and meta["limitations"]
    for heading in ("## Intended use", "## Limitations", "## Citation"):
        assert heading in card
    assert str(run.path) not in card and str(REPO) not in card  # no absolute path of this machine


def test_onnx_comes_from_the_dynamo_exporter(exported):
    run, cfg, m, info = exported
    import onnx

    proto = onnx.load(str(run.final_dir(m["key"]) / "model.onnx"))
    assert proto.producer_name == "pytorch" and [i.name for i in proto.graph.input] == ["x"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert info["onnx"]["exporter"] == "torch.onnx.export(dynamo=True)"


def test_unretrained_arch_is_a_value_error(exported):
    run, cfg, m, info = exported
    with pytest.raises(ValueError, match="not been retrained"):
        export.export_final(run, cfg, "skip/skip/skip")


def test_layers_source_is_torch_only():
    src = export.layers_source()
    assert "import" not in src.split("class ")[0].replace("# ", "")  # imports stripped; model.py adds torch
    assert "class Network" in src and "nasnav" not in src


@pytest.mark.parametrize(
    "kind,shape,candidates",
    [
        ("sequence", (1, 40), ["conv5x5", "sepconv3x3", "avgpool3x3"]),
        ("tabular", (13,), ["linear_wide", "linear_dropout", "skip"]),
        ("image", (3, 16, 16), ["sepconv5x5", "maxpool3x3", "skip"]),
    ],
)
def test_model_source_for_every_input_kind(kind, shape, candidates, tmp_path):
    space = SearchSpace.from_dict(
        {
            "stem_channels": 8,
            "stages": [
                {"name": "a", "candidates": candidates, "select": "any", "max_active": 2, "channels": 8},
                {"name": "b", "candidates": candidates, "channels": 12, "stride": 1 if kind == "tabular" else 2},
            ],
        },
        kind,
    )
    arch = space.parse(f"{candidates[0]}+{candidates[1]}/{candidates[2]}")
    spec = InputSpec(kind, shape, 3, ("a", "b", "c"))
    torch.manual_seed(0)
    net = build_network(space, arch, kind, shape[0], 3).eval()
    mean = torch.rand((shape[0],) + (1,) * (len(shape) - 1)) if kind != "tabular" else torch.rand(shape)
    std = mean + 0.5
    record = {
        "arch": str(arch),
        "space": space.to_dict(),
        "input": spec.to_dict(),
        "raw_input": "test data",
        "normalisation": {"mean": mean.flatten().tolist(), "std": std.flatten().tolist(), "shape": list(mean.shape)},
    }
    (tmp_path / "model.py").write_text(export.model_source(record))
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    mod = export._import_file(tmp_path / "model.py", f"model_{kind}")
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.allclose(
            mod.load(str(tmp_path / "weights.pt"))(mod.preprocess(x)), net((x - mean) / std), atol=1e-6
        )
