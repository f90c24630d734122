"""Configuration: one dataclass per YAML section; the schema is declared once, in the annotations.

A field's annotation says what it accepts (its type and any rule on its own value); pydantic checks
those, then the checks that read several keys run. Every problem (unknown key, wrong type, impossible
value) is reported with the file and the dotted key, and all problems are reported at once
(``ConfigError.problems``): a key with a wrong value keeps its default while the rest is checked, and
a check that would read such a key is skipped rather than reporting a consequence of the first problem.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError

from nasnav import components, limits
from nasnav.choices import (  # noqa: F401 (re-exported: the config's choices)
    EVIDENCE_MODES,
    FILE_SOURCES,
    FITNESS_MODES,
    NARROW_BY,
    OPTIMIZERS,
    PROJECTIONS,
    SAMPLERS,
    SCHEDULES,
    SELECT_MODES,
    SOURCE_KIND,
    SOURCES,
    STRATEGIES,
    Evidence,
    Fitness,
    NarrowBy,
    Optimizer,
    Pick,
    Projection,
    Sampler,
    Schedule,
    ScoringPrecision,
    SelectMode,
    Source,
    Strategy,
    Tracker,
)
from nasnav.errors import InvalidInput
from nasnav.model.ops import list_ops
from nasnav.resources import config_dir, list_presets, preset_path  # noqa: F401 (re-exported: the presets)
from nasnav.space import SearchSpace, Stage
from nasnav.store.io import write_yaml
from nasnav.user_yaml import apply_overrides, load_user_yaml  # noqa: F401 (load_user_yaml re-exported)

CONFIG_DIR = config_dir()  # the presets: configs/ of the checkout, or the installed copy (nasnav.resources)


class ConfigError(InvalidInput):
    """A config with one or more problems; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ---- value types: what a key accepts, and the message when it does not ------------------------------
_REPR = reprlib.Repr()  # Python 3.11: limits are attributes, not constructor arguments
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 4, 4, 2


def _short(value: Any) -> str:
    """A value as it appears in a problem message: cut short, so a huge value gives a short message."""
    return _REPR.repr(value)


def _fail(message: str) -> typing.NoReturn:
    raise PydanticCustomError("value", message)  # no context given: the message is used as it is


def _whole(value: Any) -> Any:
    """3.0 counts as the int 3; 3.5, '3' and True stay wrong."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number(value: Any) -> Any:
    """Ints count as floats, and so do strings float() reads: YAML 1.1 reads ``1e-3`` as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and len(value) < 40:
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        _fail(f"{value} is not a finite number; give a plain number such as 0.01")
    return value


def _rule(test: Callable[[Any], bool], text: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not test(value):
            _fail(f"{value} {text}")
        return value

    return AfterValidator(check)


def _devices(value: int | str) -> int | str:
    if isinstance(value, int) and value < 1 and value != -1:
        _fail(f"{value} must be a positive count, -1 (all) or 'auto'")
    return value


Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict(), BeforeValidator(_whole)]
Float = Annotated[float, Strict(), BeforeValidator(_number), AfterValidator(_finite)]
Names = Annotated[list[Str], Strict()]
PosInt = Annotated[Int, _rule(lambda v: v > 0, "must be greater than 0")]
PosFloat = Annotated[Float, _rule(lambda v: v > 0, "must be greater than 0")]
NonNegInt = Annotated[Int, _rule(lambda v: v >= 0, "must not be negative")]
NonNegFloat = Annotated[Float, _rule(lambda v: v >= 0, "must not be negative")]
Fraction = Annotated[Float, _rule(lambda v: 0 < v < 1, "must lie strictly between 0 and 1")]
Quantile = Annotated[Float, _rule(lambda v: 0 < v <= 1, "must lie in (0, 1]")]
Unit = Annotated[Float, _rule(lambda v: 0 <= v <= 1, "must lie in [0, 1]")]
Devices = Annotated[Int | Str, AfterValidator(_devices)]
# YAML reads `32` as a number: it names the choice "32"
ScoringPrecisionKey = Annotated[ScoringPrecision, BeforeValidator(lambda v: str(v) if type(v) is int else v)]

