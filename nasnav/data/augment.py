"""Training augmentation of images and sequences: random crop after zero padding, random horizontal flip.

Each data set has its own defaults (``Augmentation.for_data``): the standard image sets use the field's
recipe, a random 32x32 (28x28) crop of the image padded by 4 pixels, and a horizontal flip where a mirrored
image is still of its class: CIFAR and Fashion-MNIST, not SVHN's digits. Other sources get a small random
crop (padding size // 16, at least 1 cell: a shift) and no flip. ``data.crop_padding`` and ``data.flip``
override them; ``retrain.augment: false`` turns augmentation off. It applies to training batches only.

Randomness: a ``torch.Generator`` passed in, or torch's global generator, which Lightning's
``seed_everything(seed)`` seeds: the same seed gives the same crops and flips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from nasnav.data.standard import DATASETS

STANDARD_PADDING = 4  # pixels: the field's random-crop recipe for 32x32 (and 28x28) images
FLIPS = {"cifar10": True, "cifar100": True, "cifar": True, "fashion_mnist": True, "svhn": False}  # mirrored = same class?


@dataclass(frozen=True)
class Augmentation:
    crop_padding: int = 0  # random crop of the original size after zero padding by this many cells (0: none)
    flip: bool = False  # random horizontal flip (the last axis), half of the samples

    @classmethod
    def for_data(cls, data, kind: str, shape: tuple[int, ...]) -> Augmentation:
        """The augmentation of a data section (``DataConfig``) whose samples are of ``kind`` and ``shape``:
        the source's defaults, then ``data.crop_padding`` / ``data.flip`` where set. Tabular data: none."""
        if kind == "tabular":
            return cls()
        source = getattr(data, "source", "")
        standard = source in DATASETS or source == "cifar"
        padding = STANDARD_PADDING if standard else max(1, min(shape[1:]) // 16)
        flip = FLIPS.get(source, False) and kind == "image"
        if getattr(data, "crop_padding", None) is not None:
            padding = int(data.crop_padding)
        if getattr(data, "flip", None) is not None:
            flip = bool(data.flip) and kind == "image"
        return cls(padding, flip)

    def to_dict(self) -> dict:
        return asdict(self)

    def words(self) -> str:
        """'random crop (padding 4) and horizontal flip', 'none'."""
        parts = ([f"random crop (padding {self.crop_padding})"] if self.crop_padding else []) + \
            (["horizontal flip"] if self.flip else [])
        return " and ".join(parts) or "none"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A training batch, (N, C, H, W) or (N, C, L), cropped and flipped per sample."""
        x = augment_batch(x, self.crop_padding, generator)
        if self.flip and x.dim() == 4:
            mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x


def augment_batch(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the original size after zero padding by ``max_shift`` cells, per sample (images,
    sequences): a random translation with zero fill."""
    if max_shift <= 0 or x.dim() < 3:
        return x
    n = x.shape[0]
    spatial = x.dim() - 2
    pad = [max_shift] * (2 * spatial)
    padded = F.pad(x, pad)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, spatial), generator=generator).to(x.device)
    if spatial == 1:
        idx = shifts[:, 0, None] + torch.arange(x.shape[2], device=x.device)  # (N, L)
        return padded.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))
    rows = shifts[:, 0, None] + torch.arange(x.shape[2], device=x.device)  # (N, H)
    cols = shifts[:, 1, None] + torch.arange(x.shape[3], device=x.device)  # (N, W)
    b = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
