"""``final/<arch-key>/model_card.md``: what the network is, how it was found, how good it is, how to use it.

Reads only files of the run directory (config.yaml, rounds/*/space.yaml, candidates.csv,
decisions.json, spotcheck.json, final/<key>/metrics.json, arch.yaml, export.json), so it can be
rewritten at any time, e.g. after a later spot check. A missing file leaves its section short.
"""

from __future__ import annotations

import math
import time

import pandas as pd

from nasnav.analysis import trust
from nasnav.data.augment import Augmentation
from nasnav.errors import InvalidInput
from nasnav.markdown import code, text
from nasnav.steering.actions import Action
from nasnav.store import layout, records
from nasnav.store.io import atomic_write_text, read_json
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir
from nasnav.workflow.arch_record import read_arch_record
from nasnav.workflow.card_use import front_matter, usage_section, use_sections


def _pct(x, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.{digits}f}%"


def _num(x, fmt: str = ",") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(int(x), fmt) if fmt == "," else format(float(x), fmt)


def _safe_json(path):
    try:
        return read_json(path, default=None)
    except ValueError:
        return None


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of an accuracy ``p`` measured on ``n`` samples."""
    if n <= 0:
        return (float("nan"), float("nan"))
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _evidence_text(ev: dict) -> str:
    """A fitness row (nasnav.analysis.fitness) in a few words."""
    parts = []
    if isinstance(ev.get("fitness"), (int, float)):
        ci = ""
        if isinstance(ev.get("ci_low"), (int, float)) and isinstance(ev.get("ci_high"), (int, float)):
            ci = f" [{ev['ci_low']:+.4f}, {ev['ci_high']:+.4f}]"
        parts.append(f"fitness {ev['fitness']:+.4f}{ci}")
    if isinstance(ev.get("frequency"), (int, float)):
        parts.append(f"in {int(ev['frequency'])} candidates")
    if isinstance(ev.get("top_with"), (int, float)):
        parts.append(f"best-tail accuracy {ev['top_with']:.4f}")
    return ", ".join(parts)


def _action_line(raw, n: int, evidence: list) -> str:
    """One recorded action (a JSON record of ``steering.actions.Action``) as a line of the card."""
    try:
        a = Action.from_dict(raw, f"action {n}")
    except InvalidInput as e:
        return f"  - (not a readable action: {text(e)})"
    line = f"  - **{a.op}** {code(f'{a.stage}:{a.target}')}"
    if a.reason:
        return f"{line}: {text(a.reason)}"  # the auto-pilot's reason already quotes its evidence
    ev = a.evidence
    if ev is None:
        ev = next(
            (e for e in evidence if isinstance(e, dict) and e.get("stage") == a.stage and e.get("component") == a.component),
            None,
        )
    return f"{line} ({_evidence_text(ev)})" if ev and _evidence_text(ev) else line


def _decision_lines(data) -> list[str]:
    """decisions.json (nasnav.steering.policy: a list of records with source, actions, evidence, status)."""
    records = data if isinstance(data, list) else (data.get("decisions") or [data]) if isinstance(data, dict) else []
    lines = []
    for r in records:
        if not isinstance(r, dict):
            continue
        who = text(r.get("source") or r.get("by") or "analyst")
        when = f"{text(r['time'])}, " if r.get("time") else ""
        status = r.get("status", "applied")
        if status == "stop":
            lines.append(f"- {when}{who}: stopped here: {text(r.get('stop') or r.get('reason') or 'no reason recorded')}")
            continue
        if status == "extend":
            lines.append(f"- {when}{who}: searched this round further: "
                         f"{text(r.get('why') or 'nothing clearly worse yet')}")
            continue
        actions = r.get("actions") if isinstance(r.get("actions"), list) else [r]
        size = ""
        if isinstance(r.get("space_size"), int) and isinstance(r.get("next_space_size"), int):
            size = f", space {int(r['space_size']):,} -> {int(r['next_space_size']):,} architectures"
        note = " (later abandoned: undone and replaced)" if status == "abandoned" else ""
        lines.append(f"- {when}{who}{size}{note}:")
        evidence = r.get("evidence") if isinstance(r.get("evidence"), list) else []
        lines += [_action_line(a, n, evidence) for n, a in enumerate(actions, 1)]
    return lines


def _rounds_section(run: RunDir, cfg) -> list[str]:
    out = [
        "| round | architectures in space | candidates scored | best one-shot | spot check: prune by fitness? / pick by one-shot score? |",
        "|---|---|---|---|---|",
    ]
    decisions: list[str] = []
    strategies: list[str] = []  # as the candidates record them (a search can override the config's)
    for k in run.rounds():
        rdir = run.round_dir(k)
        size = "n/a"
        if records.has_space(run, k):
            try:
                size = f"{records.read_space(run, k).size():,}"
            except ValueError:
                pass
        df = read_candidates(run, k)
        strategies = list(dict.fromkeys(strategies + [str(s) for s in df["strategy"].dropna()]))
        acc = pd.to_numeric(df["one_shot_acc"], errors="coerce") if len(df) else pd.Series(dtype=float)
        best = f"{_pct(acc.max())} {code(df.loc[acc.idxmax(), 'arch'], in_table=True)}" if acc.notna().any() else "n/a"
        got = trust.answers(_safe_json(rdir / layout.SPOTCHECK_SUMMARY))
        checked = " / ".join(trust.SHORT[q][got[q]["verdict"]] if q in got else "-" for q in (trust.PRUNE, trust.PICK))
        out.append(f"| {k} | {size} | {len(df)} | {best} | {checked if got else 'not run'} |")
        lines = _decision_lines(_safe_json(rdir / layout.DECISIONS))
        if lines:
            decisions += [f"Round {k}:", *lines, ""]
    section = [
        "## The search",
        "",
        f"One-shot NAS: a weight-sharing supernet trained for {cfg.supernet.epochs} epochs "
        f"({cfg.supernet.sampler} path sampling, {cfg.supernet.optimizer}, lr {cfg.supernet.lr}), "
        f"{cfg.supernet.warm_start_epochs} warm-start epochs per later round; candidates scored by "
        f"{text(' and '.join(strategies) or cfg.search.strategy)} search with BatchNorm recalibration, "
        "on the validation split.",
        "",
        *out,
        "",
    ]
    if decisions:
        section += ["Decisions between rounds, with their evidence:", "", *decisions]
    else:
        section += ["No pruning decisions were recorded (no `decisions.json` in any round).", ""]
    return section


def _spotcheck_section(run: RunDir, metrics: dict) -> tuple[list[str], dict | None]:
    """The latest spot check's two answers (the round the network came from first), and its summary."""
    r, sc = records.latest_spotcheck(run, metrics.get("round", run.current_round()))
    if got := trust.answers(sc):
        state = {"done": "", "running": " (still running: the answers cover what has finished so far)"}.get(
            sc.get("state"), " (stopped early: the answers cover what had finished)")
        lines = ["## How far to trust the one-shot score", "",
                 f"Spot check of round {r}{state}: architectures sampled evenly over the round's space and the "
                 f"round's best candidates by one-shot score, each trained standalone for {text(sc.get('epochs'))} "
                 f"epochs with {text(sc.get('seeds'))} seeds, compared with their one-shot accuracy.", ""]
        lines += [f"- {text(got[q].get('text', ''))}" for q in (trust.PRUNE, trust.PICK) if q in got]
        return lines + [""], sc
    return ["## How far to trust the one-shot score", "",
            "No spot check was run, so nothing here says how far the one-shot score can be trusted, for pruning "
            "or for picking the final network; run `python -m nasnav spotcheck RUN` to measure it for this search.",
            ""], None


