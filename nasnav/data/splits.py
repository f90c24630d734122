"""Data: sources -> seeded stratified train/val/test splits -> normalised tensors -> DataModule.

``load_splits(cfg, seed)`` does the whole pipeline in memory; ``NasDataModule`` wraps the result for
Lightning. ``cfg`` is any object with the ``data`` section's attributes (``nasnav.config.DataConfig``).
Same seed, same splits. Normalisation statistics come from the training split only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from nasnav import limits
from nasnav.choices import SOURCES, STANDARD_SOURCES
from nasnav.data import sources, standard
from nasnav.errors import InvalidInput

KIND_NDIM = {"image": 3, "sequence": 2, "tabular": 1}  # per-sample dimensions of each kind


@dataclass(frozen=True)
class InputSpec:
    """What a model needs to know about its input: kind, per-sample shape, classes."""

    kind: str  # "image" (N,C,H,W), "sequence" (N,C,L) or "tabular" (N,F)
    shape: tuple[int, ...]  # per sample, e.g. (1, 8, 8), (1, 40), (13,)
    num_classes: int
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept lists (from YAML / checkpoints) but store tuples, so the spec stays hashable.
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.kind not in KIND_NDIM:
            raise InvalidInput(f"spec.kind: unknown kind '{self.kind}'; valid: {', '.join(KIND_NDIM)}")
        if len(self.shape) != KIND_NDIM[self.kind]:
            raise InvalidInput(f"spec.shape: {self.shape} has the wrong rank for kind '{self.kind}'")
        if self.num_classes != len(self.class_names):
            raise InvalidInput(f"spec.num_classes: {self.num_classes} but {len(self.class_names)} class names")

    def to_dict(self) -> dict:
        """Plain dict of str / int / list, safe for YAML and ``torch.load(weights_only=True)``."""
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        """Inverse of ``to_dict``; a missing or unknown key is a ValueError naming it."""
        keys = {"kind", "shape", "num_classes", "class_names"}
        if not isinstance(d, dict):
            raise InvalidInput(f"spec: expected a mapping with keys {sorted(keys)}, got {type(d).__name__}")
        missing, unknown = keys - d.keys(), d.keys() - keys
        if missing or unknown:
            raise InvalidInput(
                f"spec: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}; expected {sorted(keys)}"
            )
        return cls(str(d["kind"]), tuple(d["shape"]), int(d["num_classes"]), tuple(d["class_names"]))


@dataclass
class DataSplits:
    """All three splits in memory, normalised with training statistics."""

    x_train: torch.Tensor  # float32, (N, *spec.shape)
    y_train: torch.Tensor  # int64, (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    spec: InputSpec
    # Normalisation applied (x - mean) / std, per channel (image, sequence) or feature (tabular);
    # shaped to broadcast against one sample. Kept so exports can normalise raw inputs the same way.
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


# ---- config checks -----------------------------------------------------------------------------
def _opt(cfg: Any, key: str, default: Any) -> Any:
    value = getattr(cfg, key, default)
    return default if value is None and default is not None else value


def _check_config(cfg: Any) -> None:
    """The checks that matter here even without ``nasnav.config`` (tests, notebooks)."""
    source = getattr(cfg, "source", None)
    if source not in SOURCES:
        raise InvalidInput(f"data.source: unknown source {source!r}; valid: {', '.join(SOURCES)}")
    val, test = _opt(cfg, "val_fraction", 0.15), _opt(cfg, "test_fraction", 0.15)
    for key, f in (("val_fraction", val), ("test_fraction", test)):
        if not isinstance(f, (int, float)) or not 0 < f < 1:
            raise InvalidInput(f"data.{key}: {f!r} must be a number between 0 and 1 (exclusive)")
    if val + test >= 1:
        raise InvalidInput(f"data.val_fraction + data.test_fraction: {val} + {test} leaves nothing to train on")
    for key in ("batch_size", "image_size", "max_samples"):
        v = getattr(cfg, key, None)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise InvalidInput(
                f"data.{key}: {v!r} must be a positive integer" + ("" if key == "batch_size" else " or null")
            )


def _read(cfg: Any) -> sources.RawData:
    source, path = cfg.source, getattr(cfg, "path", None)
    if source == "digits":
        return sources.read_digits()
    if source == "mnist1d":
        return sources.read_mnist1d()
    if source == "folder":
        return sources.read_folder(path, getattr(cfg, "image_size", None), bool(getattr(cfg, "grayscale", False)))
    if source == "cifar":
        return sources.read_cifar(path)
    if source in STANDARD_SOURCES:
        return standard.read_standard(source, getattr(cfg, "root", None), bool(getattr(cfg, "download", False)))
    return sources.read_csv(path, getattr(cfg, "target", None))


# ---- splitting ---------------------------------------------------------------------------------
def _can_stratify(y: np.ndarray, n_small: int) -> bool:
    """Whether sklearn can split ``y`` stratified with ``n_small`` samples on the small side."""
    counts = np.bincount(y)
    k = int((counts > 0).sum())
    return counts[counts > 0].min() >= 2 and n_small >= k and len(y) - n_small >= k


def _split(idx: np.ndarray, y: np.ndarray, n_out: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, ``n_out`` taken out), stratified by ``y[idx]`` when possible."""
    strat = y[idx] if _can_stratify(y[idx], n_out) else None
    if strat is None:
        warnings.warn(f"data: some classes are too small to stratify the {what}; splitting at random", stacklevel=3)
    rest, out = train_test_split(idx, test_size=n_out, stratify=strat, random_state=seed)
    return rest, out  # shuffled order, so the first samples of a split mix the classes