_section = with_config(ConfigDict(extra="forbid"))  # an unknown key is an error


# ---- the schema ---------------------------------------------------------------------------------------
@_section
@dataclass
class DataConfig:
    source: Source = "digits"  # digits | mnist1d | folder | cifar | csv | cifar10 | cifar100 | fashion_mnist | svhn
    path: Str | None = None  # folder / CIFAR batch directory / CSV file, for sources that read files
    target: Str | None = None  # CSV column holding the class label
    val_fraction: Fraction = 0.15  # share of samples for validation (model selection)
    test_fraction: Fraction = 0.15  # share held out for the final test, never used for selection
    batch_size: PosInt = 64
    image_size: PosInt | None = None  # resize folder images to this square size
    grayscale: Bool = False  # folder images: 1 channel instead of RGB
    max_samples: PosInt | None = None  # stratified subset before splitting (quick trials)
    num_workers: NonNegInt = 0  # DataLoader workers; data lives in memory, 0 is usually fastest
    # training augmentation (standalone trainings, with retrain.augment): null takes the data set's default
    crop_padding: NonNegInt | None = None  # random crop after zero padding (4 on CIFAR, SVHN, Fashion-MNIST; else size // 16)
    flip: Bool | None = None  # random horizontal flip of images (CIFAR, Fashion-MNIST: on; SVHN's digits, others: off)
    # Where a standard data set (cifar10, cifar100, fashion_mnist, svhn) is kept and whether to fetch it: not
    # what the data is (the files are checksum verified), so not part of the section's repr, which identifies
    # the data in caches (the process's data, the benchmarks' trainings).
    root: Str | None = field(default=None, repr=False)  # null: $NASNAV_DATA_ROOT, else ~/.cache/nasnav/data
    download: Bool = field(default=False, repr=False)  # fetch missing files (MD5 checked) into data.root


@_section
@dataclass
class StageConfig:
    name: Str  # unique; a stage given without one in a file is called s1, s2, ... after its position
    candidates: Names  # component names from the ops registry
    select: SelectMode = "one"  # one: single path; any: non-empty subset, outputs summed
    max_active: Int | None = None  # with select any: at most this many at once
    channels: Int = 16  # output width of the stage
    stride: Int = 1  # 2 halves the resolution at the stage's entry
    pruned: Names = field(default_factory=list)
    pinned: Names | None = None
    # ranges, duplicates and components are SearchSpace.problems' checks (the space editor runs them too)


@_section
@dataclass
class SpaceConfig:
    stem_channels: PosInt = 16  # width of the input layer
    stages: list[StageConfig] = field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _name_stages(cls, raw: Any) -> Any:
        """A stage without a name is called s1, s2, ... after its (1-based) position."""
        stages = raw.get("stages") if isinstance(raw, dict) else None
        if isinstance(stages, list):
            stages = [
                {**st, "name": f"s{i}"} if isinstance(st, dict) and st.get("name") is None else st
                for i, st in enumerate(stages, 1)
            ]
            raw = {**raw, "stages": stages}
        return raw


@_section
@dataclass
class SupernetConfig:
    epochs: PosInt = 20  # one-shot training epochs of round 0
    warm_start_epochs: NonNegInt = 5  # fine-tuning epochs of each later round (warm start)
    optimizer: Optimizer = "sgd"  # sgd | adam | adamw
    lr: PosFloat = 0.05
    momentum: NonNegFloat = 0.9
    weight_decay: NonNegFloat = 5e-4
    schedule: Schedule = "cosine"  # cosine | constant
    sampler: Sampler = "fair"  # uniform: random path per step; fair: every component equally often
    label_smoothing: NonNegFloat = 0.0
    grad_clip: NonNegFloat | None = 5.0
    distill: Bool = False  # in-place distillation from the largest path (twice the step cost; ranks better)


