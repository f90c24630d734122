"""No user string ever becomes code or markup (issue 23, part 1).

Every route a name or label can take into generated Python or Markdown is tried with strings written to
break out: a docstring or comment closer followed by code, line breaks (``\\n``, U+2028), backslashes,
HTML, Markdown links and images. Routes: a config file (and the CLI), an uploaded YAML, the space editor,
a run folder's files (space records, arch.yaml, decisions), CSV class labels and image folder names.
The exporter's ``ast`` check is tried directly with generated files that hold one statement too many.
"""

from __future__ import annotations

import re
from pathlib import Path

import cmarkgfm
import numpy as np
import pytest
import yaml
from cmarkgfm.cmark import Options
from PIL import Image

from nasnav import cli, markdown, names
from nasnav.config import ConfigError, config_from_dict, list_presets, load_config, preset_path
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace
from nasnav.store import layout, records
from nasnav.store.io import read_yaml, write_json, write_yaml
from nasnav.ui import space_edit
from nasnav.workflow import export, retrain
from nasnav.workflow.card_use import split_front_matter
from nasnav.workflow.runs import create_run, round_space
from nasnav.workflow.source_check import UnsafeSource, check_source

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)

MARKER = "PWNED"  # the payloads create this file in the working directory when they run
RUN_IT = f'__import__("pathlib").Path("{MARKER}").touch()'
# Strings written to escape a docstring, a comment or a string, or to become markup. None contains a space,
# '/', '+', ':' or ',', so each passed the stage-name check that was there before the name rule.
NAMES = [
    f'x"""\n{RUN_IT}\n"""',  # closes model.py's docstring, runs, reopens one
    f"x\n{RUN_IT}#",  # a comment in build() ends at the line break
    f"x\u2028{RUN_IT}",  # a line separator: a line break for Markdown and JavaScript
    "x\\\\\\",  # backslashes: escape the closing quote of a string
    "[a](javascript;alert(1))",
    "![i](https;evil.example)",
    "</script><script>alert(1)</script>",
    "\u0441tage",  # Cyrillic 'с': looks like 'stage'
    "1st",
    "x" * 65,
]
# Class labels come from the data and stay free text: they must arrive as data and be shown escaped.
LABELS = [
    f'x"""\n{RUN_IT}\n"""',
    "[a](javascript:alert(1))",
    "![img](http://evil.example/p.png)",
    "</script><script>alert(1)</script>",
    "line\u2028sep `tick` | pipe \\ back",
]
FOLDER_LABELS = [f'x"""\n{RUN_IT}\n"""', "[a](javascript:alert(1))", "<img src=x onerror=alert(1)>", "www.evil.example"]


def render(md_text: str) -> str:
    """The card as GitHub renders it (front matter dropped, raw HTML allowed through to be caught)."""
    body = split_front_matter(md_text)[1]
    return cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE)


def assert_no_markup_from(html: str) -> None:
    assert "<a " not in html and "<img" not in html and "<script" not in html, html


# ---- the rule itself ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", NAMES + ["", "a b", "a/b", "a+b", "a:b", None, 3])
def test_names_off_the_rule_are_refused_with_what_is_valid(bad):
    with pytest.raises(InvalidInput, match=r"stage name: .* is not a valid name; use 1-64 ASCII letters"):
        names.check_name(bad, "stage name")


def test_the_presets_follow_the_rule():
    for name in ("s1", "h3", "conv3x3", "linear_wide", "_x", "a" * 64):
        assert names.check_name(name, "n") == name
    for preset in list_presets():
        space = load_config(preset_path(preset)).search_space()  # would raise on a bad name
        assert all(names.is_name(s.name) and all(map(names.is_name, s.candidates)) for s in space.stages)


@pytest.mark.parametrize("bad", ["a\nb", "..", "-x", "a/b", "[a](b)", "x" * 81, "r\u2028"])
def test_run_names_follow_the_run_rule(bad, tmp_path):
    assert names.check_run_name(" mnist1d-wide.2 ") == "mnist1d-wide.2"
    with pytest.raises(InvalidInput, match="not a valid run name"):
        names.check_run_name(bad)
    if "/" not in bad and bad != "..":  # a folder of that name, as the CLI's --run-dir would make it
        with pytest.raises(InvalidInput, match="run name"):
            create_run(load_config(preset_path("tiny")), tmp_path / bad)
        assert not (tmp_path / bad).exists()


def test_error_messages_quote_a_bad_name_escaped():
    with pytest.raises(InvalidInput) as e:
        names.check_name(NAMES[0], "space.stages[0].name")
    assert "\n" not in str(e.value) and "\\n" in str(e.value)