def split_indices(y: np.ndarray, cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, val, test) index arrays over ``y``, after the optional ``max_samples`` subset."""
    seed = int(seed) % 2**32  # sklearn's random_state range
    max_samples = getattr(cfg, "max_samples", None)
    n = len(y) if max_samples is None else min(max_samples, len(y))
    val_f, test_f = _opt(cfg, "val_fraction", 0.15), _opt(cfg, "test_fraction", 0.15)
    n_test, n_val = max(1, round(n * test_f)), max(1, round(n * val_f))
    if n - n_test - n_val < 2:
        raise InvalidInput(
            f"data: {n} samples are too few to split with val_fraction={val_f} and test_fraction={test_f} "
            f"(training would get {max(n - n_test - n_val, 0)}); add samples, raise data.max_samples, "
            "or lower data.val_fraction / data.test_fraction"
        )
    idx = np.arange(len(y))
    if n < len(y):
        _, idx = _split(idx, y, n, seed, "data.max_samples subset")
    rest, test = _split(idx, y, n_test, seed, "test split")
    train, val = _split(rest, y, n_val, seed, "validation split")
    return train, val, test


# ---- normalisation -----------------------------------------------------------------------------
def _stat_axes(kind: str) -> tuple[int, ...]:
    """Axes to average over: all but the channel axis (image, sequence) or feature axis (tabular)."""
    return {"image": (0, 2, 3), "sequence": (0, 2), "tabular": (0,)}[kind]


def fit_normalisation(x_train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel / per-feature mean and std of the training split, shaped like one sample."""
    axes = _stat_axes(kind)
    mean = x_train.mean(axis=axes, dtype=np.float64, keepdims=True)[0]
    std = x_train.std(axis=axes, dtype=np.float64, keepdims=True)[0]
    std[std < 1e-8] = 1.0  # a constant channel/feature would divide by zero; centring it suffices
    return mean.astype(np.float32), std.astype(np.float32)