@_section
@dataclass
class SearchConfig:
    strategy: Strategy = "random"  # random | evolution | local | guided (a surrogate of accuracy picks what to score)
    budget: PosInt = 100  # candidates to score per round
    seconds: PosFloat | None = None  # optional wall-time budget per round
    population: PosInt = 50  # evolution: population size
    sample_size: PosInt = 10  # evolution: tournament size
    crossover_prob: Fraction = 0.5  # evolution: share of children made by crossover
    recal_batches: PosInt = 4  # training batches for BatchNorm recalibration per candidate
    precision: ScoringPrecisionKey = "auto"  # scoring arithmetic: auto (bf16 autocast on a GPU that supports it,
    # float32 elsewhere), bf16 (autocast on any device), 32 (float32 everywhere)
    max_params: PosInt | None = None  # constraint: skip larger candidates
    max_flops: PosInt | None = None  # constraint
    projection: Projection = "mds"  # mds | tsne | umap | pca
    projection_reference: PosInt = 1000  # the 2-D layout is fitted on this many architectures of the original space
    mutation_retries: PosInt = 50  # evolution: tries for an unseen child before sampling a random one


@_section
@dataclass
class SteeringConfig:
    autopilot: Bool = False  # headless run: the auto-pilot decides round after round
    rounds: PosInt = 3  # at most this many rounds (round 0 included; with extend, extensions count too)
    max_prune_per_round: NonNegInt = 2  # per stage
    min_space_size: PosInt = 4  # pruning stops at this size; narrowing to a share of the space never goes below it
    confidence: Fraction = 0.95  # level of the fitness intervals
    fitness: Fitness = "adjusted"  # adjusted: with vs without, other stages held fixed (additive model); marginal:
    # raw means
    quantile: Quantile = 0.9  # upper tail of a component: this quantile of the accuracies of candidates that contain it
    margin: NonNegFloat = 0.005  # a component is pruned only if its fitness interval lies this far below the
    # stage's best
    tail_margin: NonNegFloat = 0.005  # ... and its upper tail (top_with) trails the stage's best tail by this much
    protect_top: NonNegInt = 5  # never prune a component used by any of the round's this-many best candidates
    min_frequency: NonNegInt = 5  # never prune a component seen in fewer candidates than this
    extend: Bool = True  # nothing to do yet: score search.budget more in the same round (counts as a round), so
    # that narrowing, on the pass before the last, ranks more candidates; false: the auto-pilot narrows (or stops) at once
    evidence: Evidence = "round"  # round: fitness from the round's candidates; all: also earlier rounds' (scores that
    # do not change between rounds: a lookup table, standalone training), which are then not scored again
    narrow_to: NonNegFloat = 0.01  # narrowing (steering.narrow_actions) keeps the best candidates' components, at most
    # this many architectures (>= 1) or this share of the space (< 1, at least min_space_size); 0: no narrowing
    narrow_elite: PosInt = 40  # ... the best candidates whose components are kept (weighted by rank)
    narrow_by: NarrowBy = "surrogate"  # rank candidates for narrowing by surrogate: a Gaussian process's posterior mean
    # (averages out estimation noise and sees interactions between stages; bench/steering_suite.py), by model (the
    # additive model's fit of their scores), or by score (their raw one-shot accuracy)
    interaction_sd: Float = 2.5  # narrow_by model: a score this many robust SDs off the fit stands as it is (an
    # interaction the additive model cannot see, not noise); 0: the fit for every candidate
    prune: Bool = False  # also prune by fitness round after round (propose_actions: the paper's rule; worse on the
    # NAS-Bench-201 table, see BENCHMARKS.md); false: the auto-pilot shrinks the space by narrowing alone
    pick: Pick = "surrogate"  # the candidate to retrain: surrogate = the best estimate blending the own score with the
    # surrogate's posterior mean (corrects the winner's curse of the best of many noisy scores); score = the best score
    pick_blend: Unit = 0.2  # weight of the own score in that estimate (chosen on the steering suite's tuning tables)


@_section
@dataclass
class RetrainConfig:
    epochs: PosInt = 30
    optimizer: Optimizer = "sgd"
    lr: PosFloat = 0.05
    momentum: NonNegFloat = 0.9
    weight_decay: NonNegFloat = 5e-4
    schedule: Schedule = "cosine"
    augment: Bool = True  # training augmentation of images / sequences: data.crop_padding, data.flip
    patience: PosInt | None = None  # early stopping on validation accuracy
    seeds: PosInt = 1  # retrain with several seeds: mean and spread
    top_k: PosInt = 1  # headless run: retrain the k best candidates
    spotcheck_epochs: PosInt = 10  # standalone budget of a ranking spot check
    spotcheck_seeds: PosInt = 2  # seeds per spot-checked candidate (>= 2 gives the ceiling)


