"""Hostile inputs through the real command line: config files, CLI arguments, uploaded YAML, data
folders / CSV / CIFAR files, architecture strings and damaged run files.

Every case must end with exit code 2 and a message naming the problem (the key, file or value),
never a traceback; cases that act on an existing run must leave its files byte for byte as they
were (only the job bookkeeping, status.json / heartbeat / lock / logs, may change). Most cases call
``nasnav.cli.main`` in-process (a process start costs seconds of torch import); a few run the real
``python -m nasnav`` where the process boundary matters. RELIABILITY.md lists every case.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nasnav import cli
from nasnav.config import config_from_dict, preset_path
from nasnav.store import layout
from nasnav.store.io import read_json, read_yaml
from nasnav.store.run_dir import RunDir
from nasnav.workflow.runs import create_run
from nasnav.workflow.supernet import save_supernet, train_supernet

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = read_yaml(preset_path("tiny"))
FAST = ["data.max_samples=300", "supernet.epochs=1", "search.budget=4", "retrain.epochs=1",
        "trainer.enable_progress_bar=false", "steering.autopilot=false"]
BOOKKEEPING = {"status.json", "heartbeat", "job.lock", ".job.lock.guard", ".state.lock"}  # a refused job may touch these


def tiny(**sections) -> dict:
    """The tiny preset as a dict with whole sections replaced or merged."""
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def snapshot(path: Path) -> dict[str, str]:
    """sha256 of every file of a run but the job bookkeeping."""
    out = {}
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and f.name not in BOOKKEEPING and rel.parts[0] != "logs":
            out[str(rel)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# ---- data files ---------------------------------------------------------------------------------
def image(path: Path, size=(8, 8), seed=0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)


def folder(root: Path, classes=("cat", "dog"), n=6, size=(8, 8)) -> Path:
    for k, c in enumerate(classes):
        for i in range(n):
            image(root / c / f"{i}.png", size, seed=100 * k + i)
    return root


def csv_file(path: Path, rows: list[str], header="a,b,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def good_rows(n=30) -> list[str]:
    return [f"{i % 3 + 0.5},{i * 0.1:.2f},{'xyz'[i % 3]}" for i in range(n)]


def cifar(root: Path, per_batch=6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), b"labels": [i % 3 for i in range(per_batch)]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=4))
    return root


class Evil:
    """A pickle that runs a shell command when loaded unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---- the run the run-file cases damage (a copy each) ------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> RunDir:
    """Round 0 with a supernet (1 epoch), 3 scored candidates and one retrained architecture."""
    root = tmp_path_factory.mktemp("hostile")
    cfg = config_from_dict(tiny(), "tiny", FAST)
    run = create_run(cfg, root / "base")
    train_supernet(run, cfg, 0)
    assert cli.main(["evaluate", str(run.path), "--n", "3"]) == 0
    assert cli.main(["retrain", str(run.path), "--arch", "conv3x3/conv1x1/skip", "--no-export"]) == 0
    return run


@pytest.fixture(scope="module")
def other_space_ckpt(tmp_path_factory) -> Path:
    """A supernet checkpoint of a different space (untrained weights are enough)."""
    from nasnav.data.splits import InputSpec
    from nasnav.train.modules import SupernetModule

    raw = tiny(space={"stem_channels": 8, "stages": [{"name": "x", "candidates": ["conv3x3", "skip"], "channels": 8}]})
    cfg = config_from_dict(raw, "other", FAST)
    space = cfg.search_space()
    spec = InputSpec("image", (1, 8, 8), 10, tuple("0123456789"))
    module = SupernetModule(space.to_dict(), "image", 1, 10, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                                                             "weight_decay": 0.0, "schedule": "constant"})
    path = tmp_path_factory.mktemp("other") / layout.SUPERNET
    save_supernet(path, module, space, cfg, spec, 1)
    return path


