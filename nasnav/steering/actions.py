"""Actions on a search space: prune, pin, restore; and the actions a scatterplot selection implies.

Pure: a space and actions in, a new space out; nothing is read or written.
"""

from __future__ import annotations

from nasnav.errors import InvalidInput
from nasnav.space import PARALLEL_SEP, SearchSpace

OPS = ("prune", "pin", "restore")


SELECTION_MODES = ("keep", "drop_outside")


SET_OPS = ("union", "intersection", "difference", "complement")


def _apply_one(space: SearchSpace, action: dict, n: int) -> tuple[SearchSpace, dict]:
    """Validate one action against ``space``; the new space and the action in canonical form."""
    where = f"action {n}"
    if not isinstance(action, dict):
        raise InvalidInput(f"{where}: expected a mapping with op, stage and component, got {action!r}")
    op = action.get("op")
    if op not in OPS:
        raise InvalidInput(f"{where}: op '{op}' is unknown; ops: {', '.join(OPS)}")
    if action.get("stage") is None:
        raise InvalidInput(f"{where}: missing stage; stages: {', '.join(s.name for s in space.stages)}")
    i = space.stage_index(action["stage"])
    stage = space.stages[i]
    out = {"op": op, "stage": stage.name}
    if op == "pin":
        choice = action.get("choice", action.get("component"))
        if not choice:
            raise InvalidInput(f"{where}: pin needs a choice, e.g. {stage.name}:{stage.active[0]}")
        names = choice.split(PARALLEL_SEP) if isinstance(choice, str) else list(choice)
        for c in names:
            space._check_component(i, c)
        space = space.pin(i, names)
        out["choice"] = PARALLEL_SEP.join(space.stages[i].pinned)
    else:
        c = action.get("component")
        if not c:
            raise InvalidInput(f"{where}: {op} needs a component; candidates of '{stage.name}': {', '.join(stage.candidates)}")
        space._check_component(i, c)
        if op == "prune":
            if c not in stage.active:
                raise InvalidInput(f"cannot prune '{c}' in stage '{stage.name}': it is not active; "
                                 f"active: {', '.join(stage.active)}")
            space = space.prune(i, c)
        else:
            if c in stage.active and stage.pinned is None:
                raise InvalidInput(f"cannot restore '{c}' in stage '{stage.name}': it is not pruned; "
                                 f"pruned: {', '.join(stage.pruned) or 'none'}")
            space = space.restore(i, c)
        out["component"] = c
    if action.get("reason"):
        out["reason"] = str(action["reason"])
    return space, out


def apply_actions(space: SearchSpace, actions: list[dict]) -> tuple[SearchSpace, list[dict]]:
    """All actions validated and applied in order (nothing is written); ValueError on the first bad one."""
    if not actions:
        raise InvalidInput("no actions given: prune, pin or restore at least one component")
    canon = []
    for n, a in enumerate(actions, 1):
        space, c = _apply_one(space, a, n)
        canon.append(c)
    return space, canon


def describe_actions(actions: list[dict]) -> str:
    return "; ".join(f"{a['op']} {a['stage']}:{a.get('component') or a.get('choice')}" for a in actions)


def _used(space: SearchSpace, archs: list[str]) -> list[set[str]]:
    used: list[set[str]] = [set() for _ in space.stages]
    for text in archs:
        arch = space.parse(str(text), check_active=False)
        for i, ch in enumerate(arch.choices):
            used[i].update(ch)
    return used


def selection_actions(space: SearchSpace, selected: list[str], others: list[str] | None = None,
                      mode: str = "keep") -> list[dict]:
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
            actions.append({"op": "prune", "stage": s.name, "component": c, "reason": why})
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