# ---- config file, CLI, upload, space editor -------------------------------------------------------
def _config_with(stage_name: str, component: str = "conv3x3") -> dict:
    raw = read_yaml(preset_path("tiny"))
    raw["space"]["stages"][0]["name"] = stage_name
    raw["space"]["stages"][1]["candidates"][0] = component
    return raw


@pytest.mark.parametrize("bad", NAMES[:4])
def test_config_file_refuses_names_naming_key_and_file_all_at_once(bad, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    raw = _config_with(bad, component=bad)
    raw["space"]["stages"][2]["channels"] = 0  # an unrelated problem: reported in the same pass
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    assert f"{path}: space.stages[0].name: " in text and f"{path}: space.stages[1].candidates: " in text
    assert "space.stages[2].channels" in text and "is not a valid name" in text
    assert cli.main(["validate", str(path)]) == 2
    out = capsys.readouterr()
    assert "not a valid name" in out.err + out.out and "Traceback" not in out.err
    assert not Path(MARKER).exists()


@pytest.mark.parametrize("bad", NAMES[:3])
def test_uploaded_space_yaml_refuses_names(bad):
    raw = {"space": _config_with(bad)["space"]}
    with pytest.raises(InvalidInput, match=r"upload.yaml: space.stages\[0\].name: .*not a valid name"):
        space_edit.space_from_upload(raw, "upload.yaml")


@pytest.mark.parametrize("bad", NAMES)
def test_space_editor_reports_a_typed_name_in_its_words(bad):
    draft = space_edit.draft_from(read_yaml(preset_path("tiny"))["space"])
    draft["stages"][1]["name"] = bad
    problems = space_edit.problems(draft, "image")
    assert any("(card 2) name" in p and "not a valid name" in p for p in problems), problems
    assert not any("\n" in p or "\u2028" in p for p in problems)  # quoted escaped, never raw
    with pytest.raises(ConfigError, match="not a valid name"):
        space_edit.build_config(read_yaml(preset_path("tiny")), draft)


# ---- run folder files -----------------------------------------------------------------------------
def test_tampered_space_record_is_refused_naming_the_file(tmp_path):
    cfg = load_config(preset_path("tiny"))
    run = create_run(cfg, tmp_path / "run")
    path = records.space_path(run, 0)
    tampered = read_yaml(path)
    tampered["stages"][0]["name"] = NAMES[0]
    tampered["stages"][1]["pruned"] = [NAMES[1]]
    write_yaml(path, tampered)
    for read in (lambda: records.read_space(run, 0), lambda: round_space(run, cfg, 0)):
        with pytest.raises(InvalidInput) as e:
            read()
        assert str(path) in str(e.value) and "stages[0].name" in str(e.value) and "stages[1].pruned" in str(e.value)


def test_tampered_checkpoint_space_is_refused():
    space = SearchSpace.from_dict(read_yaml(preset_path("tiny"))["space"])
    d = space.to_dict()
    d["stages"][2]["candidates"] = ["conv3x3", NAMES[2]]
    with pytest.raises(InvalidInput, match=r"space.stages\[2\].candidates: .*not a valid name"):
        SearchSpace.from_dict(d)


# ---- one retrained network per data route, with hostile class labels --------------------------------
def _tiny_cfg(source: dict, kind: str, tmp_path: Path):
    stage = {"name": "h1", "candidates": ["linear", "skip"], "channels": 8} if kind == "tabular" else \
        {"name": "s1", "candidates": ["conv3x3", "skip"], "channels": 4}
    return config_from_dict({
        "name": "[label](javascript:alert(1)) ![x](http://evil.example/x.png)",
        "data": {"batch_size": 16, **source},
        "space": {"stem_channels": 4, "stages": [stage]},
        "retrain": {"epochs": 1, "augment": False},
        "trainer": {"accelerator": "cpu", "devices": 1},
    }, str(tmp_path / "c.yaml"))


def _export_with(cfg, tmp_path: Path, **kw):
    run = create_run(cfg, tmp_path / "run")
    space = round_space(run, cfg)
    arch = space.parse(str(space.largest()))
    m = retrain.retrain(run, cfg, space, arch)
    export.export_final(run, cfg, str(arch), **kw)
    return run, run.final_dir(m["key"])


@pytest.fixture(scope="module")
def csv_export(tmp_path_factory):
    """A CSV whose label column holds LABELS, retrained one epoch and exported (model.py and the card)."""
    tmp = tmp_path_factory.mktemp("csv")
    rng = np.random.default_rng(0)
    rows = [{"a": float(rng.normal() + i), "b": float(rng.normal()), "label": lab}
            for i, lab in enumerate(LABELS) for _ in range(16)]
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp / "t.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NASNAV_DATA_ROOT", str(tmp))
        mp.chdir(tmp)
        cfg = _tiny_cfg({"source": "csv", "path": str(tmp / "t.csv"), "target": "label"}, "tabular", tmp)
        run, d = _export_with(cfg, tmp, onnx=False, pt2=False)
    return tmp, cfg, run, d


