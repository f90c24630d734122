"""Plain PyTorch building blocks of every network nasnav makes.

This file must import nothing but torch: the exporter copies its source verbatim into the
self-contained ``model.py`` it writes next to exported weights.

``dim`` is 2 for images (N, C, H, W), 1 for sequences (N, C, L) and 0 for tabular data (N, F).
Every component maps (N, C, ...) to the same shape, so the components of a stage are
interchangeable and parallel ones can be summed.
"""

import torch
from torch import nn


def conv_cls(dim: int) -> type:
    return nn.Conv2d if dim == 2 else nn.Conv1d


def bn_cls(dim: int) -> type:
    return nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d


class ConvBNReLU(nn.Sequential):
    """k x k convolution (optionally dilated), BatchNorm, ReLU."""

    def __init__(self, channels: int, dim: int, kernel: int = 3, dilation: int = 1):
        pad = dilation * (kernel - 1) // 2
        super().__init__(
            conv_cls(dim)(channels, channels, kernel, padding=pad, dilation=dilation, bias=False),
            bn_cls(dim)(channels),
            nn.ReLU(),
        )


class SepConv(nn.Sequential):
    """Depthwise k x k then pointwise 1 x 1 convolution, BatchNorm, ReLU."""

    def __init__(self, channels: int, dim: int, kernel: int = 3, dilation: int = 1):
        pad = dilation * (kernel - 1) // 2
        conv = conv_cls(dim)
        super().__init__(
            conv(channels, channels, kernel, padding=pad, dilation=dilation, groups=channels, bias=False),
            conv(channels, channels, 1, bias=False),
            bn_cls(dim)(channels),
            nn.ReLU(),
        )


class Pool(nn.Module):
    """3-wide max or average pooling with stride 1 (shape-preserving, no parameters)."""

    def __init__(self, channels: int, dim: int, mode: str = "max", kernel: int = 3):
        super().__init__()
        if mode == "max":
            self.pool = (nn.MaxPool2d if dim == 2 else nn.MaxPool1d)(kernel, 1, kernel // 2)
        else:
            pool = nn.AvgPool2d if dim == 2 else nn.AvgPool1d
            self.pool = pool(kernel, 1, kernel // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Skip(nn.Module):
    """Identity."""

    def __init__(self, channels: int, dim: int):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Dense(nn.Module):
    """Tabular block: Linear(C, C*mult) -> activation [-> Linear(C*mult, C)] -> BatchNorm -> dropout."""

    def __init__(self, channels: int, dim: int, mult: float = 1.0, act: str = "relu", dropout: float = 0.0):
        super().__init__()
        hidden = max(1, int(round(channels * mult)))
        acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
        layers = [nn.Linear(channels, hidden), acts[act]()]
        if hidden != channels:
            layers += [nn.Linear(hidden, channels), acts[act]()]
        layers.append(nn.BatchNorm1d(channels))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Stem(nn.Sequential):
    """Input layer: 3-wide conv (or Linear for tabular) from the data's channels, BN, ReLU."""

    def __init__(self, in_channels: int, channels: int, dim: int):
        if dim == 0:
            super().__init__(nn.Linear(in_channels, channels), nn.BatchNorm1d(channels), nn.ReLU())
        else:
            super().__init__(
                conv_cls(dim)(in_channels, channels, 3, padding=1, bias=False),
                bn_cls(dim)(channels),
                nn.ReLU(),
            )


class Transition(nn.Sequential):
    """Stage entry: change width and/or halve resolution (1x1 conv with stride, or Linear)."""

    def __init__(self, in_channels: int, channels: int, dim: int, stride: int = 1):
        if dim == 0:
            super().__init__(nn.Linear(in_channels, channels), nn.BatchNorm1d(channels), nn.ReLU())
        else:
            super().__init__(
                conv_cls(dim)(in_channels, channels, 1, stride=stride, bias=False),
                bn_cls(dim)(channels),
                nn.ReLU(),
            )


class Head(nn.Module):
    """Global average pooling (for conv inputs) and a linear classifier."""

    def __init__(self, channels: int, num_classes: int, dim: int):
        super().__init__()
        self.dim = dim
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dim > 0:
            x = x.flatten(2).mean(-1)  # (N, C, ...) -> (N, C)
        return self.fc(x)


class ChosenStage(nn.Module):
    """A stage of a standalone network: optional transition, then the sum of its components."""

    def __init__(self, transition: nn.Module, ops: list):
        super().__init__()
        self.transition = transition
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transition(x)
        out = self.ops[0](x)
        for op in self.ops[1:]:
            out = out + op(x)
        return out


class Network(nn.Module):
    """A standalone network: stem, stages, head."""

    def __init__(self, stem: nn.Module, stages: list, head: nn.Module):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
