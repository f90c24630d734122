"""The search space: ordered stages of candidate components, and architectures over them.

Pure Python (no torch): the app, the CLI and the analysis all import it.

An architecture holds one choice per stage; a choice is a tuple of component names, in the
stage's candidate order. Its string form joins stages with ``/`` and parallel components
with ``+``: ``conv3x3/maxpool3x3+skip/sepconv5x5``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from nasnav import limits
from nasnav.choices import SELECT_MODES
from nasnav.errors import InvalidInput
from nasnav.names import is_name, name_problem

STAGE_SEP = "/"
PARALLEL_SEP = "+"

Choice = tuple[str, ...]


@dataclass(frozen=True)
class Arch:
    """One architecture: a choice (tuple of component names) per stage."""

    choices: tuple[Choice, ...]

    def __str__(self) -> str:
        return STAGE_SEP.join(PARALLEL_SEP.join(c) for c in self.choices)

    def __len__(self) -> int:
        return len(self.choices)

    def uses(self, stage: int, component: str) -> bool:
        return component in self.choices[stage]


@dataclass(frozen=True)
class Stage:
    """One stage of the template network.

    ``candidates`` is the stage's full, original list; ``pruned`` names removed ones;
    ``pinned`` (if set) fixes the stage's choice. ``channels`` is the output width
    (conv channels or hidden units) and ``stride`` 2 halves the resolution at the stage's entry.
    """

    name: str
    candidates: tuple[str, ...]
    select: str = "one"
    max_active: int | None = None
    channels: int = 16
    stride: int = 1
    pruned: tuple[str, ...] = ()
    pinned: Choice | None = None

    @property
    def active(self) -> tuple[str, ...]:
        """Candidates still in play (not pruned), in candidate order."""
        if self.pinned is not None:
            return tuple(c for c in self.candidates if c in self.pinned)
        return tuple(c for c in self.candidates if c not in self.pruned)

    def max_k(self) -> int:
        n = len(self.active)
        if self.select == "one":
            return 1
        return min(n, self.max_active) if self.max_active else n

    def choices(self) -> Iterator[Choice]:
        """Every allowed choice of this stage."""
        if self.pinned is not None:
            yield self.pinned
            return
        active = self.active
        for k in range(1, self.max_k() + 1):
            yield from itertools.combinations(active, k)

    def size(self) -> int:
        if self.pinned is not None:
            return 1
        n = len(self.active)
        return sum(math.comb(n, k) for k in range(1, self.max_k() + 1))

    def allows(self, choice: Choice) -> bool:
        if self.pinned is not None:
            return tuple(choice) == self.pinned
        return (
            0 < len(choice) <= self.max_k()
            and len(set(choice)) == len(choice)
            and all(c in self.active for c in choice)
        )

    def sample(self, rng: np.random.Generator) -> Choice:
        """A uniformly random allowed choice."""
        if self.pinned is not None:
            return self.pinned
        active = self.active
        if self.select == "one":
            return (active[int(rng.integers(len(active)))],)
        ks = np.arange(1, self.max_k() + 1)
        weights = np.array([math.comb(len(active), int(k)) for k in ks], dtype=float)
        k = int(rng.choice(ks, p=weights / weights.sum()))
        picked = set(rng.choice(len(active), size=k, replace=False).tolist())
        return tuple(c for i, c in enumerate(active) if i in picked)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "candidates": list(self.candidates),
            "select": self.select,
            "channels": self.channels,
            "stride": self.stride,
        }
        if self.max_active is not None:
            d["max_active"] = self.max_active
        if self.pruned:
            d["pruned"] = list(self.pruned)
        if self.pinned is not None:
            d["pinned"] = list(self.pinned)
        return d


def _name_problems(stage: Stage, at: str) -> list[str]:
    """The stage's name and every component it names, against the one name rule (``nasnav.names``)."""
    found = [name_problem(stage.name, f"{at}.name")]
    for key, values in (("candidates", stage.candidates), ("pruned", stage.pruned), ("pinned", stage.pinned or ())):
        found += [name_problem(v, f"{at}.{key}") for v in values]
    return [p for p in found if p]


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of stages plus the stem width; immutable (edits return a new space)."""

    stages: tuple[Stage, ...]
    stem_channels: int = 16
    kind: str | None = field(default=None, compare=False)  # input kind the ops come from

    # ---- validation -------------------------------------------------------------------
    def problems(self, known: Iterable[str] | None = None, where: str = "space") -> list[str]:
        """Every problem with this space, each naming its key; empty if valid."""
        out: list[str] = []
        known_set = sorted(set(known)) if known is not None else None
        if not self.stages:
            out.append(f"{where}.stages: empty; give at least one stage")
        wide = limits.limit("channels")  # the channels cap (NASNAV_LIMIT_CHANNELS)
        if self.stem_channels < 1 or self.stem_channels > wide:
            out.append(f"{where}.stem_channels: {self.stem_channels} is out of range 1..{wide}"
                       + limits.hint("channels", self.stem_channels))
        names = [s.name for s in self.stages]
        for dup in sorted({n for n in names if names.count(n) > 1 and is_name(n)}):
            out.append(f"{where}.stages: duplicate stage name '{dup}'; stage names must be unique")
        for i, s in enumerate(self.stages):
            at = f"{where}.stages[{i}]"
            bad_names = _name_problems(s, at)  # a name off the rule is quoted escaped, and only there
            out += bad_names
            if not s.candidates:
                out.append(f"{at}.candidates: empty; give at least one component")
            for dup in sorted({c for c in s.candidates if s.candidates.count(c) > 1 and is_name(c)}):
                out.append(f"{at}.candidates: '{dup}' is listed twice")
            if known_set is not None:
                for c in s.candidates:
                    if c not in known_set and is_name(c):
                        out.append(
                            f"{at}.candidates: unknown component '{c}'; known: {', '.join(known_set)}"
                        )
            if s.select not in SELECT_MODES:
                out.append(f"{at}.select: {s.select!r} is not one of {', '.join(SELECT_MODES)}")
            if s.max_active is not None and s.max_active < 1:
                out.append(f"{at}.max_active: {s.max_active} must be at least 1")
            if s.channels < 1 or s.channels > wide:
                out.append(f"{at}.channels: {s.channels} is out of range 1..{wide}" + limits.hint("channels", s.channels))
            if s.stride not in (1, 2):
                out.append(f"{at}.stride: {s.stride} must be 1 or 2")
            for c in s.pruned:
                if c not in s.candidates and not bad_names:
                    out.append(f"{at}.pruned: '{c}' is not a candidate of stage '{s.name}'")
            if s.candidates and not s.active:
                out.append(f"{at}: every component is pruned; a stage needs at least one")
            if s.pinned is not None and not bad_names:
                free = replace(s, pinned=None)
                if not all(c in s.candidates for c in s.pinned):
                    out.append(f"{at}.pinned: {list(s.pinned)} names a component not in the stage")
                elif any(c in s.pruned for c in s.pinned):
                    out.append(f"{at}.pinned: {list(s.pinned)} includes a pruned component")
                elif not 0 < len(s.pinned) <= free.max_k():
                    out.append(f"{at}.pinned: select '{s.select}' allows 1 to {free.max_k()} component(s), "
                               f"got {len(s.pinned)}")
        return out

    def validate(self, known: Iterable[str] | None = None, where: str = "space") -> SearchSpace:
        problems = self.problems(known, where)
        if problems:
            raise InvalidInput("\n".join(problems))
        return self

    # ---- size, enumeration, sampling -----------------------------------------------
    def size(self) -> int:
        """Number of architectures in the (pruned) space."""
        return math.prod(s.size() for s in self.stages)

    def __iter__(self) -> Iterator[Arch]:
        for combo in itertools.product(*(list(s.choices()) for s in self.stages)):
            yield Arch(tuple(combo))

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture of the current space."""
        return Arch(tuple(s.sample(rng) for s in self.stages))

    def contains(self, arch: Arch) -> bool:
        return len(arch) == len(self.stages) and all(
            s.allows(c) for s, c in zip(self.stages, arch.choices)
        )

    def largest(self) -> Arch:
        """The architecture with the most active components (each stage's first ones; the one with the most
        params is ``score.evaluate.CostModel.extreme``)."""
        return Arch(
            tuple(s.pinned if s.pinned is not None else s.active[: s.max_k()] for s in self.stages)
        )

    # ---- encodings --------------------------------------------------------------------
    def columns(self) -> list[tuple[str, str]]:
        """(stage, component) pairs over the ORIGINAL candidates: the mask's coordinates."""
        return [(s.name, c) for s in self.stages for c in s.candidates]

    def mask(self, arch: Arch) -> np.ndarray:
        """Binary vector over columns(): 1 where the architecture uses the component."""
        return np.array(
            [c in ch for s, ch in zip(self.stages, arch.choices) for c in s.candidates],
            dtype=np.uint8,
        )

    def from_mask(self, mask: Sequence[int]) -> Arch:
        it = iter(mask)
        return Arch(tuple(tuple(c for c in s.candidates if next(it)) for s in self.stages))

    def parse(self, text: str, check_active: bool = True) -> Arch:
        """Parse ``conv3x3/maxpool3x3+skip/...``; ValueError naming the bad part."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("architecture: empty string; expected one choice per stage joined by '/'")
        parts = text.strip().split(STAGE_SEP)
        if len(parts) != len(self.stages):
            raise InvalidInput(
                f"architecture '{text}': {len(parts)} stage(s) given, the space has "
                f"{len(self.stages)} ({', '.join(s.name for s in self.stages)})"
            )
        choices = []
        for stage, part in zip(self.stages, parts):
            names = [p.strip() for p in part.split(PARALLEL_SEP)]
            for n in names:
                if n not in stage.candidates:
                    raise InvalidInput(
                        f"architecture '{text}': stage '{stage.name}' has no component '{n}'; "
                        f"candidates: {', '.join(stage.candidates)}"
                    )
                if check_active and n not in stage.active:
                    raise InvalidInput(
                        f"architecture '{text}': component '{n}' of stage '{stage.name}' is pruned; "
                        f"active: {', '.join(stage.active)}"
                    )
            if len(set(names)) != len(names):
                raise InvalidInput(f"architecture '{text}': stage '{stage.name}' repeats a component")
            if stage.select == "one" and len(names) != 1:
                raise InvalidInput(
                    f"architecture '{text}': stage '{stage.name}' selects exactly one component, got {len(names)}"
                )
            if stage.max_active is not None and len(names) > stage.max_active:
                raise InvalidInput(
                    f"architecture '{text}': stage '{stage.name}' allows at most "
                    f"{stage.max_active} components, got {len(names)}"
                )
            choice = tuple(c for c in stage.candidates if c in names)
            if check_active and stage.pinned is not None and choice != stage.pinned:
                raise InvalidInput(
                    f"architecture '{text}': stage '{stage.name}' is pinned to "
                    f"'{PARALLEL_SEP.join(stage.pinned)}'"
                )
            choices.append(choice)
        return Arch(tuple(choices))

    # ---- edits (each returns a new space) -------------------------------------------
    def stage_index(self, stage: int | str) -> int:
        """Index of a stage given by name or index; ValueError listing valid names."""
        names = [s.name for s in self.stages]
        if isinstance(stage, str) and stage.lstrip("-").isdigit():
            stage = int(stage)
        if isinstance(stage, int):
            if 0 <= stage < len(self.stages):
                return stage
            raise InvalidInput(f"stage index {stage} is out of range 0..{len(self.stages) - 1}")
        if stage in names:
            return names.index(stage)
        raise InvalidInput(f"unknown stage '{stage}'; stages: {', '.join(names)}")

    def _check_component(self, i: int, component: str) -> None:
        s = self.stages[i]
        if component not in s.candidates:
            raise InvalidInput(
                f"stage '{s.name}' has no component '{component}'; candidates: {', '.join(s.candidates)}"
            )

    def _with_stage(self, i: int, stage: Stage) -> SearchSpace:
        stages = list(self.stages)
        stages[i] = stage
        return replace(self, stages=tuple(stages))

    def prune(self, stage: int | str, component: str) -> SearchSpace:
        """Remove a component; refuses to empty a stage."""
        i = self.stage_index(stage)
        self._check_component(i, component)
        s = self.stages[i]
        if component in s.pruned:
            return self
        if s.active == (component,):
            raise InvalidInput(
                f"cannot prune '{component}': it is the last active component of stage '{s.name}'"
            )
        pinned = s.pinned
        if pinned is not None and component in pinned:
            rest = tuple(c for c in pinned if c != component)
            pinned = rest or None
        pruned = tuple(c for c in s.candidates if c in s.pruned or c == component)
        return self._with_stage(i, replace(s, pruned=pruned, pinned=pinned))

    def pin(self, stage: int | str, choice: str | Sequence[str]) -> SearchSpace:
        """Fix a stage's choice (``"conv3x3"`` or ``"maxpool3x3+skip"``)."""
        i = self.stage_index(stage)
        s = self.stages[i]
        names = choice.split(PARALLEL_SEP) if isinstance(choice, str) else list(choice)
        for n in names:
            self._check_component(i, n)
            if n in s.pruned:
                raise InvalidInput(f"cannot pin '{n}' in stage '{s.name}': it is pruned; restore it first")
        ordered = tuple(c for c in s.candidates if c in names)
        if not replace(s, pinned=None).allows(ordered):  # judged against the stage, not its current pin
            raise InvalidInput(
                f"cannot pin {'+'.join(names)} in stage '{s.name}': "
                f"select '{s.select}' allows at most {replace(s, pinned=None).max_k()} component(s)"
            )
        return self._with_stage(i, replace(s, pinned=ordered))

    def restore(self, stage: int | str, component: str | None = None) -> SearchSpace:
        """Bring back a pruned component and unpin; with no component, restore the whole stage."""
        i = self.stage_index(stage)
        s = self.stages[i]
        if component is None:
            return self._with_stage(i, replace(s, pruned=(), pinned=None))
        self._check_component(i, component)
        pruned = tuple(c for c in s.pruned if c != component)
        return self._with_stage(i, replace(s, pruned=pruned, pinned=None))

    def unpruned(self) -> SearchSpace:
        """The original, full space."""
        return replace(self, stages=tuple(replace(s, pruned=(), pinned=None) for s in self.stages))

    # ---- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"stem_channels": self.stem_channels, "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, d: dict, kind: str | None = None) -> SearchSpace:
        """Build from a plain mapping (e.g. a space.yaml); type errors and names off the name rule
        (every one, at once) are InvalidInput."""
        if not isinstance(d, dict):
            raise InvalidInput(f"space: expected a mapping, got {type(d).__name__}")
        stages_raw = d.get("stages")
        if not isinstance(stages_raw, list):
            raise InvalidInput("space.stages: expected a list of stages")
        stages = []
        for i, raw in enumerate(stages_raw):
            if not isinstance(raw, dict):
                raise InvalidInput(f"space.stages[{i}]: expected a mapping with name and candidates")
            unknown = set(raw) - {
                "name", "candidates", "select", "max_active", "channels", "stride", "pruned", "pinned"
            }
            if unknown:
                raise InvalidInput(f"space.stages[{i}]: unknown key(s) {', '.join(sorted(unknown))}")
            cands = raw.get("candidates")
            if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
                raise InvalidInput(f"space.stages[{i}].candidates: expected a list of component names")
            for key in ("channels", "stride", "max_active"):
                v = raw.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise InvalidInput(f"space.stages[{i}].{key}: expected an integer, got {v!r}")
            pinned = raw.get("pinned")
            stages.append(
                Stage(
                    name=raw.get("name", f"stage{i}"),
                    candidates=tuple(cands),
                    select=str(raw.get("select", "one")),
                    max_active=raw.get("max_active"),
                    channels=int(raw.get("channels", 16)),
                    stride=int(raw.get("stride", 1)),
                    pruned=tuple(raw.get("pruned") or ()),
                    pinned=tuple(pinned) if pinned else None,
                )
            )
        stem = d.get("stem_channels", 16)
        if isinstance(stem, bool) or not isinstance(stem, int):
            raise InvalidInput(f"space.stem_channels: expected an integer, got {stem!r}")
        # names are checked on every read (a run folder's file, a checkpoint, an upload), all at once
        bad_names = [p for i, st in enumerate(stages) for p in _name_problems(st, f"space.stages[{i}]")]
        if bad_names:
            raise InvalidInput("\n".join(bad_names))
        return cls(stages=tuple(stages), stem_channels=stem, kind=kind)

    def describe(self) -> list[dict]:
        """One row per stage: name, select, active / total components, choices."""
        return [
            {
                "stage": s.name,
                "select": s.select,
                "active": ", ".join(s.active),
                "pruned": ", ".join(s.pruned),
                "pinned": PARALLEL_SEP.join(s.pinned) if s.pinned else "",
                "choices": s.size(),
            }
            for s in self.stages
        ]