def _check_export(tmp: Path, d: Path, labels: list[str]) -> None:
    assert not (tmp / MARKER).exists(), "a label ran as code"
    mod = export._import_file(d / layout.MODEL_PY, f"injection_{d.name}")
    assert sorted(mod.CLASS_NAMES) == sorted(labels)  # the labels arrive as data, unchanged
    card = (d / layout.CARD).read_text()
    assert str(tmp) not in card, "the card shows the server's path"
    assert_no_markup_from(render(card))
    front = yaml.safe_load(split_front_matter(card)[0])
    assert front["library_name"] == "pytorch" and "NAS-Navigator" in front["citation"]


def test_csv_labels_become_data_and_text_not_code_or_markup(csv_export):
    tmp, cfg, run, d = csv_export
    _check_export(tmp, d, LABELS)
    assert "\\[label\\]" in (d / layout.CARD).read_text()  # the config's label: escaped, shown


def test_image_folder_names_become_data_and_text_not_code_or_markup(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for i, label in enumerate(FOLDER_LABELS):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for j in range(12):
            pixels = np.clip(rng.normal(60 * i, 20, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "imgs" / label / f"{j}.png")
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cfg = _tiny_cfg({"source": "folder", "path": str(tmp_path / "imgs"), "grayscale": True}, "image", tmp_path)
    run, d = _export_with(cfg, tmp_path, onnx=False, pt2=False)
    _check_export(tmp_path, d, FOLDER_LABELS)


# ---- tampered arch.yaml and decisions -------------------------------------------------------------------
@pytest.fixture
def arch_yaml(csv_export, monkeypatch):
    """arch.yaml of the CSV export, restored afterwards; the working directory is where a payload would land."""
    tmp, cfg, run, d = csv_export
    path = d / layout.ARCH
    saved = path.read_text()
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp))
    yield cfg, run, d, path, read_yaml(path)
    path.write_text(saved)
    assert not (tmp / MARKER).exists()


def test_tampered_raw_input_is_data_in_model_py(arch_yaml):
    cfg, run, d, path, rec = arch_yaml
    rec["raw_input"] = f'x"""\n{RUN_IT}\n"""\u2028[a](javascript:alert(1))'
    write_yaml(path, rec)
    export.export_final(run, cfg, rec["arch"], onnx=False, pt2=False, force=True)
    mod = export._import_file(d / layout.MODEL_PY, "injection_raw_input")
    assert mod.RAW_INPUT == rec["raw_input"] and not Path(MARKER).exists()
    assert_no_markup_from(render((d / layout.CARD).read_text()))


@pytest.mark.parametrize("key,value,match", [
    ("stage", NAMES[0], r"space.stages\[0\].name: .*not a valid name"),
    ("stage", NAMES[1], r"space.stages\[0\].name: .*not a valid name"),
    ("mean", ["__import__('os')"], "normalisation.mean: expected a list of finite numbers"),
    ("mean", [float("nan")], "normalisation.mean: expected a list of finite numbers"),
    ("raw_input", ["not", "text"], "raw_input: expected text"),
])
def test_tampered_arch_yaml_is_refused_before_anything_is_written(arch_yaml, key, value, match):
    cfg, run, d, path, rec = arch_yaml
    if key == "stage":
        old = rec["space"]["stages"][0]["name"]
        rec["space"]["stages"][0]["name"] = value
        rec["choices"] = {value: rec["choices"].pop(old)}
    elif key == "mean":
        rec["normalisation"]["mean"] = value
    else:
        rec[key] = value
    write_yaml(path, rec)
    before = (d / layout.MODEL_PY).read_text()
    with pytest.raises(InvalidInput, match=match) as e:
        export.export_final(run, cfg, rec["arch"], onnx=False, pt2=False, force=True)
    assert str(path) in str(e.value)
    assert (d / layout.MODEL_PY).read_text() == before and not Path(MARKER).exists()