# ---- pipeline ----------------------------------------------------------------------------------
def load_splits(cfg: Any, seed: int) -> DataSplits:
    """Read ``cfg.source``, split it (seeded, stratified), normalise with train statistics."""
    _check_config(cfg)
    raw = _read(cfg)
    num_classes = len(raw.class_names)
    present = np.unique(raw.y)
    if num_classes < 2 or len(present) < 2:
        raise InvalidInput(
            f"data.source: '{cfg.source}' data has {len(present)} class(es); classification needs at least 2"
        )
    train, val, test = split_indices(raw.y, cfg, seed)
    if len(np.unique(raw.y[train])) < 2:
        raise InvalidInput(
            "data: the training split holds only one class; add samples or lower data.val_fraction / data.test_fraction"
        )
    scale = 1 / 255 if raw.x.dtype == np.uint8 else 1.0  # pixels to 0..1, only for readable previews

    def part(i: np.ndarray) -> np.ndarray:
        return raw.x[i].astype(np.float32) * np.float32(scale)  # fancy indexing copies: in-place is safe

    xs = {"train": part(train), "val": part(val), "test": part(test)}
    mean, std = fit_normalisation(xs["train"], raw.kind)
    for x in xs.values():
        x -= mean
        x /= std
    spec = InputSpec(raw.kind, tuple(xs["train"].shape[1:]), num_classes, raw.class_names)
    y = {"train": raw.y[train], "val": raw.y[val], "test": raw.y[test]}
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in xs.items()}
    ty = {k: torch.from_numpy(v.astype(np.int64)) for k, v in y.items()}
    return DataSplits(
        t["train"], ty["train"], t["val"], ty["val"], t["test"], ty["test"], spec,
        mean=torch.from_numpy(mean), std=torch.from_numpy(std),
    )  # fmt: skip


class NasDataModule(pl.LightningDataModule):
    """Lightning wrapper over ``DataSplits``; loads lazily unless ``splits`` is given."""

    def __init__(self, cfg: Any, seed: int, splits: DataSplits | None = None):
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed)
        self._splits = splits

    def setup(self, stage: str | None = None) -> None:
        """Load the splits once (every process in DDP loads its own copy; it is deterministic)."""
        if self._splits is None:
            self._splits = load_splits(self.cfg, self.seed)

    @property
    def splits(self) -> DataSplits:
        """The data splits, loading them on first use."""
        self.setup()
        assert self._splits is not None
        return self._splits

    @property
    def spec(self) -> InputSpec:
        """The input spec, loading the data on first use."""
        return self.splits.spec

    def _loader(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> DataLoader:
        batch_size = int(_opt(self.cfg, "batch_size", 64))
        workers = int(_opt(self.cfg, "num_workers", 0))
        limits.check_data_workers(workers)
        generator = torch.Generator().manual_seed(self.seed) if train else None
        # A last training batch of one sample breaks BatchNorm in training mode; drop only that case.
        drop_last = train and len(x) > batch_size and len(x) % batch_size == 1
        return DataLoader(
            TensorDataset(x, y), batch_size=batch_size, shuffle=train, generator=generator,
            drop_last=drop_last, num_workers=workers, persistent_workers=workers > 0,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        """Shuffled with a generator seeded from ``seed``: the same order for the same seed."""
        s = self.splits
        return self._loader(s.x_train, s.y_train, train=True)

    def val_dataloader(self) -> DataLoader:
        s = self.splits
        return self._loader(s.x_val, s.y_val, train=False)

    def test_dataloader(self) -> DataLoader:
        s = self.splits
        return self._loader(s.x_test, s.y_test, train=False)


# ---- previews ----------------------------------------------------------------------------------
def describe(splits: DataSplits) -> dict:
    """Sizes and per-class counts of each split, as plain Python values (for a UI preview)."""
    spec = splits.spec
    ys = {"train": splits.y_train, "val": splits.y_val, "test": splits.y_test}
    counts = {
        k: dict(zip(spec.class_names, torch.bincount(y, minlength=spec.num_classes).tolist(), strict=True))
        for k, y in ys.items()
    }
    return {
        "kind": spec.kind,
        "shape": list(spec.shape),
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names),
        "sizes": {k: len(y) for k, y in ys.items()},
        "class_counts": counts,
    }


def preview_samples(splits: DataSplits, n: int = 16) -> list[tuple[np.ndarray, str]]:
    """Up to ``n`` training samples (normalised, per-sample shape) with their class names."""
    names = splits.spec.class_names
    k = min(n, len(splits.y_train))
    return [(splits.x_train[i].numpy().copy(), names[int(splits.y_train[i])]) for i in range(k)]
