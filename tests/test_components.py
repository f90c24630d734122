"""Own components (nasnav.components): loaded from the files a config names or an entry point declares,
checked (each fault exits 2 naming the file, the component and what is wrong), listed on the search-space
page, never imported from a config the browser hands in; the README's example file is the one tested."""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml
from test_app_support import ok, page

from nasnav import cli, components
from nasnav.config import ConfigError, config_from_dict, load_config, preset_path
from nasnav.model import ops
from nasnav.workflow.runs import create_run

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "se_blocks.py"

GOOD = '''
class Good(nn.Module):
    """A 3-wide convolution, shape kept."""

    def __init__(self, channels, dim):
        super().__init__()
        self.conv = (nn.Conv2d if dim == 2 else nn.Conv1d)(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
'''


@pytest.fixture
def registry(monkeypatch):
    """What a test registers is gone after it (the registry lives as long as the process)."""
    monkeypatch.setattr(ops, "_REGISTRY", {k: dict(v) for k, v in ops._REGISTRY.items()})
    monkeypatch.setattr(components, "_LOADED", {})
    monkeypatch.setattr(components, "_PROBED", {})
    monkeypatch.setattr(components, "_ENTRY_POINT_PROBLEMS", [])  # no installed entry points unless a test asks


def component_file(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text("import torch\nfrom torch import nn\n" + textwrap.dedent(body))
    return path


def config_file(folder: Path, entries: list[str], s1: list[str], channels: int = 8) -> Path:
    """The tiny preset with stage s1 holding ``s1`` at ``channels`` wide and ``components: entries``."""
    raw = yaml.safe_load(preset_path("tiny").read_text())
    raw["space"]["stages"][0].update(candidates=s1, channels=channels)
    raw["components"] = entries
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_readme_shows_the_example_file_verbatim():
    readme = (REPO / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme


def test_a_file_named_by_a_config_adds_its_components(tmp_path, registry):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "se_blocks.py").write_text(EXAMPLE.read_text())
    cfg = load_config(config_file(tmp_path, ["blocks/se_blocks.py"], ["conv3x3", "se_conv3x3", "se_conv5x5"]))
    assert cfg.components == [str((tmp_path / "blocks" / "se_blocks.py").resolve())]  # relative to the config
    rows = {r["component"]: r for r in ops.catalogue("image")}
    assert rows["se_conv3x3"]["description"].startswith("k-wide convolution, BatchNorm, ReLU")  # the docstring
    assert rows["se_conv5x5"]["description"] == "SEConv with a 5-wide convolution"
    assert rows["se_conv3x3"]["source"] == cfg.components[0] and rows["conv3x3"]["source"] == "built-in"
    assert "se_conv3x3" in ops.list_ops("sequence") and "se_conv3x3" not in ops.list_ops("tabular")
    assert cfg.search_space().size() == 3 * 10 * 3  # s2: any 1 or 2 of its 4 components


def test_a_changed_file_is_loaded_again(tmp_path, registry):
    path = component_file(tmp_path, "blocks", GOOD + 'COMPONENTS = {"good": Good}\n')
    load_config(config_file(tmp_path, ["blocks.py"], ["good", "skip"]))
    path.write_text(path.read_text().replace('{"good": Good}', '{"better": {"cls": Good, "description": "new"}}'))
    load_config(config_file(tmp_path, ["blocks.py"], ["better", "skip"]))
    assert "good" not in ops.list_ops("image")
    assert {r["component"]: r["description"] for r in ops.catalogue("image")}["better"] == "new"


FAULTS = {  # name: (file body, stage s1's candidates, stage width, what stderr says)
    "import_error": ('raise RuntimeError("broken on purpose")\n', ["skip"], 8,
                     r"fails to import: RuntimeError: broken on purpose"),
    "syntax_error": ("def broken(:\n", ["skip"], 8, r"fails to import: SyntaxError at line 3"),
    "no_table": (GOOD, ["skip"], 8, r"defines no COMPONENTS mapping"),
    "builtin_clash": (GOOD + 'COMPONENTS = {"conv3x3": Good}\n', ["conv3x3"], 8,
                      r"component 'conv3x3': the name clashes with a component of nasnav's built-in components"),
    "not_a_module": ('COMPONENTS = {"answer": 42}\n', ["skip"], 8, r"component 'answer': 42 is not a torch.nn.Module"),
    "constructor": (GOOD.replace("def __init__(self, channels, dim)", "def __init__(self, width)")
                    .replace("channels, channels", "width, width").replace("nn.Conv2d if dim == 2 else ", "")
                    + 'COMPONENTS = {"good": Good}\n', ["good"], 8,
                    r"component 'good': wrong constructor Good\(width\): it is built as Good\(channels=C, dim=d\)"),
    "shape": (GOOD.replace("(channels, channels, 3", "(channels, 2 * channels, 3") + 'COMPONENTS = {"wide": Good}\n',
              ["wide"], 8, r"component 'wide': for image data it turns a \(2, 8, 8, 8\) tensor into \(2, 16, 8, 8\); "
              r"a component must keep the shape"),
    "stage_width": (GOOD.replace("padding=1)", "padding=1, groups=8)") + 'COMPONENTS = {"grouped": Good}\n',
                    ["grouped"], 12, r"space.stages\[0\].candidates: component 'grouped' \(.*\) with 12 channels: "
                    r"building it .* failed: ValueError: in_channels must be divisible by groups"),
    "not_source": ("x = 1\x00\n", ["skip"], 8, r"fails to import: (not Python source|SyntaxError)"),
    "bad_kinds": (GOOD + 'KINDS = 5\nCOMPONENTS = {"good": Good}\n', ["skip"], 8,
                  r"component 'good': kinds \[5\]: use some of image, sequence, tabular"),
    "imports_nasnav": ("import nasnav.errors\n" + GOOD + 'COMPONENTS = {"good": Good}\n', ["skip"], 8,
                       r"line 3 imports nasnav; a component is plain PyTorch"),
    "class_name": (GOOD.replace("class Good", "class Stem").replace("super().__init__", "nn.Module.__init__")
                   + 'COMPONENTS = {"stemmy": Stem}\n', ["skip"], 8,
                   r"component 'stemmy': class name Stem clashes with a name of the exported model.py"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_exits_2_naming_the_file_the_component_and_the_problem(fault, tmp_path, registry, capsys):
    body, s1, width, says = FAULTS[fault]
    path = component_file(tmp_path, "blocks", body)
    assert cli.main(["validate", str(config_file(tmp_path, ["blocks.py"], s1, width))]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and re.search(says, err), err
    assert "Traceback" not in err and "unknown component" not in err  # the cause, not its consequences


def test_a_missing_file_and_a_clash_between_two_files(tmp_path, registry, capsys):
    one = component_file(tmp_path, "one", GOOD + 'COMPONENTS = {"good": Good}\n')
    (tmp_path / "b").mkdir()
    two = component_file(tmp_path / "b", "two", GOOD.replace("Good", "Fine") + 'COMPONENTS = {"good": Fine}\n')
    assert cli.main(["validate", str(config_file(tmp_path, ["one.py", "b/two.py", "gone.py"], ["good"]))]) == 2
    err = capsys.readouterr().err
    assert f"components[1]: {two}: component 'good': the name clashes with a component of {one}" in err
    assert f"components[2]: {tmp_path / 'gone.py'}: component file not found" in err
    assert "components[0]" not in err


def test_a_config_from_the_browser_imports_no_file(tmp_path, registry, capsys):
    """An uploaded config (load_code=False) may only name what the app was started with."""
    marker = tmp_path / "imported"
    path = component_file(tmp_path, "blocks", f"open({str(marker)!r}, 'w').close()\n{GOOD}COMPONENTS = {{'good': Good}}\n")
    raw = yaml.safe_load(config_file(tmp_path, [str(path)], ["good", "skip"]).read_text())
    with pytest.raises(ConfigError, match=r"not loaded in this app, and a config from the browser never imports code"):
        config_from_dict(raw, "upload.yaml", load_code=False)
    assert not marker.exists()
    from nasnav.ui import launch

    assert launch.load_components(["--components", str(path), "--server.port", "1"]) == ["--server.port", "1"]
    assert marker.exists()  # `nasnav app --components FILE` imported it
    assert config_from_dict(raw, "upload.yaml", load_code=False).components == [str(path)]
    from nasnav.__main__ import main

    assert main(["app", "--components", str(tmp_path / "nope.py")]) == 2  # `nasnav app` stops before serving
    assert f"--components: components[0]: {tmp_path / 'nope.py'}: component file not found" in capsys.readouterr().err


def test_a_config_names_a_module_of_an_installed_package(tmp_path, registry, monkeypatch):
    (tmp_path / "lab_blocks.py").write_text(EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = yaml.safe_load(config_file(tmp_path, ["lab_blocks"], ["se_conv5x5", "skip"]).read_text())
    with pytest.raises(ConfigError, match="lab_blocks: not loaded in this app"):
        config_from_dict(raw, "upload.yaml", load_code=False)
    assert config_from_dict(raw, "config.yaml").components == ["lab_blocks"]
    assert ops.get_op("se_conv5x5", "image").source == str(tmp_path / "lab_blocks.py")
    with pytest.raises(ConfigError, match=r"components\[0\]: module no_such_blocks: fails to import"):
        config_from_dict({**raw, "components": ["no_such_blocks"]}, "config.yaml")


def _installed(where: Path, monkeypatch, dist: str, entry_point: str) -> None:
    """A package ``dist`` installed in ``where`` (on sys.path), declaring ``entry_point`` under nasnav.components."""
    info = where / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nasnav.components]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.setattr(components, "_ENTRY_POINT_PROBLEMS", None)


def test_an_installed_package_declares_components_by_entry_point(tmp_path, registry, monkeypatch):
    (tmp_path / "lab_plugin.py").write_text(EXAMPLE.read_text())
    _installed(tmp_path, monkeypatch, "lab-blocks", "se = lab_plugin")
    cfg = load_config(config_file(tmp_path, [], ["se_conv3x3", "skip"]))  # the config names no file
    assert ops.get_op("se_conv3x3", "image").module == "lab_plugin" and cfg.components == []


def test_a_broken_entry_point_is_a_config_problem_naming_it(tmp_path, registry, monkeypatch):
    _installed(tmp_path, monkeypatch, "lab-broken", "bad = lab_missing_module")
    with pytest.raises(ConfigError, match=r"entry point 'bad' of lab-broken \(nasnav.components\): module "
                                          r"lab_missing_module: fails to import: ModuleNotFoundError"):
        load_config(preset_path("tiny"))


def test_a_spawned_process_finds_own_component_classes_by_module_name(tmp_path, registry, monkeypatch):
    """ddp_spawn and multiprocessing unpickle classes before reading any config: the file is found by its name."""
    monkeypatch.setenv(components._ENV, "{}")
    (tmp_path / "se_blocks.py").write_text(EXAMPLE.read_text())
    load_config(config_file(tmp_path, ["se_blocks.py"], ["se_conv3x3", "skip"]))
    spec = ops.get_op("se_conv3x3", "image")
    assert spec.cls.__module__.startswith("nasnav_user_se_blocks_")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # it unpickles the class
        assert pool.submit(components.probe, spec, "image", 12).result(timeout=120) is None


def test_the_search_space_page_lists_own_components(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path))
    (tmp_path / "se_blocks.py").write_text(EXAMPLE.read_text())
    run = create_run(load_config(config_file(tmp_path, ["se_blocks.py"], ["se_conv3x3", "skip"])), tmp_path / "r")
    at = ok(page("1_search_space.py", run.path).run())
    table = next(t.value for t in at.table if t.value.index.name == "component")  # the Components list
    row = table.loc["se_conv5x5"]
    assert row["description"] == "SEConv with a 5-wide convolution" and row["source"].endswith("se_blocks.py")


@pytest.mark.slow
def test_an_own_component_goes_through_the_whole_loop(tmp_path):
    """Supernet (two DDP ranks), search, retrain and export, then a spot check (two training workers), each
    in its own `python -m nasnav` process as the app's jobs run; the export runs without nasnav."""
    from test_cli import nasnav

    (tmp_path / "se_blocks.py").write_text(EXAMPLE.read_text())
    raw = yaml.safe_load(preset_path("tiny").read_text())
    raw["space"]["stages"][0]["candidates"] = ["se_conv3x3", "skip"]
    raw["space"]["stages"][2]["candidates"] = ["se_conv5x5"]  # in every architecture: the pick exports it
    raw["components"] = ["se_blocks.py"]
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    steps = [  # `run`: supernet, search, retrain and export of the pick
        ["run", str(tmp_path / "own.yaml"), "--run-dir", str(run), "--set", "steering.autopilot=false",
         "supernet.epochs=2", "retrain.epochs=1", "search.budget=8", "trainer.devices=2"],
        ["spotcheck", str(run), "--n", "2", "--top", "1", "--epochs", "1", "--seeds", "1"],
    ]
    for args in steps:
        res = nasnav(*args)
        assert res.returncode == 0, f"{args[0]}: {res.stdout}\n{res.stderr}"
    assert yaml.safe_load((run / "config.yaml").read_text())["components"] == [str(tmp_path / "se_blocks.py")]
    assert len(next(run.rglob("spotcheck_runs.csv")).read_text().splitlines()) >= 3  # trainings of own components
    (final,) = (run / "final").iterdir()
    info = yaml.safe_load((final / "export.json").read_text())
    assert "se_blocks.py" in info["files"] and (final / "se_blocks.py").read_text() == EXAMPLE.read_text()
    assert info["model_py"]["status"] == "ok" and info["onnx"]["status"] == "ok"
    alone = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}  # no PYTHONPATH: nasnav cannot be imported
    check = subprocess.run([sys.executable, "model.py"], cwd=final, env=alone, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "max |logit difference|" in check.stdout
    no_nasnav = subprocess.run([sys.executable, "-c", "import nasnav"], cwd=final, env=alone, capture_output=True)
    assert no_nasnav.returncode != 0
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    logits = ort.InferenceSession(str(final / "model.onnx")).run(None, {"x": x})[0]
    assert logits.shape == (3, 10) and np.isfinite(logits).all()
