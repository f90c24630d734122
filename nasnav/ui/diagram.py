"""The template network as a Graphviz DOT string (for ``st.graphviz_chart``): stages as
clusters of parallel components; pruned ones greyed, pinned ones marked, and the components a
selection uses highlighted with the share of selected architectures that use them."""

from __future__ import annotations

from nasnav.space import SearchSpace

ACTIVE = "#e7eef8"
PRUNED = "#f1f1f1"
PIN = "#d6336c"
HIGHLIGHT = (255, 140, 60)  # orange, blended by usage share


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _blend(share: float) -> str:
    share = max(0.0, min(1.0, share))
    r, g, b = (int(255 + (c - 255) * (0.25 + 0.75 * share)) for c in HIGHLIGHT)
    return f"#{r:02x}{g:02x}{b:02x}"


def template_dot(space: SearchSpace, used: dict[tuple[str, str], float] | None = None,
                 arch: str | None = None, direction: str = "LR") -> str:
    """DOT source of the template; ``used`` maps (stage, component) to a share in 0..1, and
    ``arch`` (an architecture string) marks one path."""
    path: set[tuple[str, str]] = set()
    if arch:
        for stage, part in zip(space.stages, arch.split("/")):
            path |= {(stage.name, c) for c in part.split("+")}
    lines = [
        "digraph template {",
        f"  rankdir={direction}; nodesep=0.12; ranksep=0.35; bgcolor=transparent;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, '
        f'fillcolor="{ACTIVE}", color="#7a8ca5", height=0.3];',
        '  edge [color="#9aa7b8", arrowsize=0.5];',
        '  input [label="input", shape=cds, fillcolor="#ffffff"];',
        f'  stem [label="stem\\n{space.stem_channels} ch"];',
        "  input -> stem;",
    ]
    prev = "stem"
    for i, s in enumerate(space.stages):
        mode = "one of" if s.select == "one" else (f"any {s.max_active or len(s.candidates)} of")
        title = f"{s.name} · {mode} · {s.channels} ch" + (" · stride 2" if s.stride == 2 else "")
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label={_q(title)}; fontname="Helvetica"; fontsize=11; style="rounded"; color="#c3ccd9";')
        for c in s.candidates:
            node = _q(f"{s.name}:{c}")
            attrs = {"label": c}
            share = (used or {}).get((s.name, c))
            if c in s.pruned:
                attrs.update(fillcolor=PRUNED, fontcolor="#a0a0a0", color="#c8c8c8", style="rounded,filled,dashed",
                             label=f"{c}\\n(pruned)")
            elif share:
                attrs.update(fillcolor=_blend(share), label=f"{c}\\n{share:.0%} of selection")
            if s.pinned is not None and c in s.pinned:
                attrs.update(color=PIN, penwidth="2.5", label=attrs["label"] + "\\n(pinned)")
            if (s.name, c) in path:
                attrs.update(color="#1c7ed6", penwidth="2.5")
            attr_text = ", ".join(f"{k}={_q(v) if k != 'label' else chr(34) + v + chr(34)}" for k, v in attrs.items())
            lines.append(f"    {node} [{attr_text}];")
        lines.append("  }")
        join = f"join{i}"
        lines.append(f'  {join} [shape=circle, label="{"+" if s.select == "any" else ""}", width=0.12, height=0.12, '
                     'fixedsize=true, fontsize=8, fillcolor="#7a8ca5", color="#7a8ca5"];')
        for c in s.candidates:
            node = _q(f"{s.name}:{c}")
            style = ' [style=dashed, color="#d0d0d0"]' if c in s.pruned else ""
            lines.append(f"  {prev} -> {node}{style};")
            lines.append(f"  {node} -> {join}{style};")
        prev = join
    lines.append('  head [label="pool + classifier"];')
    lines.append(f"  {prev} -> head;")
    lines.append("}")
    return "\n".join(lines)


LOOP_DOT = """digraph loop {
  layout=neato; splines=true; bgcolor=transparent; outputorder=edgesfirst;
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=12, width=1.9, height=0.6, fixedsize=true,
        fillcolor="#e7eef8", color="#7a8ca5"];
  edge [color="#7a8ca5", fontname="Helvetica", fontsize=10, arrowsize=0.7];
  space [label="1 · search space\\ntemplate network", pos="0,1.4!"];
  supernet [label="2 · train supernet\\nshared weights", pos="2.6,1.4!"];
  search [label="3a · score candidates\\none-shot accuracy", pos="5.2,1.4!"];
  analyse [label="3b · explore\\nmap + fitness", pos="5.2,0!"];
  retrain [label="4 · retrain the best\\nfrom scratch", pos="2.6,0!", fillcolor="#fde2ea", color="#d6336c"];
  export [label="export\\nmodel.py, ONNX", pos="0,0!", fillcolor="#fde2ea", color="#d6336c"];
  space -> supernet; supernet -> search; search -> analyse;
  analyse -> supernet [label="prune / pin:\\nnext round", style=dashed, color="#d6336c", fontcolor="#d6336c"];
  analyse -> retrain; retrain -> export;
}"""
