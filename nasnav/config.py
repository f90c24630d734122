"""Configuration: one dataclass per YAML section, loaded and checked strictly.

Every problem (unknown key, wrong type, impossible value) is reported with the file and the
dotted key, and all problems are reported at once (``ConfigError.problems``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from nasnav.space import SearchSpace, Stage

SOURCE_KIND = {"digits": "image", "mnist1d": "sequence", "folder": "image", "cifar": "image", "csv": "tabular"}
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A config with one or more problems; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class DataConfig:
    source: str = "digits"  # digits | mnist1d | folder | cifar | csv
    path: str | None = None  # folder / CIFAR batch directory / CSV file, for sources that read files
    target: str | None = None  # CSV column holding the class label
    val_fraction: float = 0.15  # share of samples for validation (model selection)
    test_fraction: float = 0.15  # share held out for the final test, never used for selection
    batch_size: int = 64
    image_size: int | None = None  # resize folder images to this square size
    grayscale: bool = False  # folder images: 1 channel instead of RGB
    max_samples: int | None = None  # stratified subset before splitting (quick trials)
    num_workers: int = 0  # DataLoader workers; data lives in memory, 0 is usually fastest


@dataclass
class StageConfig:
    name: str
    candidates: list[str]  # component names from the ops registry
    select: str = "one"  # one: single path; any: non-empty subset, outputs summed
    max_active: int | None = None  # with select any: at most this many at once
    channels: int = 16  # output width of the stage
    stride: int = 1  # 2 halves the resolution at the stage's entry
    pruned: list[str] = field(default_factory=list)
    pinned: list[str] | None = None


@dataclass
class SpaceConfig:
    stem_channels: int = 16  # width of the input layer
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class SupernetConfig:
    epochs: int = 20  # one-shot training epochs of round 0
    warm_start_epochs: int = 5  # fine-tuning epochs of each later round (warm start)
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | constant
    sampler: str = "fair"  # uniform: random path per step; fair: every component equally often
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    distill: bool = False  # in-place distillation from the largest path (twice the step cost; ranks better)


@dataclass
class SearchConfig:
    strategy: str = "random"  # random | evolution
    budget: int = 100  # candidates to score per round
    seconds: float | None = None  # optional wall-time budget per round
    population: int = 50  # evolution: population size
    sample_size: int = 10  # evolution: tournament size
    crossover_prob: float = 0.5  # evolution: share of children made by crossover
    recal_batches: int = 4  # training batches for BatchNorm recalibration per candidate
    max_params: int | None = None  # constraint: skip larger candidates
    max_flops: int | None = None  # constraint
    projection: str = "mds"  # mds | tsne | umap | pca
    projection_reference: int = 1000  # the 2-D layout is fitted on this many architectures of the original space
    mutation_retries: int = 50  # evolution: tries for an unseen child before sampling a random one


@dataclass
class SteeringConfig:
    autopilot: bool = False  # headless run: the auto-pilot decides round after round
    rounds: int = 3  # at most this many rounds (round 0 included; with extend, extensions count too)
    max_prune_per_round: int = 2  # per stage
    min_space_size: int = 4  # pruning stops at this size; narrowing to a share of the space never goes below it
    confidence: float = 0.95  # level of the fitness intervals
    fitness: str = "adjusted"  # adjusted: with vs without, other stages held fixed (additive model); marginal: raw means
    quantile: float = 0.9  # upper tail of a component: this quantile of the accuracies of candidates that contain it
    margin: float = 0.005  # a component is pruned only if its fitness interval lies this far below the stage's best
    tail_margin: float = 0.005  # ... and its upper tail (top_with) trails the stage's best tail by this much
    protect_top: int = 5  # never prune a component used by any of the round's this-many best candidates
    min_frequency: int = 5  # never prune a component seen in fewer candidates than this
    extend: bool = True  # nothing to do yet: score search.budget more in the same round (counts as a round), so
    # that narrowing, on the pass before the last, ranks more candidates; false: the auto-pilot narrows (or stops) at once
    evidence: str = "round"  # round: fitness from the round's candidates; all: also earlier rounds' (scores that
    # do not change between rounds: a lookup table, standalone training), which are then not scored again
    narrow_to: float = 0.01  # narrowing (steering.narrow_actions) keeps the best candidates' components, at most
    # this many architectures (>= 1) or this share of the space (< 1, at least min_space_size); 0: no narrowing
    narrow_elite: int = 40  # ... the best candidates whose components are kept (weighted by rank)
    narrow_by: str = "model"  # rank candidates for narrowing by model: the additive model's fit of their scores
    # (averages out estimation noise), or by score (their raw one-shot accuracy)
    interaction_sd: float = 2.5  # narrow_by model: a score this many robust SDs off the fit stands as it is (an
    # interaction the additive model cannot see, not noise); 0: the fit for every candidate
    prune: bool = False  # also prune by fitness round after round (propose_actions: the paper's rule; worse on the
    # NAS-Bench-201 table, see BENCHMARKS.md); false: the auto-pilot shrinks the space by narrowing alone


@dataclass
class RetrainConfig:
    epochs: int = 30
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True  # random shifts for images / sequences
    patience: int | None = None  # early stopping on validation accuracy
    seeds: int = 1  # retrain with several seeds: mean and spread
    top_k: int = 1  # headless run: retrain the k best candidates
    spotcheck_epochs: int = 10  # standalone budget of a ranking spot check
    spotcheck_seeds: int = 2  # seeds per spot-checked candidate (>= 2 gives the ceiling)


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto | ...
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ...
    precision: str | int = "32-true"  # e.g. 16-mixed, bf16-mixed on GPUs
    deterministic: bool = True
    enable_progress_bar: bool | None = None  # None: only on a terminal
    log_every_n_steps: int = 10


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    name: str = ""  # a label for the run picker

    @property
    def kind(self) -> str:
        return SOURCE_KIND.get(self.data.source, "image")

    def search_space(self) -> SearchSpace:
        return space_from_config(self.space, self.kind)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    "data.source": tuple(SOURCE_KIND),
    "supernet.optimizer": ("sgd", "adam", "adamw"),
    "retrain.optimizer": ("sgd", "adam", "adamw"),
    "supernet.schedule": ("cosine", "constant"),
    "retrain.schedule": ("cosine", "constant"),
    "supernet.sampler": ("uniform", "fair"),
    "search.strategy": ("random", "evolution"),
    "search.projection": ("mds", "tsne", "umap", "pca"),
    "steering.fitness": ("adjusted", "marginal"),
    "steering.evidence": ("round", "all"),
    "steering.narrow_by": ("model", "score"),
}
POSITIVE = {
    "data.batch_size", "supernet.epochs", "search.budget", "search.population", "search.sample_size",
    "search.recal_batches", "steering.rounds", "steering.min_space_size", "retrain.epochs",
    "retrain.seeds", "retrain.top_k", "retrain.spotcheck_epochs", "retrain.spotcheck_seeds",
    "trainer.num_nodes", "supernet.lr", "retrain.lr", "data.image_size", "data.max_samples",
    "search.seconds", "search.max_params", "search.max_flops", "retrain.patience",
    "trainer.log_every_n_steps", "space.stem_channels", "search.projection_reference", "search.mutation_retries",
    "steering.narrow_elite",
}
NON_NEGATIVE = {
    "supernet.warm_start_epochs", "supernet.momentum", "supernet.weight_decay", "retrain.momentum",
    "retrain.weight_decay", "supernet.label_smoothing", "data.num_workers", "steering.max_prune_per_round",
    "seed", "supernet.grad_clip", "steering.margin", "steering.tail_margin", "steering.protect_top", "steering.min_frequency",
    "steering.narrow_to",
}
FRACTIONS = {"data.val_fraction", "data.test_fraction", "search.crossover_prob", "steering.confidence"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


_REPR = reprlib.Repr()  # Python 3.11: limits are attributes, not constructor arguments
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 4, 4, 2


def _short(value: Any) -> str:
    """A value as it appears in a problem message: cut short, so a huge value gives a short message."""
    return _REPR.repr(value)


def _as_float(value: Any) -> float | None:
    """``value`` as a float: a number, or a string float() reads (YAML 1.1 reads ``1e-3`` as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and len(value) < 40:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial: list[str] = []
            out = _coerce(value, arg, key, trial)
            if not trial:
                return out
        problems.append(f"{key}: expected {_type_name(tp)}, got {_short(value)}")
        return None
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{key}: expected a list, got {_short(value)}")
            return []
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, problems)
    if tp is float:
        number = _as_float(value)
        if number is not None:
            if not math.isfinite(number):
                problems.append(f"{key}: {_short(value)} is not a finite number; give a plain number such as 0.01")
                return None
            return number
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(value, tp):
        return value
    problems.append(f"{key}: expected {_type_name(tp)}, got {_short(value)}")
    return None


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{prefix or 'config'}: expected a mapping, got {_short(raw)}")
        raw = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            problems.append(
                f"{prefix + '.' if prefix else ''}{key}: unknown key; valid keys: {', '.join(fields)}"
            )
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints[name], key, problems)
            if kwargs[name] is None and raw[name] is not None:
                del kwargs[name]  # keep the default so later checks see a sane value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{key}: missing; this key is required")
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def _check_values(cfg: Config, problems: list[str]) -> None:
    def get(key: str) -> Any:
        obj: Any = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        return obj

    for key, allowed in CHOICES.items():
        if get(key) not in allowed:
            problems.append(f"{key}: '{get(key)}' is not one of {', '.join(allowed)}")
    for key in POSITIVE:
        v = get(key)
        if v is not None and v <= 0:
            problems.append(f"{key}: {v} must be greater than 0")
    for key in NON_NEGATIVE:
        v = get(key)
        if v is not None and v < 0:
            problems.append(f"{key}: {v} must not be negative")
    for key in FRACTIONS:
        v = get(key)
        if not 0 < v < 1:
            problems.append(f"{key}: {v} must lie strictly between 0 and 1")
    if not 0 < cfg.steering.quantile <= 1:
        problems.append(f"steering.quantile: {cfg.steering.quantile} must lie in (0, 1]")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 0.9:
        problems.append("data.val_fraction + data.test_fraction: must leave at least 10% for training")
    if cfg.data.source in ("folder", "cifar", "csv") and not cfg.data.path:
        problems.append(f"data.path: required for source '{cfg.data.source}'")
    if cfg.data.source == "csv" and not cfg.data.target:
        problems.append("data.target: required for source 'csv' (the column holding the class)")
    if cfg.search.sample_size > cfg.search.population:
        problems.append("search.sample_size: must not exceed search.population")
    devices = cfg.trainer.devices
    if isinstance(devices, int) and devices < 1 and devices != -1:
        problems.append(f"trainer.devices: {devices} must be a positive count, -1 (all) or 'auto'")
    if cfg.kind == "tabular":
        for i, st in enumerate(cfg.space.stages):
            if st.stride != 1:
                problems.append(f"space.stages[{i}].stride: tabular data has no resolution; use 1")


