"""Actions on a search space: prune, pin, restore; and the actions a scatterplot selection implies.

Pure: a space and actions in, a new space out; nothing is read or written. ``Action`` is the one
typed form of a decision's step; ``Action.to_dict`` / ``Action.from_dict`` convert at the boundary
to the JSON records of the run directory (decisions.json, history.json, the app's pending actions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nasnav.errors import InvalidInput
from nasnav.names import check_name
from nasnav.space import PARALLEL_SEP, SearchSpace


class Op(StrEnum):
    """What an action does to a stage."""

    PRUNE = "prune"  # remove a component (never the last active one)
    PIN = "pin"  # fix the stage's choice
    RESTORE = "restore"  # bring a pruned component back (and unpin the stage)


OPS = tuple(o.value for o in Op)


SELECTION_MODES = ("keep", "drop_outside")


SET_OPS = ("union", "intersection", "difference", "complement")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON-safe Python: numpy scalars -> Python, NaN and infinities -> None,
    mapping keys -> str, tuples -> lists (what json.dump would write and read back)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalar -> Python scalar, array -> (nested) list
        if isinstance(value, list):
            return json_safe(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unknown_op(op: Any) -> str:
    return f"op '{op}' is unknown; ops: {', '.join(OPS)}"


@dataclass(frozen=True)
class Action:
    """One step of a decision on a stage, given by name or index (``"s1"``, ``"0"``).

    ``prune`` and ``restore`` take a ``component``; ``pin`` takes a ``choice`` (one component, or
    several of an ``any`` stage; a ``"a+b"`` string is split, a pin's ``component`` becomes its
    choice). ``reason`` says why (the auto-pilot's explanation, the selection it came from);
    ``evidence`` is the JSON-safe data the reason rests on (a fitness row, a narrowing vote).
    Checked against a space only by ``apply_actions``.
    """

    op: Op
    stage: str
    component: str | None = None
    choice: tuple[str, ...] | None = None
    reason: str = ""
    evidence: dict | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        try:
            op = Op(self.op)
        except ValueError:
            raise InvalidInput(_unknown_op(self.op)) from None
        choice = self.choice
        component = None if self.component is None else str(self.component)
        if isinstance(choice, str):
            choice = tuple(choice.split(PARALLEL_SEP)) if choice else None
        elif choice is not None:
            choice = tuple(str(c) for c in choice) or None
        if op is Op.PIN and choice is None and component:
            choice, component = (component,), None
        if self.stage is None:
            raise InvalidInput("missing stage")
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "op", op)
        set_(self, "stage", str(self.stage))
        set_(self, "component", component)
        set_(self, "choice", choice)
        set_(self, "reason", str(self.reason or ""))
        set_(self, "evidence", None if self.evidence is None else json_safe(self.evidence))

    @property
    def target(self) -> str:
        """The component, or the pinned choice joined with ``+`` ("" when neither is given)."""
        return self.component or PARALLEL_SEP.join(self.choice or ())

    def __str__(self) -> str:
        return f"{self.op} {self.stage}:{self.target}"

    def to_dict(self) -> dict:
        """The JSON record: op, stage, component (or choice, ``+``-joined), reason and evidence
        when given; ``from_dict`` reads it back."""
        out: dict[str, Any] = {"op": self.op.value, "stage": self.stage}
        if self.component is not None:
            out["component"] = self.component
        if self.choice is not None:
            out["choice"] = PARALLEL_SEP.join(self.choice)
        if self.reason:
            out["reason"] = self.reason
        if self.evidence is not None:
            out["evidence"] = self.evidence
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "action") -> Action:
        """An action from its JSON record (a file, an external caller); ``InvalidInput`` naming
        ``where`` when it is not one. Other keys are ignored."""
        if not isinstance(d, Mapping):
            raise InvalidInput(f"{where}: expected a mapping with op, stage and component, got {d!r}")
        op = d.get("op")
        if op not in OPS:
            raise InvalidInput(f"{where}: {_unknown_op(op)}")
        if d.get("stage") is None or d.get("stage") == "":
            raise InvalidInput(f"{where}: missing stage")
        choice = d.get("choice")
        if choice is not None and not isinstance(choice, (str, list, tuple)):
            raise InvalidInput(f"{where}: choice {choice!r} is not a component name or a list of them")
        _check_names(d, where)
        evidence = d.get("evidence")
        return cls(Op(op), d["stage"], d.get("component") or None, choice or None, str(d.get("reason") or ""),
                   dict(evidence) if isinstance(evidence, Mapping) else None)


def _check_names(d: Mapping, where: str) -> None:
    """The names a recorded action gives follow the name rule (a stage may also be given by its index)."""
    stage = d["stage"]
    if not (isinstance(stage, int) and not isinstance(stage, bool) and stage >= 0) and not (
        isinstance(stage, str) and stage.isascii() and stage.isdigit()
    ):
        check_name(stage, f"{where}: stage")
    if d.get("component"):
        check_name(d["component"], f"{where}: component")
    choice = d.get("choice")
    for c in (choice.split(PARALLEL_SEP) if isinstance(choice, str) else choice) or ():
        check_name(c, f"{where}: choice")


def _apply_one(space: SearchSpace, action: Action, n: int) -> tuple[SearchSpace, Action]:
    """Validate one action against ``space``; the new space and the action in canonical form."""
    where = f"action {n}"
    if not isinstance(action, Action):
        raise TypeError(f"{where}: expected an Action, got {action!r} (Action.from_dict reads a record)")
    if not action.stage:
        raise InvalidInput(f"{where}: missing stage; stages: {', '.join(s.name for s in space.stages)}")
    i = space.stage_index(action.stage)
    stage = space.stages[i]
    if action.op is Op.PIN:
        if not action.choice:
            raise InvalidInput(f"{where}: pin needs a choice, e.g. {stage.name}:{stage.active[0]}")
        for c in action.choice:
            space._check_component(i, c)
        space = space.pin(i, action.choice)
        return space, Action(Op.PIN, stage.name, choice=space.stages[i].pinned, reason=action.reason)
    c = action.component
    if not c:
        raise InvalidInput(f"{where}: {action.op} needs a component; candidates of '{stage.name}': "
                           f"{', '.join(stage.candidates)}")
    space._check_component(i, c)
    if action.op is Op.PRUNE:
        if c not in stage.active:
            raise InvalidInput(f"cannot prune '{c}' in stage '{stage.name}': it is not active; "
                               f"active: {', '.join(stage.active)}")
        space = space.prune(i, c)
    else:
        if c in stage.active and stage.pinned is None:
            raise InvalidInput(f"cannot restore '{c}' in stage '{stage.name}': it is not pruned; "
                               f"pruned: {', '.join(stage.pruned) or 'none'}")
        space = space.restore(i, c)
    return space, Action(action.op, stage.name, component=c, reason=action.reason)


def apply_actions(space: SearchSpace, actions: Sequence[Action]) -> tuple[SearchSpace, list[Action]]:
    """All actions validated and applied in order (nothing is written); ``InvalidInput`` on the
    first bad one. Returns the new space and the actions in canonical form: the stage by name, a
    pin's choice as the stage now holds it, the reason kept, the evidence left to the decision's
    record."""
    if not actions:
        raise InvalidInput("no actions given: prune, pin or restore at least one component")
    canon = []
    for n, a in enumerate(actions, 1):
        space, c = _apply_one(space, a, n)
        canon.append(c)
    return space, canon


def describe_actions(actions: Sequence[Action]) -> str:
    """``prune s1:skip; pin s2:conv3x3+skip``."""
    return "; ".join(map(str, actions))


def _used(space: SearchSpace, archs: list[str]) -> list[set[str]]:
    used: list[set[str]] = [set() for _ in space.stages]
    for text in archs:
        arch = space.parse(str(text), check_active=False)
        for i, ch in enumerate(arch.choices):
            used[i].update(ch)
    return used


def selection_actions(space: SearchSpace, selected: list[str], others: list[str] | None = None,
                      mode: str = "keep") -> list[Action]:
    """Prune actions from a selection. ``keep``: prune every active component no selected
    architecture uses; ``drop_outside``: prune the components used by ``others`` but never by
    ``selected``. Pinned stages are left alone; a stage is never emptied."""
    if mode not in SELECTION_MODES:
        raise InvalidInput(f"selection mode '{mode}' is unknown; modes: {', '.join(SELECTION_MODES)}")
    if not selected:
        raise InvalidInput("the selection is empty: select some architectures first")
    if mode == "drop_outside" and others is None:
        raise InvalidInput("mode 'drop_outside' needs the architectures outside the selection (others)")
    inside = _used(space, selected)
    outside = _used(space, others or [])
    actions = []
    for i, s in enumerate(space.stages):
        if s.pinned is not None:
            continue
        if not inside[i] & set(s.active):
            raise InvalidInput(f"no selected architecture uses an active component of stage '{s.name}'; "
                             "select architectures of the current round")
        for c in s.active:
            if c in inside[i]:
                continue
            if mode == "keep":
                why = f"used by none of the {len(selected)} selected architectures"
            elif c in outside[i]:
                why = f"used only outside the selection ({len(selected)} selected)"
            else:
                continue
            actions.append(Action(Op.PRUNE, s.name, c, reason=why))
    return actions


def combine_selections(a: list[str], b: list[str], op: str, universe: list[str] | None = None) -> list[str]:
    """Set operations on selections, order kept (a's order first): union, intersection,
    difference (a without b), complement (``universe`` without a)."""
    if op not in SET_OPS:
        raise InvalidInput(f"selection operation '{op}' is unknown; operations: {', '.join(SET_OPS)}")
    a = list(dict.fromkeys(map(str, a)))
    bs = set(map(str, b or []))
    if op == "union":
        return list(dict.fromkeys(a + [str(x) for x in (b or [])]))
    if op == "intersection":
        return [x for x in a if x in bs]
    if op == "difference":
        return [x for x in a if x not in bs]
    if universe is None:
        raise InvalidInput("complement needs the universe: the architectures to complement within")
    sa = set(a)
    return [x for x in dict.fromkeys(map(str, universe)) if x not in sa]
