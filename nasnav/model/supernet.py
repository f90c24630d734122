"""The weight-sharing supernet over a search space.

``Supernet.forward(x, arch)`` runs the path an architecture names; no module holds hidden
"active" state, so any number of architectures can be scored against one set of weights.
``extract(arch)`` copies that path's weights into a standalone ``layers.Network``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nasnav.model import layers
from nasnav.model.ops import KIND_DIM, get_op
from nasnav.space import Arch, SearchSpace


def _transition(in_ch: int, out_ch: int, stride: int, dim: int) -> nn.Module:
    if in_ch == out_ch and stride == 1:
        return nn.Identity()
    return layers.Transition(in_ch, out_ch, dim, stride)


class SuperStage(nn.Module):
    """Shared entry transition plus one module per ORIGINAL candidate (pruned ones keep weights)."""

    def __init__(self, in_ch: int, stage, kind: str):
        super().__init__()
        dim = KIND_DIM[kind]
        self.transition = _transition(in_ch, stage.channels, stage.stride, dim)
        self.ops = nn.ModuleDict({c: get_op(c, kind).build(stage.channels, dim) for c in stage.candidates})

    def forward(self, x: torch.Tensor, choice: tuple[str, ...]) -> torch.Tensor:
        x = self.transition(x)
        out = self.ops[choice[0]](x)
        for name in choice[1:]:
            out = out + self.ops[name](x)  # "any" stages sum parallel components
        return out


class Supernet(nn.Module):
    """Stem, one SuperStage per stage, classifier head."""

    def __init__(self, space: SearchSpace, kind: str, in_channels: int, num_classes: int):
        super().__init__()
        self.space = space.unpruned()  # weights exist for every original component
        self.kind = kind
        dim = KIND_DIM[kind]
        self.stem = layers.Stem(in_channels, space.stem_channels, dim)
        stages, width = [], space.stem_channels
        for stage in space.stages:
            stages.append(SuperStage(width, stage, kind))
            width = stage.channels
        self.stages = nn.ModuleList(stages)
        self.head = layers.Head(width, num_classes, dim)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.stem(x)
        for stage, choice in zip(self.stages, arch.choices):
            x = stage(x, choice)
        return self.head(x)

    def path_modules(self, arch: Arch) -> list[nn.Module]:
        """The modules an architecture runs through (stem, transitions, chosen ops, head)."""
        mods: list[nn.Module] = [self.stem, self.head]
        for stage, choice in zip(self.stages, arch.choices):
            mods.append(stage.transition)
            mods.extend(stage.ops[c] for c in choice)
        return mods

    def largest_path(self, space: SearchSpace) -> Arch:
        """Per stage of ``space`` (pruned or not), the allowed choice with the most parameters: the
        teacher of in-place distillation (``supernet.distill``). Ties go to the earlier choice."""
        def size(i: int, choice: tuple[str, ...]) -> int:
            return sum(p.numel() for c in choice for p in self.stages[i].ops[c].parameters())

        return Arch(tuple(max(st.choices(), key=lambda ch, i=i: size(i, ch)) for i, st in enumerate(space.stages)))

    def component_parameters(self, stage: int, component: str) -> list[nn.Parameter]:
        return list(self.stages[stage].ops[component].parameters())

    def extract(self, arch: Arch) -> layers.Network:
        """A standalone network with copies of this path's weights (same outputs)."""
        stages = [
            layers.ChosenStage(copy.deepcopy(st.transition), [copy.deepcopy(st.ops[c]) for c in choice])
            for st, choice in zip(self.stages, arch.choices)
        ]
        return layers.Network(copy.deepcopy(self.stem), stages, copy.deepcopy(self.head)).train(self.training)


def build_network(space: SearchSpace, arch: Arch, kind: str, in_channels: int, num_classes: int) -> layers.Network:
    """A freshly initialised standalone network for an architecture (for retraining from scratch)."""
    dim = KIND_DIM[kind]
    stages, width = [], space.stem_channels
    for stage, choice in zip(space.stages, arch.choices):
        ops = [get_op(c, kind).build(stage.channels, dim) for c in choice]
        stages.append(layers.ChosenStage(_transition(width, stage.channels, stage.stride, dim), ops))
        width = stage.channels
    return layers.Network(layers.Stem(in_channels, space.stem_channels, dim), stages, layers.Head(width, num_classes, dim))


def network_source(space: SearchSpace, arch: Arch, kind: str, in_channels: int, num_classes: int) -> str:
    """Python source of a function ``build()`` that constructs the same Network (plain PyTorch)."""
    dim = KIND_DIM[kind]
    lines = own_imports([get_op(c, kind) for choice in arch.choices for c in choice])
    lines += ["def build():", f"    stem = Stem({in_channels}, {space.stem_channels}, {dim})", "    stages = []"]
    width = space.stem_channels
    for stage, choice in zip(space.stages, arch.choices):
        if width == stage.channels and stage.stride == 1:
            trans = "nn.Identity()"
        else:
            trans = f"Transition({width}, {stage.channels}, {dim}, {stage.stride})"
        ops = ", ".join(get_op(c, kind).source_call(stage.channels, dim) for c in choice)
        lines.append(f"    stages.append(ChosenStage({trans}, [{ops}]))  # stage {stage.name!r}: {'+'.join(choice)!r}")
        width = stage.channels
    lines.append(f"    return Network(stem, stages, Head({width}, {num_classes}, {dim}))")
    return "\n".join(lines) + "\n"


def network_constructors(space: SearchSpace, arch: Arch, kind: str) -> set[str]:
    """The class names ``network_source``'s ``build()`` calls (``nn.Identity`` aside)."""
    names = {layers.Stem.__name__, layers.ChosenStage.__name__, layers.Transition.__name__, layers.Network.__name__,
             layers.Head.__name__}
    return names | {get_op(c, kind).cls.__name__ for choice in arch.choices for c in choice}


def own_imports(specs) -> list[str]:
    """Import lines for the own components among ``specs``: their source files are exported beside
    model.py (``nasnav.components.copy_sources``), whose folder goes first on the import path."""
    imports = sorted({f"from {s.module} import {s.cls.__name__}  # noqa: E402" for s in specs if s.module})
    if not imports:
        return []
    return ["# own components: their source files lie beside this file", "import os as _os", "import sys as _sys",
            "", "_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))", *imports, "", ""]


def warm_start(new: Supernet, old_state: dict) -> list[str]:
    """Load every tensor of ``old_state`` whose name and shape match; returns names not loaded."""
    own = new.state_dict()
    loaded = {k: v for k, v in old_state.items() if k in own and own[k].shape == v.shape}
    new.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))