# ---- the table --------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    what: str  # config | cli | data | arch | run
    build: Callable[[Path, dict], list[str]]  # (tmp dir, fixtures) -> argv; may write files / damage the run
    match: str  # regex the error output must contain
    may_touch: tuple[str, ...] = ()  # run files besides the job bookkeeping that may record the attempt


def cfg_file(tmp: Path, content, name="cfg.yaml") -> str:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False))
    return str(path)


def validate(content, *sets: str) -> Callable[[Path, dict], list[str]]:
    return lambda tmp, fx: ["validate", cfg_file(tmp, content), *(["--set", *sets] if sets else [])]


def run_cmd(content, *sets: str) -> Callable[[Path, dict], list[str]]:
    """`run CONFIG --run-dir tmp/new-run`: the test checks that no run directory appears."""
    return lambda tmp, fx: ["run", cfg_file(tmp, content), "--run-dir", str(tmp / "new-run"), "--set", *FAST, *sets]


def data_cfg(source: str, make: Callable[[Path], Path], **extra) -> Callable[[Path, dict], list[str]]:
    def build(tmp: Path, fx: dict) -> list[str]:
        path = make(tmp)
        space = TINY["space"]
        if source == "csv":  # a tabular space
            space = {"stem_channels": 8, "stages": [{"name": "h", "candidates": ["linear", "skip"], "channels": 8}]}
        raw = tiny(data={"source": source, "path": str(path), "max_samples": None, **extra}, space=space)
        return ["validate", cfg_file(tmp, raw)]

    return build


def on_run(damage: Callable[[RunDir, dict], None], *argv: str) -> Callable[[Path, dict], list[str]]:
    """A private copy of the base run, damaged by ``damage``; RUN in argv is replaced by its path."""

    def build(tmp: Path, fx: dict) -> list[str]:
        path = tmp / "run"
        shutil.copytree(fx["base_run"].path, path)
        damage(RunDir(path), fx)
        fx["run"] = path
        return [str(path) if a == "RUN" else a for a in argv]

    return build


def nothing(run: RunDir, fx: dict) -> None:
    pass


def write(rel: str, content: bytes | str) -> Callable[[RunDir, dict], None]:
    def damage(run: RunDir, fx: dict) -> None:
        p = run.path / rel
        p.write_bytes(content if isinstance(content, bytes) else content.encode())

    return damage


def torch_file(rel: str, obj) -> Callable[[RunDir, dict], None]:
    def damage(run: RunDir, fx: dict) -> None:
        torch.save(obj, run.path / rel)

    return damage


def nan_weights(run: RunDir, fx: dict) -> None:
    path = run.round_dir(0) / layout.SUPERNET
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))
    torch.save(ckpt, path)


def foreign_ckpt(rel: str) -> Callable[[RunDir, dict], None]:
    def damage(run: RunDir, fx: dict) -> None:
        shutil.copy(fx["other_space_ckpt"], run.path / rel)

    return damage


def foreign_lightning_ckpt(run: RunDir, fx: dict) -> None:
    last = run.round_dir(0) / "lightning" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["hyper_parameters"]["space"] = torch.load(fx["other_space_ckpt"], weights_only=True)["space"]
    torch.save(ckpt, last)


ARCH = "conv3x3/conv1x1/skip"
ONE_CLASS = lambda tmp: folder(tmp / "imgs", classes=("only",))  # noqa: E731

