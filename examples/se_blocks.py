"""Squeeze-and-excitation convolutions: own components for nasnav's search spaces.

Plain PyTorch (no nasnav import): an export copies this file beside model.py, which imports it.
Name it in a config:  components: [se_blocks.py]  (relative to the config file), then use the names
below as candidates of a stage.
"""

import torch
from torch import nn


class SEConv(nn.Module):
    """k-wide convolution, BatchNorm, ReLU, then squeeze-and-excitation channel gating."""

    def __init__(self, channels: int, dim: int, kernel: int = 3, reduction: int = 4):
        super().__init__()
        conv = nn.Conv2d if dim == 2 else nn.Conv1d  # dim: 2 images (N, C, H, W), 1 sequences (N, C, L)
        bn = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
        self.body = nn.Sequential(conv(channels, channels, kernel, padding=kernel // 2, bias=False),
                                  bn(channels), nn.ReLU())
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)  # (N, C, ...): same shape as x
        w = self.gate(y.flatten(2).mean(-1))  # squeeze: (N, C) weights in (0, 1)
        for _ in range(y.dim() - 2):
            w = w.unsqueeze(-1)  # (N, C, 1, ...) to scale every position of a channel
        return y * w


# name -> class (built as cls(channels=C, dim=d)), or a mapping with kwargs, kinds and a description
COMPONENTS = {
    "se_conv3x3": SEConv,
    "se_conv5x5": {"cls": SEConv, "kwargs": {"kernel": 5}, "description": "SEConv with a 5-wide convolution"},
}
KINDS = ("image", "sequence")  # the input kinds these components accept (this is also the default)
