"""Readers for the data sources: each turns a config into raw arrays, nothing more.

A reader returns ``RawData``: features ``x`` with the sample axis first, already in the layout the
models expect (images N,C,H,W; sequences N,C,L; tables N,F), integer labels ``y`` in 0..K-1, and
the class names. Subsetting, splitting and normalisation happen in ``nasnav.data.splits``.

Errors a user can fix are ``ValueError`` messages that start with the config key they concern.
User files are never unpickled freely: CIFAR batches go through ``RestrictedUnpickler``.
"""

from __future__ import annotations

import io
import os
import pickle
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from nasnav.errors import InvalidInput
from nasnav.store.io import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MNIST1D_CACHE_NAME = "mnist1d-default-v1.npz"


@dataclass
class RawData:
    """Unsplit, unnormalised samples of one source."""

    x: np.ndarray  # (N, ...) any numeric dtype; uint8 means 0..255 pixel values
    y: np.ndarray  # (N,) int64 class indices
    class_names: tuple[str, ...]
    kind: str  # image | sequence | tabular


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$NASNAV_CACHE`` or ``~/.cache/nasnav``."""
    env = os.environ.get("NASNAV_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nasnav"


# ---- digits ----------------------------------------------------------------------------------
def read_digits() -> RawData:
    """scikit-learn's embedded 8x8 digits (1797 samples, pixel values 0..16)."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn's datasets module is slow to import

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # (N, 8, 8) -> (N, 1, 8, 8)
    return RawData(x, d.target.astype(np.int64), tuple(str(i) for i in range(10)), "image")