CASES = [
    # -- config files
    Case("yaml_syntax", "config", validate("data: {source: digits\nspace: [\n"), r"cfg\.yaml: not valid YAML \(line \d+"),
    Case("yaml_tabs", "config", validate("data:\n\tsource: digits\n"), r"not valid YAML \(line 2"),
    Case("yaml_top_level_list", "config", validate("- data\n- space\n"), r"expected a mapping of sections.*got list"),
    Case("yaml_binary", "config", validate(bytes(range(256)) * 4), r"cfg\.yaml: not a UTF-8 text file"),
    Case("yaml_python_tag", "config", validate("data: !!python/object/apply:os.system ['echo pwned']\n"),
         r"not valid YAML.*python/object"),
    Case("yaml_empty", "config", validate(""), r"space\.stages: empty"),
    Case("config_missing", "config", lambda tmp, fx: ["validate", str(tmp / "nope.yaml")], r"nope\.yaml: config file not found"),
    Case("config_is_folder", "config", lambda tmp, fx: ["validate", str(tmp)], r"config file not found"),
    Case("unknown_section", "config", validate(tiny(optimiser={"lr": 1})), r"optimiser: unknown key; valid keys: data"),
    Case("unknown_key", "config", validate(tiny(supernet={"epoch": 3})), r"supernet\.epoch: unknown key.*epochs"),
    Case("wrong_type_int", "config", validate(tiny(supernet={"epochs": "ten"})), r"supernet\.epochs: expected int, got 'ten'"),
    Case("wrong_type_bool_as_int", "config", validate(tiny(search={"budget": True})), r"search\.budget: expected int"),
    Case("wrong_type_section", "config", validate(tiny(supernet=5)), r"supernet: expected a mapping, got 5"),
    Case("unknown_component", "config", validate(tiny(space={"stem_channels": 8, "stages": [
        {"name": "s1", "candidates": ["conv3x3", "warpdrive"]}]})), r"stages\[0\]\.candidates: unknown component 'warpdrive'; known:"),
    Case("unknown_source", "config", validate(tiny(data={"source": "imagenet"})), r"data\.source: 'imagenet' is not one of"),
    Case("empty_stages", "config", validate(tiny(space={"stem_channels": 8, "stages": []})), r"space\.stages: empty"),
    Case("empty_candidates", "config", validate(tiny(space={"stem_channels": 8, "stages": [{"name": "s", "candidates": []}]})),
         r"stages\[0\]\.candidates: empty"),
    Case("zero_channels", "config", validate(TINY, "space.stages[0].channels=0"), r"stages\[0\]\.channels: 0 is out of range 1\.\.4096"),
    Case("huge_channels", "config", validate(TINY, "space.stages[1].channels=100000000"), r"stages\[1\]\.channels: 100000000 is out of range"),
    Case("zero_stem", "config", validate(TINY, "space.stem_channels=0"), r"space\.stem_channels: 0 must be greater than 0"),
    Case("bad_stride", "config", validate(TINY, "space.stages[0].stride=3"), r"stages\[0\]\.stride: 3 must be 1 or 2"),
    Case("duplicate_stage", "config", validate(tiny(space={"stem_channels": 8, "stages": [
        {"name": "s", "candidates": ["skip"]}, {"name": "s", "candidates": ["conv3x3"]}]})), r"duplicate stage name 's'"),
    Case("budget_zero", "config", validate(TINY, "search.budget=0"), r"search\.budget: 0 must be greater than 0"),
    Case("negative_epochs", "config", validate(TINY, "supernet.epochs=-3"), r"supernet\.epochs: -3 must be greater than 0"),
    Case("negative_retrain_epochs", "config", validate(TINY, "retrain.epochs=-1"), r"retrain\.epochs: -1 must be greater than 0"),
    Case("zero_lr", "config", validate(TINY, "supernet.lr=0"), r"supernet\.lr: 0\.0 must be greater than 0"),
    Case("fractions_leave_nothing", "config", validate(TINY, "data.val_fraction=0.5", "data.test_fraction=0.45"),
         r"must leave at least 10% for training"),
    Case("run_refuses_bad_config", "config", run_cmd(TINY, "supernet.epochs=0"), r"supernet\.epochs: 0 must be greater than 0"),
    # -- command-line arguments
    Case("set_without_equals", "cli", validate(TINY, "supernet.epochs"), r"override 'supernet\.epochs': expected key=value"),
    Case("set_index_out_of_range", "cli", validate(TINY, "space.stages[9].channels=4"), r"index \[9\] of 'stages' is out of range"),
    Case("set_unknown_key", "cli", validate(TINY, "supernet.warp=9"), r"supernet\.warp: unknown key"),
    Case("set_bad_key_syntax", "cli", validate(TINY, "supernet..lr=1"), r"'' is not a valid key"),
    Case("n_zero", "cli", on_run(nothing, "evaluate", "RUN", "--n", "0"), r"--n must be at least 1"),
    Case("n_not_a_number", "cli", on_run(nothing, "evaluate", "RUN", "--n", "lots"), r"invalid int value: 'lots'"),
    Case("unknown_command", "cli", lambda tmp, fx: ["frobnicate"], r"invalid choice: 'frobnicate'"),
    Case("missing_required_arch", "cli", on_run(nothing, "retrain", "RUN"), r"the following arguments are required: --arch"),
    Case("seeds_zero", "cli", on_run(nothing, "retrain", "RUN", "--arch", ARCH, "--seeds", "0"), r"--seeds: 0 must be at least 1"),
    Case("not_a_run", "cli", lambda tmp, fx: ["supernet", str(tmp)], r"not a nasnav run directory \(no config\.yaml\)"),
    Case("run_dir_is_a_file", "cli", lambda tmp, fx: ["run", str(preset_path("tiny")), "--run-dir", cfg_file(tmp, "x")],
         r"exists and is not a folder"),
    Case("run_dir_holds_a_run", "cli", on_run(nothing, "run", str(preset_path("tiny")), "--run-dir", "RUN"),
         r"already exists \(it holds a run; resume it instead\)"),
    Case("round_missing", "cli", on_run(nothing, "evaluate", "RUN", "--n", "2", "--round", "7"), r"round 7 has no space\.yaml"),
    # -- architecture strings
    Case("arch_unknown_component", "arch", on_run(nothing, "retrain", "RUN", "--arch", "conv3x3/warp9/skip"), r"warp9"),
    Case("arch_too_few_stages", "arch", on_run(nothing, "retrain", "RUN", "--arch", "conv3x3/skip"), r"3 stages|stage"),
    Case("arch_empty", "arch", on_run(nothing, "retrain", "RUN", "--arch", ""), r"architecture: empty string"),
    Case("arch_repeated_component", "arch", on_run(nothing, "retrain", "RUN", "--arch", "conv3x3/conv1x1+conv1x1/skip"),
         r"repeats a component"),
    Case("arch_too_many_in_any_stage", "arch", on_run(nothing, "retrain", "RUN", "--arch", "conv3x3/conv3x3+conv1x1+skip/skip"),
         r"s2"),
    Case("arch_two_in_one_stage", "arch", on_run(nothing, "retrain", "RUN", "--arch", "conv3x3+skip/conv1x1/skip"), r"s1"),
    Case("arch_path_traversal", "arch", on_run(nothing, "retrain", "RUN", "--arch", "../../../etc/passwd"), r"architecture"),
    Case("arch_pruned_component", "arch", on_run(write("rounds/000/space.yaml", yaml.safe_dump(
        {**TINY["space"], "stages": [{**TINY["space"]["stages"][0], "pruned": ["skip"]}, *TINY["space"]["stages"][1:]]})),
        "retrain", "RUN", "--arch", "skip/conv1x1/skip"), r"skip.*pruned|pruned.*skip"),
    # -- data folders, CSV and CIFAR files
    Case("folder_one_class", "data", data_cfg("folder", ONE_CLASS), r"only one class folder \('only'\); need at least 2"),
    Case("folder_corrupt_image", "data", data_cfg("folder", lambda tmp: (
        folder(tmp / "imgs"), (tmp / "imgs" / "cat" / "9.png").write_bytes(b"\x89PNG not really"))[0]),
        r"cannot read image '.*9\.png'.*remove or replace the file"),
    Case("folder_empty_class", "data", data_cfg("folder", lambda tmp: (folder(tmp / "imgs"), (tmp / "imgs" / "bird").mkdir())[0]),
         r"class folder '.*bird' holds no images"),
    Case("folder_mixed_sizes", "data", data_cfg("folder", lambda tmp: (folder(tmp / "imgs"), image(tmp / "imgs" / "dog" / "big.png", (16, 12)))[0]),
         r"images differ in size.*set data\.image_size"),
    Case("folder_missing", "data", data_cfg("folder", lambda tmp: tmp / "nowhere"), r"data\.path: '.*nowhere' does not exist"),
    Case("folder_is_a_file", "data", data_cfg("folder", lambda tmp: Path(cfg_file(tmp, "x", "file.txt"))), r"is not a directory"),
    Case("folder_no_classes", "data", data_cfg("folder", lambda tmp: (tmp / "flat").mkdir() or tmp / "flat"), r"has no class subfolders"),
    Case("csv_text_feature", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", [*good_rows(), "high,1.0,x"]), target="label"),
         r"column 'a' of '.*t\.csv' is not numeric \('high' on file line 32\)"),
    Case("csv_nan_target", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", [*good_rows(), "1.0,2.0,"]), target="label"),
         r"data\.target: column 'label' .* has 1 empty values"),
    Case("csv_nan_feature", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", [*good_rows(), "nan,2.0,x"]), target="label"),
         r"column 'a' .* has 1 missing or infinite values \(file lines 32\)"),
    Case("csv_missing_target", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", good_rows()), target="species"),
         r"data\.target: no column 'species'.*columns are: a, b, label"),
    Case("csv_empty", "data", data_cfg("csv", lambda tmp: Path(cfg_file(tmp, "", "e.csv")), target="label"), r"cannot read '.*e\.csv' as CSV"),
    Case("csv_binary", "data", data_cfg("csv", lambda tmp: Path(cfg_file(tmp, np.random.default_rng(0).bytes(3000), "b.csv")), target="label"),
         r"data\.(path|target)"),
    Case("csv_one_class", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", [f"{i},{i},z" for i in range(30)]), target="label"),
         r"1 class\(es\); classification needs at least 2"),
    Case("csv_id_target", "data", data_cfg("csv", lambda tmp: csv_file(tmp / "t.csv", [f"{i},{i},{i}" for i in range(60)]), target="label"),
         r"looks like a number to predict or an ID"),
    Case("cifar_code_pickle", "data", data_cfg("cifar", lambda tmp: (
        cifar(tmp / "cifar"), (tmp / "cifar" / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(tmp / "pwned")})))[0]),
        r"data_batch_1' refers to 'posix\.system'.*refusing to load it"),
    Case("cifar_truncated", "data", data_cfg("cifar", lambda tmp: (
        cifar(tmp / "cifar"), (tmp / "cifar" / "test_batch").write_bytes((tmp / "cifar" / "data_batch_1").read_bytes()[:500]))[0]),
        r"test_batch' is not a readable CIFAR batch"),
    Case("cifar_no_batches", "data", data_cfg("cifar", lambda tmp: (tmp / "c").mkdir() or tmp / "c"), r"holds no CIFAR batches"),
    Case("cifar_wrong_shape", "data", data_cfg("cifar", lambda tmp: (
        cifar(tmp / "cifar"), (tmp / "cifar" / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})))[0]),
        r"test_batch' is not a CIFAR batch \(needs b'data' rows of 3072 bytes"),
    # -- damaged or foreign run files
    Case("ckpt_from_another_space", "run", on_run(foreign_ckpt(f"rounds/000/{layout.SUPERNET}"), "evaluate", "RUN", "--n", "2"),
         r"supernet\.ckpt: this checkpoint was trained on another search space"),
    # random bytes, seeded: seed 0 reads as an unknown pickle opcode, 17 makes the unpickler itself fail (IndexError)
    Case("ckpt_garbage", "run", on_run(write(f"rounds/000/{layout.SUPERNET}", np.random.default_rng(0).bytes(4000)),
                                       "evaluate", "RUN", "--n", "2"),
         r"supernet\.ckpt: not a readable nasnav checkpoint \(it is not a plain weights file\)"),
    Case("ckpt_garbage_breaks_unpickler", "run", on_run(write(f"rounds/000/{layout.SUPERNET}", np.random.default_rng(17).bytes(4000)),
                                                        "evaluate", "RUN", "--n", "2"),
         r"supernet\.ckpt: not a readable nasnav checkpoint \(it is damaged or not a checkpoint at all: IndexError"),
    Case("ckpt_truncated", "run", on_run(lambda run, fx: (run.round_dir(0) / layout.SUPERNET).write_bytes(
        (run.round_dir(0) / layout.SUPERNET).read_bytes()[:3000]), "evaluate", "RUN", "--n", "2"),
        r"supernet\.ckpt: not a readable nasnav checkpoint \(it is damaged or cut short\)"),
    Case("ckpt_not_nasnav", "run", on_run(torch_file(f"rounds/000/{layout.SUPERNET}", {"weights": torch.zeros(3)}), "evaluate", "RUN", "--n", "2"),
         r"supernet\.ckpt: not a nasnav supernet checkpoint"),
    Case("ckpt_nan_weights", "run", on_run(nan_weights, "evaluate", "RUN", "--n", "2"), r"NaN or infinite.*lower supernet\.lr"),
    Case("ckpt_code_pickle", "run", on_run(torch_file(f"rounds/000/{layout.SUPERNET}", {"state_dict": Evil(Path("/tmp/nasnav-pwned-ckpt"))}),
                                           "evaluate", "RUN", "--n", "2"), r"supernet\.ckpt: not a readable nasnav checkpoint \(it names Python code \(posix\.system\), which is never loaded"),
    Case("last_ckpt_from_another_space", "run", on_run(foreign_lightning_ckpt, "supernet", "RUN", "--resume"),
         r"last\.ckpt: this checkpoint belongs to another search space"),
    Case("last_ckpt_garbage", "run", on_run(write("rounds/000/lightning/last.ckpt", b"\x00" * 100), "supernet", "RUN", "--resume"),
         r"last\.ckpt: not a readable training checkpoint \(it .*\); delete it"),
    Case("config_yaml_garbage", "run", on_run(write("config.yaml", "data: [unclosed\n"), "evaluate", "RUN", "--n", "2"),
         r"config\.yaml: not valid YAML \(line"),
    Case("config_yaml_edited_badly", "run", on_run(lambda run, fx: (run.config_path).write_text(
        run.config_path.read_text().replace("epochs: 1\n", "epochs: -1\n", 1)), "evaluate", "RUN", "--n", "2"),
         r"config\.yaml: supernet\.epochs: -1 must be greater than 0"),
    Case("space_yaml_garbage", "run", on_run(write("rounds/000/space.yaml", "stages: 5\n"), "evaluate", "RUN", "--n", "2"),
         r"space\.yaml: space\.stages: expected a list of stages"),
    Case("current_round_garbage", "run", on_run(write("current_round.json", '{"round": "two"}'), "evaluate", "RUN", "--n", "2"),
         r"current_round\.json: expected \{\"round\": <int >= 0>\}"),
    Case("current_round_not_json", "run", on_run(write("current_round.json", "{round"), "evaluate", "RUN", "--n", "2"),
         r"current_round\.json: not valid JSON"),
    Case("candidates_csv_foreign_header", "run", on_run(write("rounds/000/candidates.csv", "id,score\n1,0.5\n"), "evaluate", "RUN", "--n", "2"),
         r"candidates\.csv: has columns \['id', 'score'\]; cannot append", may_touch=("rounds/000/search.json",)),
]
IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hostile_input_exits_2_with_a_clear_message(case: Case, tmp_path, capsys, request):
    fx = {}
    if case.what in ("run", "cli", "arch") and "on_run" in case.build.__qualname__:
        fx["base_run"] = request.getfixturevalue("base_run")
        if "foreign" in case.id or "another_space" in case.id:
            fx["other_space_ckpt"] = request.getfixturevalue("other_space_ckpt")
    argv = case.build(tmp_path, fx)
    run_path = fx.get("run")
    before = snapshot(run_path) if run_path else None
    capsys.readouterr()
    code = cli.main(argv)
    out = capsys.readouterr()
    text = out.err + out.out
    if os.environ.get("NASNAV_SHOW_MESSAGES"):  # for RELIABILITY.md: the message each case gets
        with open(os.environ["NASNAV_SHOW_MESSAGES"], "a") as f:
            f.write(f"{case.id}\t{code}\t{' | '.join(text.strip().splitlines())[:400]}\n")
    assert code == 2, f"exit {code}:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    import re

    assert re.search(case.match, text, re.S), f"{case.match!r} not in:\n{text}"
    assert len(text) < 5000, "the message should be short enough to read"
    if before is not None:
        after = snapshot(run_path)
        for rel in case.may_touch:  # e.g. the search records its failed attempt in search.json
            before.pop(rel, None), after.pop(rel, None)
        assert after == before, "a refused command changed the run's files"
        status = RunDir(run_path).read_status()
        assert status["state"] != "running"
    assert not (tmp_path / "new-run").exists(), "an invalid `run` left a run directory behind"
    assert not (tmp_path / "pwned").exists() and not Path("/tmp/nasnav-pwned-ckpt").exists()


