"""Scoring architectures with shared weights, and their costs (params, FLOPs, latency).

One-shot accuracy: the supernet's BatchNorm running statistics are a mix over all paths, so
before scoring a path its BN layers are reset and recalibrated on a few training batches;
the statistics are restored afterwards, so candidates never leak into each other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasnav.errors import InvalidInput
from nasnav.model.supernet import Supernet
from nasnav.space import Arch, SearchSpace

Metrics = dict  # at least "one_shot_acc"; the supernet evaluator adds val_loss, params, flops


class Evaluator(Protocol):
    """Anything that scores an architecture: the supernet, a lookup table, standalone training."""
    def __call__(self, arch: Arch) -> Metrics: ...


def _bns(modules: list[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(net: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], batches: list[torch.Tensor],
                   bns: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Reset ``bns`` and re-estimate their statistics as an exact average over ``batches``."""
    net.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
        m.train()
    for x in batches:
        forward(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
        m.eval()


class CostModel:
    """Params and FLOPs of any architecture, from a per-component table computed once.

    Every stage's input shape is fixed by the space (not by other stages' choices), so an
    architecture's cost is the fixed part (stem, transitions, head) plus its components'.
    """

    def __init__(self, net: Supernet, input_shape: tuple[int, ...]):
        self.table: dict[tuple[int, str], tuple[int, int]] = {}
        x = torch.zeros((1, *input_shape), device=next(net.parameters()).device)
        fixed_params, fixed_flops = 0, 0
        with torch.no_grad():
            was = net.training
            net.eval()
            h, n = _cost(net.stem, x)
            fixed_params, fixed_flops = fixed_params + n[0], fixed_flops + n[1]
            for i, stage in enumerate(net.stages):
                h, n = _cost(stage.transition, h)
                fixed_params, fixed_flops = fixed_params + n[0], fixed_flops + n[1]
                for name, op in stage.ops.items():
                    _, self.table[(i, name)] = _cost(op, h)
                h = h  # components are shape-preserving: the next stage sees the same shape
            _, n = _cost(net.head, h)
            net.train(was)
        self.fixed = (fixed_params + n[0], fixed_flops + n[1])

    def params(self, arch: Arch) -> int:
        return self.fixed[0] + sum(self.table[(i, c)][0] for i, ch in enumerate(arch.choices) for c in ch)

    def flops(self, arch: Arch) -> int:
        return self.fixed[1] + sum(self.table[(i, c)][1] for i, ch in enumerate(arch.choices) for c in ch)

    def extreme(self, space: SearchSpace, largest: bool) -> Arch:
        """The architecture of ``space`` with the most (or fewest) params. Costs add up per component,
        so each stage independently takes its costliest components, as many as it may hold (or its
        single cheapest one); a pinned stage keeps its pin."""
        choices = []
        for i, s in enumerate(space.stages):
            if s.pinned is not None:
                choices.append(tuple(s.pinned))
                continue
            ranked = sorted(s.active, key=lambda c, i=i: self.table[(i, c)], reverse=largest)
            choices.append(tuple(ranked[: s.max_k()] if largest else ranked[:1]))
        return Arch(tuple(choices))


def _cost(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    params = sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter:
        out = module(x)
    return out, (params, int(counter.get_total_flops()))


def count_flops(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of one sample."""
    was = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros((1, *input_shape)))
    net.train(was)
    return int(counter.get_total_flops())


def latency_ms(net: nn.Module, input_shape: tuple[int, ...], batch: int = 1, reps: int = 20) -> float:
    """Median CPU wall time of a forward pass, in milliseconds."""
    was = net.training
    net.eval()
    x = torch.zeros((batch, *input_shape))
    times = []
    with torch.no_grad():
        net(x)
        for _ in range(reps):
            t = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t) * 1000)
    net.train(was)
    return float(sorted(times)[len(times) // 2])


class SupernetEvaluator:
    """Scores architectures with the supernet's weights after BN recalibration.

    ``recal_x``: a list of training batches; ``val_x``/``val_y``: the validation split, scored in chunks
    of ``chunk`` samples. ``device``: where the net, the recalibration batches and the validation split
    are put and scoring runs (default: where the net is); ``autocast``: a dtype to run the forward
    passes in under ``torch.autocast`` (e.g. bfloat16 on a GPU; None: full precision, exactly as
    before). Params and FLOPs are counted once, on the net as it is handed in.
    """

    def __init__(self, net: Supernet, recal_x: list[torch.Tensor], val_x: torch.Tensor, val_y: torch.Tensor,
                 input_shape: tuple[int, ...], chunk: int = 1024, device: torch.device | str | None = None,
                 autocast: torch.dtype | None = None):
        self.cost = CostModel(net, input_shape)
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(self.device).eval()
        self.recal_x = [x.to(self.device) for x in recal_x]
        self.val = [(x.to(self.device), y.to(self.device)) for x, y in zip(val_x.split(chunk), val_y.split(chunk))]
        self.n_val = len(val_y)
        self.autocast = autocast

    def _forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        if self.autocast is None:
            return self.net(x, arch)
        with torch.autocast(self.device.type, dtype=self.autocast):
            return self.net(x, arch).float()

    @torch.no_grad()
    def __call__(self, arch: Arch) -> Metrics:
        bns = _bns(self.net.path_modules(arch))
        saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in bns]
        try:
            recalibrate_bn(self.net, lambda x: self._forward(x, arch), self.recal_x, bns)
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            loss = torch.zeros((), dtype=torch.float64, device=self.device)
            for x, y in self.val:  # sums stay on the device: one synchronisation per candidate
                logits = self._forward(x, arch)
                correct += (logits.argmax(1) == y).sum()
                loss += F.cross_entropy(logits, y, reduction="sum").double()
            correct, loss = int(correct), float(loss)
        finally:
            for m, state in zip(bns, saved):
                m.load_state_dict(state)
        if math.isnan(loss):  # NaN outputs: the weights (or their BN statistics) are broken, not this arch
            raise InvalidInput(
                f"architecture {arch}: the supernet gives NaN outputs, so no accuracy can be measured; "
                "its training diverged: lower supernet.lr (e.g. 10 times smaller) and train the supernet again"
            )
        return {
            "one_shot_acc": correct / self.n_val,
            "val_loss": loss / self.n_val,
            "params": self.cost.params(arch),
            "flops": self.cost.flops(arch),
        }


@torch.no_grad()
def exact_scores(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``net`` (in eval mode) over every sample of (x, y), once each.

    Used after multi-process (DDP) training, where Lightning's test loop splits the set across ranks,
    pads it with repeated samples and averages the ranks' means: close, but not the exact number.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    correct, loss = 0, 0.0
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            logits = net(xb.to(device)).float()
            correct += int((logits.argmax(1).cpu() == yb).sum())
            loss += float(F.cross_entropy(logits.cpu(), yb, reduction="sum"))
    finally:
        net.train(was_training)
    return correct / max(1, len(y)), loss / max(1, len(y))


def make_recal_batches(x_train: torch.Tensor, n_batches: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """A fixed, seeded set of training batches for recalibration (the same for every candidate)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x_train), generator=g)[: n_batches * batch_size]
    return list(x_train[idx].split(batch_size))


def space_param_range(space: SearchSpace, cost: CostModel) -> tuple[int, int]:
    """Params of the smallest and of the largest architecture of a space."""
    return cost.params(cost.extreme(space, largest=False)), cost.params(cost.extreme(space, largest=True))