def space_from_config(sc: SpaceConfig, kind: str | None) -> SearchSpace:
    stages = tuple(
        Stage(
            name=s.name,
            candidates=tuple(s.candidates),
            select=s.select,
            max_active=s.max_active,
            channels=s.channels,
            stride=s.stride,
            pruned=tuple(s.pruned),
            pinned=tuple(s.pinned) if s.pinned else None,
        )
        for s in sc.stages
    )
    return SearchSpace(stages=stages, stem_channels=sc.stem_channels, kind=kind)


def config_from_dict(raw: Any, source: str = "config", overrides: list[str] | tuple = ()) -> Config:
    """Build and check a Config; ConfigError lists every problem, each prefixed by ``source``."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if isinstance(raw, dict):
        try:
            raw = apply_overrides(raw, overrides)
        except ValueError as e:
            problems.append(str(e))
    cfg = _build(Config, raw, "", problems)
    if cfg is not None:
        had_type_problems = bool(problems)
        _check_values(cfg, problems)  # wrong-typed fields kept their defaults: safe to check the rest
        if not cfg.space.stages and not had_type_problems:
            problems.append("space.stages: empty; give at least one stage")
        elif not had_type_problems:
            from nasnav.model.ops import list_ops  # torch import, only when a space is checked

            problems.extend(cfg.search_space().problems(list_ops(cfg.kind)))
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return cfg


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses aliases (``*name``): a few hundred bytes of nested aliases
    expand into gigabytes ("billion laughs"); nasnav's own files never use them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted; write the value out in full", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def load_user_yaml(text: str | bytes, name: str) -> Any:
    """Parse YAML a user handed in (a config file, an upload): safe tags only, no aliases.
    A ValueError names ``name`` and the line for malformed YAML or a file that is not text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name}: not a UTF-8 text file; expected YAML") from None
    try:
        loader = _NoAliasLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{name}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


