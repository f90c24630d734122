"""From a scatterplot selection event to a list of architecture strings (plain functions: the
AppTest cannot drive chart selections, so this is where selection logic is tested)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from nasnav.space import SearchSpace
from nasnav.steering.actions import Action, Op
from nasnav.ui.charts import BRUSH, PICK


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def is_drawn(selection: Any) -> bool:
    """Whether the event holds a brush rectangle or clicked points at all (they may hold no candidate)."""
    brush, picked = _get(selection, BRUSH), _get(selection, PICK)
    return bool(isinstance(brush, Mapping) and any(f in brush for f in ("x", "y"))) or bool(picked)


def archs_from_selection(selection: Any, points: pd.DataFrame, scored_only: bool = True) -> list[str]:
    """Architectures in the brush (``{"x": [lo, hi], "y": [lo, hi]}``) or clicked
    (``[{"arch": ...}, ...]``), best one-shot accuracy first.

    ``selection`` is the chart event's ``selection`` (attribute- or dict-style); ``points`` the
    frame the chart was drawn from (arch, x, y, one_shot_acc, scored).
    """
    if points is None or points.empty or selection is None:
        return []
    mask = pd.Series(False, index=points.index)
    brush = _get(selection, BRUSH)
    if isinstance(brush, Mapping) and brush:
        inside = pd.Series(True, index=points.index)
        for field in ("x", "y"):
            rng = brush.get(field)
            if isinstance(rng, (list, tuple)) and len(rng) == 2:
                lo, hi = sorted(float(v) for v in rng)
                inside &= points[field].between(lo, hi)
        if any(f in brush for f in ("x", "y")):
            mask |= inside
    picked = _get(selection, PICK)
    if isinstance(picked, (list, tuple)) and picked:
        names = {str(p.get("arch")) for p in picked if isinstance(p, Mapping) and p.get("arch") is not None}
        mask |= points["arch"].astype(str).isin(names)
    if scored_only and "scored" in points.columns:
        mask &= points["scored"].astype(bool)
    chosen = points[mask]
    if "one_shot_acc" in chosen.columns:
        chosen = chosen.sort_values("one_shot_acc", ascending=False, na_position="last")
    return list(dict.fromkeys(chosen["arch"].astype(str)))


def components_used(space: SearchSpace, archs: list[str]) -> dict[tuple[str, str], float]:
    """Share of the given architectures that use each (stage, component)."""
    if not archs:
        return {}
    counts: dict[tuple[str, str], int] = {}
    names = [s.name for s in space.stages]
    for a in archs:
        for stage, part in zip(names, a.split("/")):
            for c in part.split("+"):
                counts[(stage, c)] = counts.get((stage, c), 0) + 1
    return {k: v / len(archs) for k, v in counts.items()}


def shares_against_rest(space: SearchSpace, selected: list[str], rest: list[str]) -> pd.DataFrame:
    """Rows (stage, component, label, group, share): how often the selection and the rest use each
    component of the space (for ``charts.component_shares``)."""
    rows = []
    for group, archs in (("selection", selected), ("rest", rest)):
        used = components_used(space, [str(a) for a in archs])
        rows += [{"stage": s.name, "component": c, "label": f"{s.name}:{c}", "group": group,
                  "share": used.get((s.name, c), 0.0)} for s in space.stages for c in s.candidates]
    return pd.DataFrame(rows)


VERBS = {Op.PRUNE: "Prune", Op.PIN: "Pin", Op.RESTORE: "Restore"}


def describe_action(action: Action) -> str:
    """A readable line for a steering action (never a raw record on screen)."""
    verb = VERBS[action.op]
    what = action.target
    return f"{verb} **{what}** in stage **{action.stage}**" if what else f"{verb} stage **{action.stage}**"


PLAIN_VERBS = {Op.PRUNE: "drop", Op.PIN: "fix to", Op.RESTORE: "bring back"}


def describe_proposal(actions: list[Action]) -> str:
    """Suggestions in plain words, one line per stage and verb, with why in a few words
    (a markdown list)."""
    groups: dict[tuple[str, str], list[str]] = {}
    narrowing = False
    for a in actions:
        ev = a.evidence if isinstance(a.evidence, Mapping) else {}
        share, fit = _num(ev.get("elite_share")), _num(ev.get("fitness"))
        if share is not None:
            narrowing = True
            why = f" ({share:.0%} of the best candidates' votes)"
        elif fit is not None:
            why = f" ({abs(fit) * 100:.1f} points {'worse' if fit < 0 else 'better'} on average)"
        else:
            why = ""
        groups.setdefault((a.stage, PLAIN_VERBS[a.op]), []).append(f"**{a.target}**{why}")
    lines = [f"- stage **{stage}**: {verb} " + ", ".join(items) for (stage, verb), items in groups.items()]
    if narrowing:
        lines.insert(0, "Keep in each stage only what the best-scoring candidates use:")
    return "\n".join(lines)


def describe_evidence(evidence: Any) -> str:
    """Evidence of a suggestion as one readable line."""
    if evidence is None:
        return ""
    if isinstance(evidence, str):
        return evidence
    if isinstance(evidence, Mapping) and "fitness" in evidence and "frequency" in evidence:
        return _fitness_row(evidence)
    if isinstance(evidence, Mapping) and _num(evidence.get("elite_share")) is not None:  # a narrowing action
        return f"{_num(evidence['elite_share']):.0%} of the best candidates' vote in stage {evidence.get('stage', '?')}"
    if isinstance(evidence, Mapping):
        parts = []
        for k, v in evidence.items():
            if isinstance(v, float):
                parts.append(f"{k.replace('_', ' ')} {v:+.4f}" if "fitness" in k or "ci" in k else
                             f"{k.replace('_', ' ')} {v:.4g}")
            elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
                parts.append(f"{k.replace('_', ' ')} [{v[0]:+.4f}, {v[1]:+.4f}]")
            else:
                parts.append(f"{k.replace('_', ' ')} {v}")
        return ", ".join(parts)
    if isinstance(evidence, (list, tuple)):
        return "; ".join(describe_evidence(e) for e in evidence)
    return str(evidence)


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def _fitness_row(r: Mapping) -> str:
    """A fitness-table row (the auto-pilot's evidence) as one line of the numbers that matter."""
    f, lo, hi = _num(r.get("fitness")), _num(r.get("ci_low")), _num(r.get("ci_high"))
    parts = []
    if f is not None:
        parts.append(f"fitness {f:+.4f}" + (f" [{lo:+.4f}, {hi:+.4f}]" if lo is not None and hi is not None else ""))
    if r.get("frequency") is not None:
        parts.append(f"seen in {int(r['frequency'])} candidates")
    w, wo = _num(r.get("mean_with")), _num(r.get("mean_without"))
    if w is not None and wo is not None:
        parts.append(f"mean accuracy with {w:.3f} / without {wo:.3f}")
    if _num(r.get("top_with")) is not None:
        parts.append(f"upper tail {float(r['top_with']):.3f}")
    if r.get("in_top") is not None:
        parts.append(f"{int(r['in_top'])} among the best")
    return " · ".join(parts)