def test_tampered_decisions_show_as_text_in_the_card(csv_export, monkeypatch):
    tmp, cfg, run, d = csv_export
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp))
    write_json(run.round_dir(0) / layout.DECISIONS, [{
        "time": "<img src=x onerror=alert(1)>", "source": "[who](javascript:alert(1))", "status": "applied",
        "actions": [{"op": "prune", "stage": "h1", "component": "skip", "reason": "![r](http://evil.example/r.png)"},
                    {"op": "prune", "stage": NAMES[0], "component": "skip"}],
    }])
    try:
        export.export_final(run, cfg, d.name, onnx=False, pt2=False)  # unchanged weights: the card is rewritten
        card = (d / layout.CARD).read_text()
    finally:
        (run.round_dir(0) / layout.DECISIONS).unlink()
    assert "not a readable action" in card and "not a valid name" in card
    assert_no_markup_from(render(card))


# ---- the exporter's ast check -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(csv_export):
    tmp, cfg, run, d = csv_export
    rec = read_yaml(d / layout.ARCH)
    source = export.model_source(rec)
    from nasnav.model.supernet import network_constructors
    from nasnav.workflow.arch_record import check_arch_record

    checked = check_arch_record(rec, "arch.yaml")
    shape = export.model_shape(network_constructors(checked["space"], checked["parsed"], checked["spec"].kind))
    return source, shape


@pytest.mark.parametrize("change", [
    lambda s: s + f"\n{RUN_IT}\n",  # one statement too many
    lambda s: s + "\nimport os\n",
    lambda s: s.replace("import torch\n", "import torch\nimport os\n", 1),
    lambda s: s.replace('"""A network found', f'"""\n{RUN_IT}\n"""A network found', 1),
    lambda s: s.replace("    stages = []\n", f"    stages = []\n    {RUN_IT}\n", 1),
    lambda s: s.replace("    stages = []\n", "    stages = __import__('os').listdir('.')\n", 1),
    lambda s: re.sub(r"\nCLASS_NAMES = .*\n", "\nCLASS_NAMES = __import__('os').listdir('.')\n", s, count=1),
    lambda s: re.sub(r"\nMEAN = .*\n", "\nMEAN = torch.tensor(eval('1')).reshape((1,))\n", s, count=1),
    lambda s: s + "\nARCH = 'again'\n",
    lambda s: s + "\ndef preprocess(x):\n    return x\n",
    lambda s: s.replace("    x = torch.as_tensor(x, dtype=torch.float32)\n",
                        f"    x = torch.as_tensor(x, dtype=torch.float32)\n    {RUN_IT}\n", 1),
    lambda s: s.replace("STD = ", "STDX = ", 1),
    lambda s: s + "\nif True:\n    pass\n",
    lambda s: s + "\n)",
])
def test_ast_check_refuses_anything_but_the_expected_shape(generated, change):
    source, shape = generated
    check_source(source, shape, "model.py")  # the real file passes
    with pytest.raises(UnsafeSource, match="model.py: the generated source .*It was not written or imported"):
        check_source(change(source), shape, "model.py")


def test_exporter_refuses_a_generated_file_with_an_extra_statement_before_importing_it(csv_export, monkeypatch):
    tmp, cfg, run, d = csv_export
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp))
    real = export.network_source
    monkeypatch.setattr(export, "network_source", lambda *a: real(*a).replace(
        "    stages = []\n", f"    stages = []\n    {RUN_IT}\n"))
    before = (d / layout.MODEL_PY).read_text()
    with pytest.raises(UnsafeSource, match=r"build\(\) may only call the network's building blocks"):
        export.export_final(run, cfg, d.name, onnx=False, pt2=False, force=True)
    assert (d / layout.MODEL_PY).read_text() == before and not Path(MARKER).exists()


# ---- markdown escaping ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", LABELS + NAMES + ["https://evil.example", "www.evil.example", "# heading", "1. x",
                                                    "&lt;b&gt;", "$\\href{javascript:x}{y}$"])
def test_escaped_values_render_as_the_same_text(value):
    line = markdown.text(value)
    html = render(f"before {line} after\n\n{line}\n\n| a |\n|---|\n| {line} |\n| {markdown.code(value, True)} |\n")
    assert_no_markup_from(html)
    assert "<h1" not in html and "<ol" not in html and html.count("<p>") == 2
    assert markdown.code("a`b``c").startswith("```") and "\n" not in markdown.text("a\nb\u2028c")


def test_code_spans_keep_even_an_email_address_as_text():
    assert "<a " not in render(markdown.code("mail@evil.example")) and "<a " in render("mail@evil.example")