def load_config(path: str | Path, overrides: list[str] | tuple = ()) -> Config:
    """Read a YAML config file (safe, no aliases) and apply ``key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        raw = load_user_yaml(path.read_bytes(), str(path))
    except ValueError as e:
        raise ConfigError([str(e)]) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of sections (data, space, ...), got {type(raw).__name__}"])
    return config_from_dict(raw, str(path), overrides)


def preset_path(name: str) -> Path:
    """configs/<name>.yaml; ValueError listing the presets for an unknown name."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset '{name}'; presets: {', '.join(list_presets())}")
    return path


def list_presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


_INDEX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def apply_overrides(raw: dict, overrides: list[str] | tuple) -> dict:
    """Return a copy of ``raw`` with ``a.b[2].c=value`` overrides applied (values parsed as YAML)."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}': expected key=value, e.g. trainer.devices=2")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node: Any = out
        parts = key.strip().split(".")
        for n, part in enumerate(parts):
            m = _INDEX.match(part)
            if not m:
                raise ValueError(f"override '{item}': '{part}' is not a valid key")
            name, idx = m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]
            last = n == len(parts) - 1 and not idx
            if not isinstance(node, dict):
                raise ValueError(f"override '{item}': '{name}' is inside a value that is not a mapping")
            if last:
                node[name] = value
                break
            node = node.setdefault(name, [] if idx else {})
            for j, i in enumerate(idx):
                if not isinstance(node, list) or i >= len(node):
                    raise ValueError(f"override '{item}': index [{i}] of '{name}' is out of range")
                if n == len(parts) - 1 and j == len(idx) - 1:
                    node[i] = value
                else:
                    node = node[i]
    return out


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from nasnav.store.io import write_yaml

    write_yaml(path, cfg.to_dict())