@_section
@dataclass
class TrainerConfig:
    accelerator: Str = "cpu"  # cpu | gpu | auto | ...
    devices: Devices = 1  # a count, -1 (all), 'auto', or Lightning's device list as a string
    num_nodes: PosInt = 1
    strategy: Str = "auto"  # auto | ddp | ...
    precision: Str | Int = "32-true"  # e.g. 16-mixed, bf16-mixed on GPUs
    deterministic: Bool = True
    enable_progress_bar: Bool | None = None  # None: only on a terminal
    log_every_n_steps: PosInt = 10
    logger: Tracker = "csv"  # where trainings log metrics and hyperparameters: csv | tensorboard | mlflow
    tracking_uri: Str | None = None  # mlflow's tracking server or store (default: sqlite in the run's tracking/)
    trainings_per_device: PosInt = 1  # standalone trainings (spot checks, retrain seeds) run side by side: one
    # process per device of trainer.devices (on a CPU: devices 2 = two workers), this many on each


_SBATCH_WORD = r"[A-Za-z0-9_.:,=@%+/-]+"  # what an sbatch value may hold: no blank, quote or line break


def _sbatch_options(value: dict) -> dict:
    """Extra sbatch options become ``#SBATCH --key=value`` lines: names and values stay single words of a
    safe alphabet, so that no value can add a line (a command) to the job script."""
    for k, v in value.items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", k):
            _fail(f"option name {k!r} is not an sbatch option name (lowercase letters, digits, '-', '_')")
        if not re.fullmatch(_SBATCH_WORD, str(v)):
            _fail(f"{k}: value {v!r} must be a word or number (letters, digits and _.:,=@%+/-), not empty")
    return value


SbatchOptions = Annotated[dict[Str, Str | Int], AfterValidator(_sbatch_options)]
SbatchWord = Annotated[Str, _rule(lambda v: re.fullmatch(_SBATCH_WORD, v) is not None,
                                  "must be one word (letters, digits and _.:,=@%+/-)")]


@_section
@dataclass
class ClusterConfig:
    """Where standalone trainings and the supernet run: here (local) or as Slurm jobs through submitit."""

    backend: Literal["local", "slurm"] = "local"  # local: processes on this machine; slurm: one job per training
    partition: SbatchWord | None = None  # Slurm partition (None: the cluster's default)
    gpus_per_task: NonNegInt = 0  # GPUs of each training job (a training uses one) and of each supernet task
    cpus_per_task: PosInt = 1  # CPU cores of each task (a training's torch threads)
    time_min: PosInt = 60  # time limit of each job in minutes (a job killed at the limit is resubmitted, resuming)
    max_parallel: PosInt = 64  # at most this many training jobs of an array run at once
    retries: NonNegInt = 3  # a killed or pre-empted job is resubmitted (resuming from its checkpoint) this often
    sbatch: SbatchOptions = field(default_factory=dict)  # extra sbatch options, e.g. {account: lab, qos: high}


@_section
@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    seed: NonNegInt = 0
    name: Str = ""  # a label for the run picker
    components: list[Str] = field(default_factory=list)  # own components: .py files (relative to the config
    # file) or module names of installed packages, each with a COMPONENTS mapping (nasnav.components)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        """A section left empty in YAML (``supernet:``) reads as null: it takes all its defaults."""
        if isinstance(raw, dict):
            return {k: {} if v is None and k in _SECTIONS else v for k, v in raw.items()}
        return raw

    @property
    def kind(self) -> str:
        return SOURCE_KIND.get(self.data.source, "image")

    def search_space(self) -> SearchSpace:
        return space_from_config(self.space, self.kind)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = ("data", "space", "supernet", "search", "steering", "retrain", "trainer", "cluster")
_ADAPTER = TypeAdapter(Config)