def _number(x):
    """A metric as a float, or None (a missing or damaged value)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def model_card(run: RunDir, cfg, key: str) -> str:
    """The markdown text of the card of ``final/<key>/``: YAML front matter, then the story. Every value from
    the run's files is escaped (``nasnav.markdown``); no absolute path of the machine appears."""

    d = run.final_dir(key)
    m = _safe_json(d / layout.FINAL_METRICS) or {}
    m = m if isinstance(m, dict) else {}
    rec = read_arch_record(d / layout.ARCH)  # checked: names, types
    exp = _safe_json(d / layout.EXPORT) or {}
    spec = rec["spec"]
    arch = rec["arch"]
    n_test = int(m["n_test"]) if isinstance(m.get("n_test"), int) else 0
    test_acc = _number(m.get("test_acc"))
    lo, hi = wilson(test_acc, n_test) if test_acc is not None else (None, None)
    seeds = m.get("seeds") if isinstance(m.get("seeds"), int) else 1
    spread = f" ± {_pct(_number(m.get('test_acc_std')))} (std over {seeds} seeds)" if seeds > 1 else ""
    trust_lines, trusted = _spotcheck_section(run, m)
    source = cfg.data.source
    lines = [
        front_matter(arch=arch, kind=spec.kind, source=source, num_classes=spec.num_classes, test_acc=test_acc,
                     val_acc=_number(m.get("val_acc")), n_test=n_test),
        f"# Model card: {code(arch)}",
        "",
        f"Generated by nasnav on {time.strftime('%Y-%m-%d %H:%M')} from run {code(run.name)}"
        + (f" ({text(cfg.name)})" if getattr(cfg, "name", "") else "")
        + ".",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| test accuracy (reported only) | **{_pct(test_acc)}**{spread}; 95% interval {_pct(lo)}–{_pct(hi)} on {n_test} test samples |",
        f"| standalone validation accuracy (what networks are chosen by) | {_pct(_number(m.get('val_acc')))} |",
        f"| one-shot estimate (supernet, validation split) | {_pct(_number(m.get('one_shot_acc')))} |",
        f"| parameters | {_num(_number(m.get('params')))} |",
        f"| FLOPs per sample | {_num(_number(m.get('flops')))} |",
        f"| CPU latency, batch 1 (median) | {_num(_number(m.get('latency_ms')), '.3f')} ms |",
        f"| training time | {_num(_number(m.get('train_seconds')), '.1f')} s for {seeds} seed(s) of "
        f"{text(m.get('epochs'))} epochs |",
        "",
        "The test split was held out before the search and never used to train, select or sort anything "
        "(networks are compared by validation accuracy): the test accuracy is an unbiased estimate for new "
        "data from the same source, reported once, here. The one-shot estimate comes from shared supernet "
        f"weights and is usually lower. What it can be trusted for: {text(trust.trust_line(trusted))}",
        "",
        "## Data",
        "",
        f"- source: {code(source)} ({spec.kind}), input shape {tuple(spec.shape)}, {spec.num_classes} classes: "
        f"{', '.join(code(c) for c in spec.class_names)}",
        f"- splits (seed {cfg.seed}, stratified): train {text(m.get('n_train', '?'))}, validation "
        f"{text(m.get('n_val', '?'))} (supernet validation, candidate scoring, early stopping), test {n_test} "
        "(final report only)",
        f"- raw input: {text(rec['raw_input'] or 'see model.py')}",
        "- normalisation: `(x - mean) / std` with the training split's statistics, per channel or feature: "
        f"mean {_short(rec['normalisation']['mean'])}, std {_short(rec['normalisation']['std'])}",
        "",
    ]
    lines += _rounds_section(run, cfg)
    lines += _arch_section(rec)
    lines += trust_lines
    rc = cfg.retrain
    per_seed = ", ".join(_pct(_number(a)) for a in m.get("test_accs", []) if isinstance(m.get("test_accs"), list))
    lines += [
        "## Retraining",
        "",
        f"From scratch, {rc.epochs} epochs, {rc.optimizer} (lr {rc.lr}, momentum {rc.momentum}, weight decay "
        f"{rc.weight_decay}), {rc.schedule} schedule, augmentation {_augmentation(cfg, spec) if rc.augment else 'off'}, "
        + (
            f"early stopping with patience {rc.patience} (best validation epoch kept)"
            if rc.patience
            else "no early stopping"
        )
        + f"; seeds {text(m.get('seed_list', []))}, test accuracy per seed: {per_seed or 'n/a'}. "
        f"The exported weights are those of seed {text(m.get('weights_seed', cfg.seed))}.",
        "",
    ]
    lines += use_sections(source)
    lines += usage_section(exp if isinstance(exp, dict) else {})
    if isinstance(exp, dict) and isinstance(exp.get("model_py"), dict):
        lines += [
            "Export checks (max |logit difference| against the trained network):",
            "",
            "```text",
            export_summary(exp),
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def _short(values, k: int = 6) -> str:
    if not values:
        return "none"
    shown = ", ".join(f"{v:.4g}" for v in values[:k])
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def _arch_section(rec: dict) -> list[str]:
    space, arch = rec["space"], rec["parsed"]
    out = [
        "## Final architecture",
        "",
        f"Stem: {space.stem_channels} channels; then one block per stage; then global average "
        "pooling (for images and sequences) and a linear classifier. Parallel components are summed.",
        "",
        "| stage | chosen | channels | stride | other candidates (pruned in brackets) |",
        "|---|---|---|---|---|",
    ]
    for st, choice in zip(space.stages, arch.choices):
        others = [f"\\[{text(c)}\\]" if c in st.pruned else text(c) for c in st.candidates if c not in choice]
        out.append(f"| {text(st.name)} | **{text('+'.join(choice))}** | {st.channels} | {st.stride} | {', '.join(others)} |")
    return out + [""]


def write_model_card(run: RunDir, cfg, key: str) -> str:
    """Write ``final/<key>/model_card.md``; returns its path."""
    path = run.final_dir(key) / layout.CARD
    atomic_write_text(path, model_card(run, cfg, key))
    return str(path)


def export_summary(info: dict) -> str:
    """One line per exported format, for the CLI and the model card."""
    lines = [f"model.py: {info['model_py']['status']} (max |diff| {info['model_py']['max_abs_diff']:.1e})"]
    for name, k in (("ONNX", "onnx"), ("torch.export", "torch_export")):
        r = info.get(k)
        if r is None:
            continue
        if r["status"] in ("ok", "mismatch") and "max_abs_diff" in r:
            extra = f" (checked with {r['checked_with']})" if r.get("checked_with") else ""
            lines.append(f"{name}: {r['status']}, max |diff| {r['max_abs_diff']:.1e}{extra}")
        else:
            lines.append(f"{name}: {r['status']}" + (f": {r['reason']}" if r.get("reason") else ""))
    return "\n".join(lines)


def _augmentation(cfg, spec) -> str:
    """The training augmentation in words, as the retraining applied it (``nasnav.data.augment``)."""
    return Augmentation.for_data(cfg.data, spec.kind, tuple(spec.shape)).words()