# ---- mnist1d ---------------------------------------------------------------------------------
def _make_mnist1d() -> dict[str, np.ndarray]:
    """Generate MNIST-1D locally (never downloads); leaves the global RNGs as they were."""
    from mnist1d.data import get_dataset_args, make_dataset  # lazy: pulls in matplotlib

    np_state, py_state = np.random.get_state(), random.getstate()  # make_dataset reseeds globals
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """A cached npz as plain arrays, or None if missing or unreadable (then it is regenerated)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, KeyError, ValueError):
        return None


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an npz atomically (``store.io``: a killed process never leaves half a file, the mode is the
    umask's, the temporary file names its host)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # an unwritable cache only costs a regeneration next time


def read_mnist1d() -> RawData:
    """MNIST-1D (5000 sequences of length 40), generated once and cached as npz."""
    path = cache_dir() / MNIST1D_CACHE_NAME
    d = _load_npz(path)
    if d is None:
        d = _make_mnist1d()
        _save_npz_atomic(path, d)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)[:, None]  # (N, 40) -> (N, 1, 40)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return RawData(x, y, tuple(str(i) for i in range(10)), "sequence")


# ---- where data may be read from ---------------------------------------------------------------
DATA_ROOT_ENV = "NASNAV_DATA_ROOT"
DEFAULT_DATA_DIR = "data"  # ./data: where a config's files go by default (next to the runs folder)


def data_root() -> Path | None:
    """The one folder ``$NASNAV_DATA_ROOT`` names, or None when it is unset (then ``data_roots``' defaults hold).

    ``NASNAV_DATA_ROOT=/`` lifts the confinement: every readable path is allowed (a deliberate choice).
    """
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else None


def data_roots() -> list[Path]:
    """The folders data paths are confined to: ``$NASNAV_DATA_ROOT`` when set, else ``./data`` (of the working
    directory) and nasnav's cache (``cache_dir()``, where standard data sets are downloaded to)."""
    root = data_root()
    if root is not None:
        return [root]
    return [Path(DEFAULT_DATA_DIR).resolve(), cache_dir().expanduser().resolve()]


def _outside(key: str, text: str, resolved: Path) -> InvalidInput:
    """The refusal of a path outside the data roots: it names the key, the path and the roots, never the
    file's contents (nothing of it is read)."""
    root = data_root()
    if root is not None:
        return InvalidInput(
            f"{key}: '{text}' is outside the data root {root} ({DATA_ROOT_ENV}); this server only reads data "
            "from that folder: give a path inside it (relative paths are taken from the root)"
        )
    here, cache = data_roots()
    shown = "" if str(resolved) == text else f" ({resolved})"
    return InvalidInput(
        f"{key}: '{text}'{shown} is outside the data roots {here} and {cache}; nasnav reads and downloads data "
        f"only there by default: move the data into {here}, or set {DATA_ROOT_ENV} to the folder that holds it "
        f"({DATA_ROOT_ENV}=/ allows every path: do that only on a machine nobody else reaches)"
    )


def confine_path(path: str | Path, key: str = "data.path") -> Path:
    """The path to read (or download into) for config key ``key``, resolved.

    A relative path is taken inside ``$NASNAV_DATA_ROOT`` when that is set, else from the working directory.
    The result (after ``~``, ``..`` and symbolic links) must lie inside one of ``data_roots()``; anything
    else is an InvalidInput naming the key, the path and the roots.
    """
    text = str(path)
    if "\x00" in text:
        raise InvalidInput(f"{key}: {text!r} contains a NUL character; give a plain file or folder path")
    root = data_root()
    p = Path(text).expanduser()
    try:
        resolved = (p if p.is_absolute() else (root or Path.cwd()) / p).resolve()
    except (OSError, RuntimeError) as e:  # e.g. a symbolic link loop
        raise InvalidInput(f"{key}: '{text}' cannot be resolved ({e})") from None
    if not any(resolved.is_relative_to(r) for r in data_roots()):
        raise _outside(key, text, resolved)
    return resolved


def _inside_root(file: Path, key: str = "data.path") -> None:
    """Refuse a file or folder inside the data that links to somewhere outside the data roots."""
    confine_path(file, key)


# ---- folder of images ------------------------------------------------------------------------
def _existing_dir(path: str | None, what: str) -> Path:
    if not path:
        raise InvalidInput(f"data.path: required for this source; point it at {what}")
    p = confine_path(path)
    if not p.exists():
        raise InvalidInput(f"data.path: '{p}' does not exist; point data.path at {what}")
    if not p.is_dir():
        raise InvalidInput(f"data.path: '{p}' is not a directory; point data.path at {what}")
    return p


def _read_image(file: Path, image_size: int | None, grayscale: bool) -> np.ndarray:
    """One image as uint8 (H, W) or (H, W, 3)."""

    try:
        with Image.open(file) as img:
            img = img.convert("L" if grayscale else "RGB")
            if image_size:
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(f"data.path: cannot read image '{file}' ({e}); remove or replace the file") from None


def read_folder(path: str | None, image_size: int | None, grayscale: bool) -> RawData:
    """One subfolder per class holding PNG/JPEG/BMP images; class names are the folder names."""
    what = "a directory with one subfolder of images per class"
    root = _existing_dir(path, what)
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise InvalidInput(f"data.path: '{root}' has no class subfolders; point data.path at {what}")
    if len(class_dirs) < 2:
        raise InvalidInput(f"data.path: '{root}' has only one class folder ('{class_dirs[0].name}'); need at least 2")
    xs, ys = [], []
    by_size: dict[tuple, list[Path]] = defaultdict(list)  # shape -> files, to explain a mismatch
    for label, d in enumerate(class_dirs):
        _inside_root(d)
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidInput(f"data.path: class folder '{d}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            _inside_root(f)
            arr = _read_image(f, image_size, grayscale)
            by_size[arr.shape].append(f)
            xs.append(arr)
            ys.append(label)
    if len(by_size) > 1:
        sizes = ", ".join(f"{s[1]}x{s[0]} ({len(fs)} images, e.g. '{fs[0]}')" for s, fs in by_size.items())
        raise InvalidInput(f"data.path: images differ in size: {sizes}; set data.image_size to resize them all")
    x = np.stack(xs)
    x = x[:, None] if grayscale else x.transpose(0, 3, 1, 2)  # (N,H,W) / (N,H,W,3) -> (N,C,H,W)
    return RawData(np.ascontiguousarray(x), np.asarray(ys, np.int64), tuple(d.name for d in class_dirs), "image")


# ---- CIFAR python batches --------------------------------------------------------------------
def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR batch may name: what numpy needs to rebuild an array."""
    try:
        from numpy._core import multiarray  # where it lives depends on the numpy version
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global (no code runs)."""

    def __init__(self, file, name: str, key: str = "data.path"):
        super().__init__(file, encoding="bytes")
        self.name, self.key = name, key
        self.allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise InvalidInput(
            f"{self.key}: '{self.name}' refers to '{module}.{name}', which a CIFAR batch never needs; "
            "refusing to load it (only numpy arrays, lists and dicts are allowed)"
        )


def load_restricted_pickle(file: Path, key: str = "data.path") -> Any:
    """Load a pickle with ``RestrictedUnpickler``; every failure is a ValueError naming the file (and
    ``key``, the config key that led to it)."""
    _inside_root(file, key)
    try:
        with open(file, "rb") as f:
            return RestrictedUnpickler(f, str(file), key).load()
    except ValueError as e:
        if str(e).startswith(f"{key}:"):  # RestrictedUnpickler's refusal says what it refused
            raise
        raise InvalidInput(f"{key}: '{file}' is not a readable CIFAR batch (ValueError: {e})") from None
    except Exception as e:  # truncated or not a pickle at all
        raise InvalidInput(f"{key}: '{file}' is not a readable CIFAR batch ({type(e).__name__}: {e})") from None


def _cifar_layout(root: Path, key: str) -> tuple[list[Path], bytes, Path, bytes]:
    """(batch files, label key, meta file, names key) for CIFAR-10 or CIFAR-100 in ``root``."""
    train = sorted(root.glob("data_batch_*"))
    if train:
        return [*train, root / "test_batch"], b"labels", root / "batches.meta", b"label_names"
    if (root / "train").is_file():
        return [root / "train", root / "test"], b"fine_labels", root / "meta", b"fine_label_names"
    raise InvalidInput(
        f"{key}: '{root}' holds no CIFAR batches; expected data_batch_1..5 and test_batch (CIFAR-10) "
        "or train and test (CIFAR-100), as in the python version of the dataset"
    )


def _as_text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def read_cifar(path: str | None) -> RawData:
    """CIFAR-10/100 in the python-batch format (``data.path``); all batches pooled (uint8, N,3,32,32)."""
    root = _existing_dir(path, "the CIFAR python batch folder (e.g. cifar-10-batches-py)")
    for sub in ("cifar-10-batches-py", "cifar-100-python"):  # accept the folder above it too
        if not any(root.glob("data_batch_*")) and (root / sub).is_dir():
            root = root / sub
    return read_cifar_folder(root)


def read_cifar_folder(root: Path, key: str = "data.path") -> RawData:
    """The CIFAR python batches in ``root`` (reached through config key ``key``), pooled."""
    files, label_key, meta, names_key = _cifar_layout(root, key)
    xs, ys = [], []
    for f in files:
        if not f.is_file():
            continue  # e.g. no test_batch: use what is there
        batch = load_restricted_pickle(f, key)
        data = batch.get(b"data") if isinstance(batch, dict) else None
        labels = batch.get(label_key) if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None:
            raise InvalidInput(
                f"{key}: '{f}' is not a CIFAR batch (needs b'data' rows of 3072 bytes and {label_key!r})"
            )
        if len(labels) != len(data):
            raise InvalidInput(f"{key}: '{f}' has {len(data)} images but {len(labels)} labels")
        xs.append(data.astype(np.uint8).reshape(-1, 3, 32, 32))  # rows are R,G,B planes of 32x32
        ys.append(np.asarray(labels, dtype=np.int64))
    y = np.concatenate(ys)
    names: tuple[str, ...] = tuple(str(i) for i in range(int(y.max()) + 1))
    if meta.is_file():
        m = load_restricted_pickle(meta, key)
        if isinstance(m, dict) and isinstance(m.get(names_key), list) and len(m[names_key]) > y.max():
            names = tuple(_as_text(n) for n in m[names_key])
    if y.min() < 0:
        raise InvalidInput(f"{key}: negative labels in the CIFAR batches of '{root}'")
    return RawData(np.concatenate(xs), y, names, "image")


# ---- CSV -------------------------------------------------------------------------------------
def read_csv(path: str | None, target: str | None) -> RawData:
    """A table with numeric feature columns and one class column (``data.target``)."""

    if not path:
        raise InvalidInput("data.path: required for source 'csv'; point it at a .csv file")
    p = confine_path(path)
    if not p.is_file():
        raise InvalidInput(f"data.path: CSV file '{p}' does not exist; point data.path at a .csv file")
    try:
        df = pd.read_csv(p)
    except Exception as e:  # empty file, bad quoting, binary junk
        raise InvalidInput(f"data.path: cannot read '{p}' as CSV ({type(e).__name__}: {e})") from None
    cols = ", ".join(map(str, df.columns))
    if not target:
        raise InvalidInput(f"data.target: required for source 'csv'; name the class column, one of: {cols}")
    if target not in df.columns:
        raise InvalidInput(f"data.target: no column '{target}' in '{p}'; columns are: {cols}")
    features = df.drop(columns=[target])
    if features.shape[1] == 0:
        raise InvalidInput(f"data.path: '{p}' has no feature columns besides the target '{target}'")
    for c in features.columns:
        col = features[c]
        if not pd.api.types.is_numeric_dtype(col):
            text_rows = np.flatnonzero((col.notna() & pd.to_numeric(col, errors="coerce").isna()).to_numpy())
            where = f"{col.iloc[text_rows[0]]!r} on file line {text_rows[0] + 2}" if len(text_rows) else "text"
            raise InvalidInput(
                f"data.path: column '{c}' of '{p}' is not numeric ({where}); "
                "remove it or encode it as numbers (e.g. one-hot)"
            )
        bad = ~np.isfinite(col.to_numpy(dtype=np.float64))
        if bad.any():
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])  # +2: header line, 1-based
            raise InvalidInput(
                f"data.path: column '{c}' of '{p}' has {int(bad.sum())} missing or infinite values "
                f"(file lines {rows}); fill or drop those rows"
            )
    y_raw = df[target]
    if y_raw.isna().any():
        raise InvalidInput(
            f"data.target: column '{target}' of '{p}' has {int(y_raw.isna().sum())} empty values; every row needs a class"
        )
    classes = sorted(y_raw.unique(), key=lambda v: (isinstance(v, str), v))
    if len(classes) > max(20, len(df) // 2):
        raise InvalidInput(
            f"data.target: column '{target}' has {len(classes)} distinct values in {len(df)} rows; "
            "it looks like a number to predict or an ID, but nasnav classifies: pick a class column"
        )
    index = {v: i for i, v in enumerate(classes)}
    y = y_raw.map(index).to_numpy(dtype=np.int64)
    return RawData(features.to_numpy(dtype=np.float32), y, tuple(str(v) for v in classes), "tabular")


RAW_INPUT = {
    "digits": "8x8 grey-level digit images, float array (N, 1, 8, 8), pixel values 0..16 divided by 16 "
    "(0..1), as in `sklearn.datasets.load_digits().images[:, None] / 16`",
    "mnist1d": "MNIST-1D sequences, float array (N, 1, 40), the values `mnist1d.data.make_dataset` gives "
    "(`x[:, None]`), unscaled",
    "folder": "images as float arrays (N, C, H, W), 8-bit pixel values divided by 255 (0..1), channels RGB "
    "(or 1 grey channel with data.grayscale), resized to the training size",
    "cifar": "CIFAR images as float arrays (N, 3, 32, 32), 8-bit RGB pixel values divided by 255 (0..1)",
    "cifar10": "CIFAR-10 images as float arrays (N, 3, 32, 32), 8-bit RGB pixel values divided by 255 (0..1)",
    "cifar100": "CIFAR-100 images as float arrays (N, 3, 32, 32), 8-bit RGB pixel values divided by 255 (0..1)",
    "fashion_mnist": "Fashion-MNIST images as float arrays (N, 1, 28, 28), 8-bit grey values divided by 255 (0..1)",
    "svhn": "SVHN images as float arrays (N, 3, 32, 32), 8-bit RGB pixel values divided by 255 (0..1)",
    "csv": "rows of the CSV's numeric feature columns, in file order with the target column removed, "
    "as a float array (N, F), unscaled",
}


def raw_input_description(data_cfg, spec) -> str:
    """What a raw input looks like (before ``preprocess``), for model.py and the model card."""
    text = RAW_INPUT.get(getattr(data_cfg, "source", ""), "inputs as the data source reads them")
    if getattr(data_cfg, "source", "") == "folder":
        text += f"; here {tuple(spec.shape)}"
    return text