# ---- from pydantic's errors to problem lines -----------------------------------------------------------
def _plain(tp: Any) -> Any:
    """``tp`` without Annotated metadata and without ``| None``."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (Union, types.UnionType) and type(None) in (args := typing.get_args(tp)):
            rest = [a for a in args if a is not type(None)]
            if len(rest) > 1:
                return tp
            tp = rest[0]
        else:
            return tp


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _walk(loc: tuple) -> tuple[list, list, int]:
    """Follow an error location through the schema: the parts that name keys (the rest name members of
    a union, not keys), the annotation after each part (the first is Config's), and how many parts name
    the value that stands or falls as a whole (a field, or a stage in the list of stages)."""
    path: list = []
    hints: list = [Config]
    whole = 0
    for part in loc:
        tp = _plain(hints[-1])
        if dataclasses.is_dataclass(tp) and isinstance(part, str):
            hint = _hints(tp).get(part)  # None: an unknown key
        elif typing.get_origin(tp) is list and isinstance(part, int):
            hint = typing.get_args(tp)[0]
        else:
            break
        path.append(part)
        hints.append(hint)
        if isinstance(part, str) or dataclasses.is_dataclass(_plain(hint)):
            whole = len(path)
    return path, hints, whole


def _dotted(path: list) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Annotated:
        return _type_name(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _describe(error: dict, hints: list) -> str:
    """One pydantic error in the words of today's messages (without the key)."""
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "missing; this key is required"
    if kind == "unexpected_keyword_argument":
        valid = ", ".join(f.name for f in dataclasses.fields(_plain(hints[-2])))
        return f"unknown key; valid keys: {valid}"
    if kind == "value":
        return error["msg"]
    if typing.get_origin(_plain(hints[-1])) is Literal:
        return f"{_short(value)} is not one of {', '.join(map(str, typing.get_args(_plain(hints[-1]))))}"
    return f"expected {_type_name(hints[-1])}, got {_short(value)}"


def _patch(raw: dict, path: list, hint: Any, kind: str) -> None:
    """Take a wrong value out of ``raw``, so that its default stands in. A required key left without
    a value (reported as missing on the next pass) gets an empty one, and so does a stage that is not a
    mapping (it keeps its place in the list; its own missing keys are filled on the next pass)."""
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    hint = _plain(hint)
    if kind == "missing" or isinstance(path[-1], int):
        node[path[-1]] = [] if typing.get_origin(hint) is list else {} if dataclasses.is_dataclass(hint) else ""
    else:
        del node[path[-1]]


def _validate(raw: Any) -> tuple[Config | None, list[str], set[str]]:
    """Validate ``raw`` against the schema: the config (wrong values replaced by their defaults; None if
    the input is not a mapping), the problems, and the keys whose values were wrong."""
    problems: dict[str, str] = {}  # one line per key
    wrong: set[str] = set()
    raw = copy.deepcopy(raw)
    for attempt in range(5):  # each pass takes out what the last one found wrong; the first finds it all
        try:
            return _ADAPTER.validate_python(raw), list(problems.values()), wrong
        except ValidationError as e:
            errors = e.errors()
        for error in errors:
            path, hints, whole = _walk(error["loc"])
            key = _dotted(path)
            if attempt == 0:
                problems.setdefault(key, f"{key or 'config'}: {_describe(error, hints)}")
            if not whole:
                return None, list(problems.values()), wrong
            if error["type"] != "unexpected_keyword_argument":
                wrong.add(_dotted(path[:whole]))
            try:
                _patch(raw, path[:whole], hints[whole], error["type"])
            except (KeyError, IndexError, TypeError):
                pass  # already taken out with the value that held it
    return None, list(problems.values()), wrong


# ---- checks that read several keys ----------------------------------------------------------------------
# a problem SearchSpace.problems reports on a stage's key also reads these keys of the same stage
_STAGE_READS = {"pruned": ("candidates",), "pinned": ("candidates", "pruned", "select", "max_active"),
                "": ("candidates", "pruned")}  # fmt: skip


def _cross_problems(cfg: Config, wrong: set[str]) -> list[str]:
    """Checks that read more than one key, on a config whose wrong values hold defaults: a check that
    reads a key whose value was wrong is skipped."""
    d, found = cfg.data, []  # (keys read besides the one named, problem)
    if d.val_fraction + d.test_fraction >= 0.9:
        problem = "data.val_fraction + data.test_fraction: must leave at least 10% for training"
        found.append((("data.val_fraction", "data.test_fraction"), problem))
    if d.source in FILE_SOURCES and not d.path:
        found.append((("data.source",), f"data.path: required for source '{d.source}'"))
    if d.source == "csv" and not d.target:
        found.append((("data.source",), "data.target: required for source 'csv' (the column holding the class)"))
    if cfg.search.sample_size > cfg.search.population:
        found.append((("search.population",), "search.sample_size: must not exceed search.population"))
    source_known = not _is_wrong("data.source", wrong)
    if cfg.kind == "tabular" and source_known:
        found += [((), f"space.stages[{i}].stride: tabular data has no resolution; use 1")
                  for i, st in enumerate(cfg.space.stages) if st.stride != 1]  # fmt: skip
    known = list_ops(cfg.kind) if source_known and not _is_wrong("components", wrong) else None
    if known is not None:
        found += [((), p) for p in components.stage_problems(cfg.search_space(), cfg.kind)]
    for problem in cfg.search_space().problems(known):
        key, reads = problem.split(": ", 1)[0], ()
        if m := re.fullmatch(r"(space\.stages\[\d+\])(?:\.(\w+))?", key):
            reads = tuple(f"{m[1]}.{k}" for k in _STAGE_READS.get(m[2] or "", ()))
        elif key == "space.stages":  # empty, or duplicate names
            reads = tuple(f"space.stages[{i}].name" for i in range(len(cfg.space.stages)))
        found.append((reads, problem))
    found += [((), problem) for problem in limits.config_problems(cfg)]  # caps: stages, channels, epochs, ...
    return [p for reads, p in found if not any(_is_wrong(k, wrong) for k in (p.split(": ", 1)[0], *reads))]


def _is_wrong(key: str, wrong: set[str]) -> bool:
    return any(key == w or key.startswith((f"{w}.", f"{w}[")) for w in wrong)


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


def config_from_dict(
    raw: Any, source: str = "config", overrides: list[str] | tuple = (), base: Path | None = None,
    load_code: bool = True,
) -> Config:
    """Build and check a Config; ConfigError lists every problem, each prefixed by ``source``. Its own
    components are loaded here, in every process (``nasnav.components``; ``.py`` paths are relative to ``base``,
    the config file's folder); ``load_code=False`` (browser input) accepts only those already loaded."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if isinstance(raw, dict):
        try:
            raw = apply_overrides(raw, overrides)
        except ValueError as e:
            problems.append(str(e))
    cfg, schema_problems, wrong = _validate(raw)
    problems += schema_problems
    if cfg is not None and not _is_wrong("components", wrong):
        cfg.components = [components.resolve(e, base) for e in cfg.components]
        loaded = components.load(cfg.components, load_code)
        problems += loaded
        if loaded:  # stages naming the components that failed would only repeat it as "unknown component"
            wrong.add("components")
    if cfg is not None:
        problems += _cross_problems(cfg, wrong)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple = ()) -> Config:
    """Read a YAML config file (safe, no aliases) and apply ``key=value`` overrides. A preset's name
    (``tiny``, ``mnist1d``, ...) that is not a file in the current folder reads that preset."""
    path = Path(path)
    if not path.is_file() and str(path) in list_presets():
        path = preset_path(str(path))
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found (or name a preset: {', '.join(list_presets())})"])
    try:
        raw = load_user_yaml(path.read_bytes(), str(path))
    except ValueError as e:
        raise ConfigError([str(e)]) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of sections (data, space, ...), got {type(raw).__name__}"])
    return config_from_dict(raw, str(path), overrides, base=path.resolve().parent)


# The preset a new user starts from (the app's home page, `make run`): MNIST-1D, a data set made so that
# architecture matters (standalone accuracy spans far more than seed noise, and the supernet ranks it:
# BENCHMARKS.md); digits saturates.
DEFAULT_PRESET = "mnist1d"


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""

    write_yaml(path, cfg.to_dict())
