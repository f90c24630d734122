"""nasnav.config: presets load, strict checking with every problem named, overrides, YAML errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from nasnav.config import (
    CONFIG_DIR,
    EVIDENCE_MODES,
    FITNESS_MODES,
    NARROW_BY,
    OPTIMIZERS,
    PROJECTIONS,
    SAMPLERS,
    SCHEDULES,
    SELECT_MODES,
    SOURCES,
    STRATEGIES,
    Config,
    ConfigError,
    SupernetConfig,
    TrainerConfig,
    apply_overrides,
    config_from_dict,
    list_presets,
    load_config,
    preset_path,
)
from nasnav.model.ops import list_ops

PRESETS = sorted(CONFIG_DIR.glob("*.yaml"))
STAGES = [{"name": "s1", "candidates": ["conv3x3", "skip"]}]


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def minimal(**sections) -> dict:
    raw = {"space": {"stages": [dict(s) for s in STAGES]}}
    raw.update(sections)
    return raw


def problems_of(raw, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, "cfg.yaml", overrides)
    assert isinstance(e.value, ValueError)
    assert str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


# ---- presets --------------------------------------------------------------------------------
def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"tiny", "digits", "mnist1d", "cifar10", "tabular"} <= names
    assert list_presets() == sorted(names)


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    space = cfg.search_space()
    assert space.problems(list_ops(cfg.kind)) == []
    assert space.size() >= 2
    assert space.kind == cfg.kind
    # the resolved config survives a YAML round trip unchanged
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), "again")
    assert again == cfg


def test_tiny_preset_values():
    cfg = load_config(preset_path("tiny"))
    assert cfg.kind == "image"
    assert [s.name for s in cfg.space.stages] == ["s1", "s2", "s3"]
    assert cfg.search_space().size() == 4 * (4 + 6) * 3
    assert load_config(preset_path("tabular")).kind == "tabular"
    assert load_config(preset_path("mnist1d")).kind == "sequence"


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'; presets: .*tiny"):
        preset_path("nope")


# ---- strictness -----------------------------------------------------------------------------
def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "seed: 1\nsupernet:\n  epoch: 3\nspace:\n  stages:\n    - {name: s1, candidates: [skip]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    (problem,) = e.value.problems
    assert problem.startswith(f"{p}: supernet.epoch: unknown key")
    assert "epochs" in problem  # lists the valid keys


def test_unknown_top_level_and_stage_keys():
    probs = problems_of({"colour": "red", "space": {"stages": [{"name": "s1", "candidates": ["skip"], "kernel": 3}]}})
    text = "\n".join(probs)
    assert "cfg.yaml: colour: unknown key" in text
    assert "cfg.yaml: space.stages[0].kernel: unknown key" in text
    assert all(p.startswith("cfg.yaml: ") for p in probs)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (minimal(supernet={"epochs": "ten"}), "supernet.epochs: expected int, got 'ten'"),
        (minimal(data={"batch_size": True}), "data.batch_size: expected int, got True"),
        (minimal(supernet={"lr": "fast"}), "supernet.lr: expected float"),
        (minimal(trainer={"deterministic": "yes"}), "trainer.deterministic: expected bool"),
        (minimal(trainer={"devices": [1, 2]}), "trainer.devices: expected int or str"),
        ({"space": {"stages": {"name": "s1"}}}, "space.stages: expected a list"),
        (
            {"space": {"stages": [{"name": "s1", "candidates": "conv3x3"}]}},
            "space.stages[0].candidates: expected a list",
        ),
        ({"space": {"stages": [{"name": "s1"}]}}, "space.stages[0].candidates: missing"),
        ({"space": "big"}, "space: expected a mapping"),
    ],
)
def test_wrong_types(raw, fragment):
    probs = problems_of(raw)
    assert any(fragment in p for p in probs), probs


def test_int_accepts_integral_float_and_float_accepts_int():
    cfg = config_from_dict(minimal(supernet={"epochs": 3.0, "lr": 1}))
    assert cfg.supernet.epochs == 3 and isinstance(cfg.supernet.epochs, int)
    assert cfg.supernet.lr == 1.0 and isinstance(cfg.supernet.lr, float)


def test_impossible_values_all_listed_at_once():
    raw = minimal(
        supernet={"epochs": -1, "optimizer": "rmsprop"},
        search={"budget": 0, "crossover_prob": 1.5},
        data={"val_fraction": 0.0, "batch_size": -3},
        trainer={"devices": 0},
        seed=-1,
    )
    probs = problems_of(raw)
    text = "\n".join(probs)
    for fragment in (
        "supernet.epochs: -1 must be greater than 0",
        "supernet.optimizer: 'rmsprop' is not one of sgd, adam, adamw",
        "search.budget: 0 must be greater than 0",
        "search.crossover_prob: 1.5 must lie strictly between 0 and 1",
        "data.val_fraction: 0.0 must lie strictly between 0 and 1",
        "data.batch_size: -3 must be greater than 0",
        "trainer.devices: 0 must be a positive count",
        "seed: -1 must not be negative",
    ):
        assert fragment in text, fragment
    assert len(probs) >= 8


def test_type_problems_all_listed_at_once():
    probs = problems_of(minimal(colour=1, supernet={"epochs": "x", "lr": "y"}, data={"batch_size": "z"}))
    text = "\n".join(probs)
    for key in ("colour", "supernet.epochs", "supernet.lr", "data.batch_size"):
        assert f"cfg.yaml: {key}:" in text


def test_key_and_value_problems_listed_together():
    probs = problems_of(minimal(colour=1, supernet={"epochs": -1}))
    text = "\n".join(probs)
    assert "colour: unknown key" in text
    assert "supernet.epochs: -1 must be greater than 0" in text


def test_stages_without_a_name_are_named_by_position():
    cfg = config_from_dict({"space": {"stages": [
        {"candidates": ["skip"]}, {"name": "mid", "candidates": ["conv3x3"]}, {"name": None, "candidates": ["skip"]},
    ]}})  # fmt: skip
    assert [s.name for s in cfg.space.stages] == ["s1", "mid", "s3"]
    assert [s.name for s in cfg.search_space().stages] == ["s1", "mid", "s3"]
    # a default name that clashes with a given one is reported like any duplicate
    probs = problems_of({"space": {"stages": [{"name": "s2", "candidates": ["skip"]}, {"candidates": ["skip"]}]}})
    assert any("duplicate stage name 's2'" in p for p in probs), probs


def test_nameless_or_misnamed_stage_does_not_hide_an_unknown_component():
    known = ", ".join(sorted(list_ops("image")))
    unknown = f"cfg.yaml: space.stages[0].candidates: unknown component 'conv9x9'; known: {known}"
    assert problems_of({"space": {"stages": [{"candidates": ["conv3x3", "conv9x9"]}]}}) == [unknown]
    probs = problems_of({"space": {"stages": [{"name": 5, "candidates": ["conv3x3", "conv9x9"]}]}})
    assert probs == ["cfg.yaml: space.stages[0].name: expected str, got 5", unknown]


def test_type_error_elsewhere_does_not_hide_an_unknown_component():
    raw = {
        "supernet": {"epochs": "ten"},
        "trainer": "gpu",
        "space": {"stages": [{"name": "s1", "candidates": ["conv3x3"], "stride": "two"},
                             {"name": "s2", "candidates": ["skip", "conv9x9"]}]},
    }  # fmt: skip
    text = "\n".join(problems_of(raw))
    assert "cfg.yaml: supernet.epochs: expected int, got 'ten'" in text
    assert "cfg.yaml: trainer: expected a mapping, got 'gpu'" in text
    assert "cfg.yaml: space.stages[0].stride: expected int, got 'two'" in text
    assert "cfg.yaml: space.stages[1].candidates: unknown component 'conv9x9'" in text


def test_a_wrong_value_reports_no_consequences():
    """A check that reads a key whose value was wrong is skipped: the default standing in for it
    would make up problems the file does not have."""
    probs = problems_of(minimal(search={"population": "many", "sample_size": 60}))
    assert probs == ["cfg.yaml: search.population: expected int, got 'many'"]
    raw = {"data": {"source": "excel"}, "space": {"stages": [{"name": "h", "candidates": ["linear"], "stride": 2}]}}
    (problem,) = problems_of(raw)
    assert "data.source: 'excel' is not one of digits, mnist1d, folder, cifar, csv" in problem
    raw = {"space": {"stages": [{"name": "s1", "candidates": "skip", "pinned": ["conv3x3"], "pruned": ["x"]}]}}
    assert problems_of(raw) == ["cfg.yaml: space.stages[0].candidates: expected a list, got 'skip'"]


def test_stage_list_problems_name_the_stage():
    probs = problems_of({"space": {"stages": ["conv3x3", {"name": "s2", "candidates": ["skip", 5]}, None]}})
    assert probs == [
        "cfg.yaml: space.stages[0]: expected a mapping, got 'conv3x3'",
        "cfg.yaml: space.stages[1].candidates[1]: expected str, got 5",
        "cfg.yaml: space.stages[2]: expected a mapping, got None",
    ]


def test_empty_section_takes_defaults():
    cfg = config_from_dict({"supernet": None, "trainer": None, **minimal()})
    assert cfg.supernet == SupernetConfig() and cfg.trainer == TrainerConfig()


def test_numbers_from_yaml_text():
    """YAML 1.1 reads 1e-3 as a string: a float key takes it; an int key takes 3.0 but not '3' or True."""
    cfg = config_from_dict(minimal(supernet={"lr": "1e-3"}), overrides=["retrain.lr=5e-4", "search.budget=20.0"])
    assert cfg.supernet.lr == 0.001 and cfg.retrain.lr == 0.0005 and cfg.search.budget == 20
    raw = minimal(search={"budget": "20", "population": True}, supernet={"lr": ".nan", "momentum": float("inf")})
    text = "\n".join(problems_of(raw))
    assert "search.budget: expected int, got '20'" in text
    assert "search.population: expected int, got True" in text
    assert "supernet.lr: expected float, got '.nan'" in text
    assert "supernet.momentum: inf is not a finite number" in text


@pytest.mark.parametrize(
    "key, choices",
    [("data.source", SOURCES), ("supernet.optimizer", OPTIMIZERS), ("retrain.schedule", SCHEDULES),
     ("supernet.sampler", SAMPLERS), ("search.strategy", STRATEGIES), ("search.projection", PROJECTIONS),
     ("steering.fitness", FITNESS_MODES), ("steering.evidence", EVIDENCE_MODES), ("steering.narrow_by", NARROW_BY),
     ("space.stages[0].select", SELECT_MODES)],
)  # fmt: skip
def test_choices_are_declared_once(key, choices):
    assert f"cfg.yaml: {key}: 'bogus' is not one of {', '.join(choices)}" in problems_of(minimal(), [f"{key}=bogus"])
    if key != "data.source":  # the other sources need a path
        for choice in choices:
            config_from_dict(minimal(), overrides=[f"{key}={choice}"])


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (minimal(data={"val_fraction": 0.5, "test_fraction": 0.45}), "must leave at least 10% for training"),
        (minimal(data={"source": "csv", "target": "y"}), "data.path: required for source 'csv'"),
        (minimal(data={"source": "csv", "path": "x.csv"}), "data.target: required for source 'csv'"),
        (minimal(data={"source": "folder"}), "data.path: required for source 'folder'"),
        (minimal(data={"source": "imagenet"}), "data.source: 'imagenet' is not one of"),
        (minimal(search={"population": 4, "sample_size": 5}), "search.sample_size: must not exceed search.population"),
        (minimal(supernet={"sampler": "greedy"}), "supernet.sampler: 'greedy' is not one of uniform, fair"),
        (minimal(search={"max_params": 0}), "search.max_params: 0 must be greater than 0"),
        (minimal(supernet={"warm_start_epochs": -1}), "supernet.warm_start_epochs: -1 must not be negative"),
        (minimal(steering={"confidence": 1.0}), "steering.confidence: 1.0 must lie strictly between 0 and 1"),
        ({"space": {"stages": []}}, "space.stages: empty"),
        ({}, "space.stages: empty"),
    ],
)
def test_impossible_values(raw, fragment):
    probs = problems_of(raw)
    assert any(fragment in p for p in probs), probs


def test_unknown_component_message():
    raw = {"space": {"stages": [
        {"name": "s1", "candidates": ["conv3x3"]},
        {"name": "s2", "candidates": ["skip"]},
        {"name": "s3", "candidates": ["conv3x3", "conv9x9"]},
    ]}}  # fmt: skip
    probs = problems_of(raw)
    known = ", ".join(sorted(list_ops("image")))
    assert f"cfg.yaml: space.stages[2].candidates: unknown component 'conv9x9'; known: {known}" in probs


def test_component_must_fit_the_data_kind():
    raw = minimal(data={"source": "csv", "path": "x.csv", "target": "y"})
    probs = problems_of(raw)
    assert any("space.stages[0].candidates: unknown component 'conv3x3'" in p and "linear" in p for p in probs)


def test_space_level_problems_reported():
    raw = {"space": {"stem_channels": 8, "stages": [
        {"name": "s1", "candidates": ["conv3x3", "skip"], "select": "all", "stride": 3},
        {"name": "s1", "candidates": ["skip"], "pruned": ["skip"]},
    ]}}  # fmt: skip
    text = "\n".join(problems_of(raw))
    assert "space.stages[0].select: 'all'" in text
    assert "space.stages[0].stride: 3 must be 1 or 2" in text
    assert "duplicate stage name 's1'" in text
    assert "space.stages[1]: every component is pruned" in text


def test_tabular_stride_refused():
    raw = {
        "data": {"source": "csv", "path": "x.csv", "target": "y"},
        "space": {"stages": [{"name": "h1", "candidates": ["linear"], "channels": 8, "stride": 2}]},
    }
    assert any("space.stages[0].stride: tabular data has no resolution" in p for p in problems_of(raw))


# ---- overrides ------------------------------------------------------------------------------
def test_overrides_on_preset():
    tiny = preset_path("tiny")
    base = load_config(tiny)
    cfg = load_config(tiny, ["trainer.devices=2", "space.stages[0].channels=32", "supernet.lr=0.1", "name=x y"])
    assert cfg.trainer.devices == 2 and isinstance(cfg.trainer.devices, int)
    assert cfg.space.stages[0].channels == 32
    assert cfg.space.stages[1].channels == base.space.stages[1].channels
    assert cfg.supernet.lr == 0.1
    assert cfg.name == "x y"
    assert load_config(tiny, ["trainer.devices=auto"]).trainer.devices == "auto"
    assert load_config(tiny, ["space.stages[1].candidates=[conv3x3, skip]"]).space.stages[1].candidates == [
        "conv3x3",
        "skip",
    ]
    assert load_config(tiny, ["data.max_samples="]).data.max_samples is None
    # creates a missing section
    assert config_from_dict({"space": {"stages": STAGES}}, overrides=["retrain.epochs=3"]).retrain.epochs == 3


def test_override_does_not_mutate_input():
    raw = minimal(trainer={"devices": 1})
    out = apply_overrides(raw, ["trainer.devices=4", "space.stages[0].channels=8"])
    assert raw["trainer"]["devices"] == 1 and "channels" not in raw["space"]["stages"][0]
    assert out["trainer"]["devices"] == 4 and out["space"]["stages"][0]["channels"] == 8


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("trainer.devices", "expected key=value"),
        ("trainer..devices=2", "'' is not a valid key"),
        ("trainer.dev-ices=2", "is not a valid key"),
        ("space.stages[9].channels=32", "index [9] of 'stages' is out of range"),
        ("seed.x=1", "'x' is inside a value that is not a mapping"),
        ("trainer.devicez=2", "trainer.devicez: unknown key"),
        ("supernet.epochs=-2", "supernet.epochs: -2 must be greater than 0"),
        ("supernet.epochs=many", "supernet.epochs: expected int"),
    ],
)
def test_bad_overrides(override, fragment):
    with pytest.raises(ConfigError) as e:
        load_config(preset_path("tiny"), [override])
    text = "\n".join(e.value.problems)
    assert fragment in text, text
    assert all(p.startswith(str(preset_path("tiny"))) for p in e.value.problems)


# ---- files ----------------------------------------------------------------------------------
def test_malformed_yaml_gives_line_number(tmp_path):
    p = write(tmp_path, "seed: 0\ndata:\n  source: digits\n  batch_size: 64: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    (msg,) = e.value.problems
    assert msg.startswith(f"{p}: not valid YAML")
    assert "line 4" in msg


def test_unclosed_bracket_yaml(tmp_path):
    p = write(tmp_path, "data:\n  source: digits\n  batch_size: [1, 2\nseed: 0\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(p)


def test_top_level_list(tmp_path):
    p = write(tmp_path, "- data\n- space\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    (msg,) = e.value.problems
    assert str(p) in msg and "expected a mapping" in msg and "list" in msg


def test_top_level_scalar(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "just text\n"))


def test_empty_file_needs_stages(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.problems == [f"{p}: space.stages: empty; give at least one stage"]


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_yaml_python_tags_refused(tmp_path):
    """safe_load only: a python object tag is an error, never executed."""
    p = write(tmp_path, "seed: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_config_round_trip_via_file(tmp_path):
    cfg = load_config(preset_path("digits"), ["seed=3"])
    p = write(tmp_path, yaml.safe_dump(cfg.to_dict()))
    again = load_config(p)
    assert again == cfg
    assert dataclasses.asdict(again)["seed"] == 3


def test_device_and_download_keys():
    """search.precision (YAML's 32 is the choice "32"), data.download / data.root, trainer.trainings_per_device."""
    cfg = config_from_dict(minimal(search={"precision": 32}, data={"source": "cifar10", "download": True, "root": "d"},
                                   trainer={"trainings_per_device": 3}))
    assert cfg.search.precision == "32" and cfg.data.download and cfg.data.root == "d"
    assert cfg.trainer.trainings_per_device == 3
    assert "root" not in repr(cfg.data)  # where the files are is not what the data is (caches key on the repr)
    probs = problems_of(minimal(search={"precision": 16}, data={"download": "yes"}, trainer={"trainings_per_device": 0}))
    assert any("search.precision: '16' is not one of auto, bf16, 32" in p for p in probs)
    assert any(p.startswith("cfg.yaml: data.download: expected bool") for p in probs)
    assert any("trainer.trainings_per_device: 0 must be greater than 0" in p for p in probs)