def test_there_are_at_least_30_cases_over_every_kind():
    kinds = {c.what for c in CASES}
    assert len(CASES) >= 30 and kinds == {"config", "cli", "data", "arch", "run"}


# ---- tolerated damage: the run keeps working ----------------------------------------------------------
def test_corrupt_status_json_reads_interrupted_and_the_next_job_repairs_it(base_run, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(base_run.path, path)
    run = RunDir(path)
    run.status_path.write_text("{not json")
    status = run.read_status()
    assert status["state"] == "interrupted" and "status.json: not valid JSON" in status["message"]
    assert cli.main(["evaluate", str(path), "--n", "1"]) == 0
    assert read_json(run.status_path)["state"] == "done"


def test_cut_off_candidates_row_is_dropped_and_search_continues(base_run, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(base_run.path, path)
    run = RunDir(path)
    csv = run.round_dir(0) / "candidates.csv"
    csv.write_bytes(csv.read_bytes() + b"0,conv3x3/avgpool3x3/sk")  # a writer killed mid-row
    assert cli.main(["evaluate", str(path), "--n", "2"]) == 0
    from nasnav.store.records import read_candidates

    df = read_candidates(run, 0)
    assert len(df) == 5 and not df["arch"].duplicated().any() and df["one_shot_acc"].notna().all()


# ---- numerical faults ---------------------------------------------------------------------------
@pytest.mark.parametrize("command,sets", [
    ("supernet", ["supernet.lr=1000000.0", "supernet.grad_clip=null", "supernet.momentum=0.0"]),
    ("retrain", ["retrain.lr=1000000000.0", "retrain.momentum=0.0"]),
])
def test_diverging_training_stops_with_a_suggestion(command, sets, tmp_path, capsys):
    cfg = config_from_dict(tiny(), "tiny", [*FAST, "supernet.epochs=3", "retrain.epochs=3", *sets])
    run = create_run(cfg, tmp_path / "nan")
    argv = [command, str(run.path)] + (["--arch", ARCH, "--no-export"] if command == "retrain" else [])
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    key = "supernet.lr" if command == "supernet" else "retrain.lr"
    assert "training diverged" in err and f"lower the learning rate ({key}" in err and "Traceback" not in err, err
    status = run.read_status()
    assert status["state"] == "failed" and "training diverged" in status["error"]
    assert not (run.round_dir(0) / layout.SUPERNET).exists()
    for metrics in run.path.rglob("metrics*.csv"):  # no NaN accuracy was recorded
        from nasnav.store.io import read_csv

        assert read_csv(metrics, columns=["val_acc"])["val_acc"].notna().all(), metrics
    assert not list(run.path.rglob("metrics.json")) and not list(run.path.rglob("weights.pt"))


def test_exploding_but_finite_loss_is_caught():
    from types import SimpleNamespace

    from nasnav.train.trainer import NonFiniteLoss, NonFiniteLossError

    trainer = SimpleNamespace(current_epoch=2)
    cb = NonFiniteLoss("supernet.lr")  # named here: the module argument below is None
    cb.on_train_batch_end(trainer, None, {"loss": torch.tensor(3.2)}, None, 0)  # fine
    with pytest.raises(NonFiniteLossError, match=r"training loss became 1e\+07 at epoch 3, batch 5.*supernet\.lr"):
        cb.on_train_batch_end(trainer, None, {"loss": torch.tensor(1e7)}, None, 4)
    with pytest.raises(ValueError, match="became inf"):  # a ValueError: the CLI exits 2
        cb.on_train_batch_end(trainer, None, torch.tensor(float("inf")), None, 0)


def test_overflowing_supernet_scores_nothing(base_run, tmp_path, capsys):
    """Finite but enormous weights (training blew up without a NaN) give NaN outputs: the evaluator
    refuses with the suggestion instead of writing NaN accuracies into candidates.csv."""
    path = tmp_path / "run"
    shutil.copytree(base_run.path, path)
    run = RunDir(path)
    ckpt_path = run.round_dir(0) / layout.SUPERNET
    ckpt = torch.load(ckpt_path, weights_only=True)
    for k, v in ckpt["state_dict"].items():
        if k.endswith("weight") and v.is_floating_point():
            ckpt["state_dict"][k] = v * 1e30  # float32 overflows to inf, inf - inf = NaN
    torch.save(ckpt, ckpt_path)
    before = (run.round_dir(0) / "candidates.csv").read_bytes()
    capsys.readouterr()
    assert cli.main(["evaluate", str(path), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "NaN outputs" in err and "lower supernet.lr" in err and "Traceback" not in err, err
    assert (run.round_dir(0) / "candidates.csv").read_bytes() == before


# ---- a few cases through a real process ---------------------------------------------------------
@pytest.mark.parametrize("argv,match", [
    (["validate", "{tmp}/bad.yaml"], "supernet.epoch: unknown key"),
    (["run", "{tmp}/bad.yaml", "--run-dir", "{tmp}/r"], "supernet.epoch: unknown key"),
])
def test_real_process_exit_code_and_stderr(argv, match, tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny(supernet={"epoch": 3})))
    argv = [a.format(tmp=tmp_path) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "nasnav", *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and match in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


# ---- numbers, YAML aliases and damaged weights ---------------------------------------------------
@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_learning_rate_is_refused_by_validate(value, tmp_path, capsys):
    assert cli.main(["validate", cfg_file(tmp_path, TINY), "--set", f"supernet.lr={value}"]) == 2
    assert "supernet.lr" in capsys.readouterr().err


def test_scientific_notation_learning_rate_is_accepted(tmp_path, capsys):
    assert cli.main(["validate", cfg_file(tmp_path, TINY), "--set", "supernet.lr=1e-3"]) == 0


def test_yaml_alias_bomb_gives_a_short_message(tmp_path, capsys):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 6)]
    lines.append("name: *a5")  # 9**6 = 531441 strings if expanded
    t0 = time.time()
    code = cli.main(["validate", cfg_file(tmp_path, "\n".join(lines) + "\n")])
    err = capsys.readouterr().err
    assert code == 2 and len(err) < 5000 and time.time() - t0 < 5, len(err)


def test_damaged_final_weights_exit_2(base_run, tmp_path, capsys):
    from nasnav.store.run_dir import arch_key

    path = tmp_path / "run"
    shutil.copytree(base_run.path, path)
    (RunDir(path).final_dir(arch_key(ARCH)) / "weights.pt").write_bytes(b"\x00" * 64)
    code = cli.main(["export", str(path), "--arch", ARCH, "--no-onnx", "--no-pt2"])
    err = capsys.readouterr().err
    assert code == 2 and "weights.pt" in err and "Traceback" not in err, err


def test_reliability_md_lists_every_case():
    text = (REPO / "RELIABILITY.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in text]
    assert not missing, f"RELIABILITY.md does not list: {missing}"
