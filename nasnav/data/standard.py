"""The field's standard image data sets: CIFAR-10, CIFAR-100, Fashion-MNIST, SVHN.

Stored under ``data.root`` (null: ``$NASNAV_DATA_ROOT``, else ``~/.cache/nasnav/data``) in the layout
torchvision uses, so a folder torchvision filled serves nasnav too and the other way round:
``cifar-10-batches-py/``, ``cifar-100-python/``, ``FashionMNIST/raw/*.gz``, ``train_32x32.mat`` and
``test_32x32.mat``. With ``data.download: true`` missing files are fetched from the upstream addresses
torchvision uses, checked against the same MD5 sums, written atomically (a temporary file, then a
rename) and archives extracted only when every member is a plain file or folder inside the target
(checked here, so on Python < 3.11.4 too; tarfile's ``data`` filter is applied as well where it exists).
``$NASNAV_DATA_MIRROR`` (an ``http(s)://`` or ``file://`` address) replaces the upstream hosts: each
file is fetched as ``<mirror>/<file name>`` (a lab's own mirror; the tests serve one on 127.0.0.1).

Why not torchvision's own dataset classes: the torchvision wheel on PyPI is built against CUDA torch;
beside the CPU torch of the development machines its import fails, and because torchmetrics imports
torchvision whenever it is installed, installing it breaks ``import lightning`` there. Its CIFAR
reader also unpickles freely; here the batches go through ``sources.RestrictedUnpickler``.

Like torchvision's classes, nasnav pools the upstream train and test files: ``data.val_fraction`` and
``data.test_fraction`` cut the seeded, stratified splits (``nasnav.data.splits``) out of the pool.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from nasnav.data import sources
from nasnav.errors import InvalidInput
from nasnav.progress import bar
from nasnav.store.process import host_name

log = logging.getLogger(__name__)

MIRROR_ENV = "NASNAV_DATA_MIRROR"
TIMEOUT_S = 60.0  # per network read: an unreachable host fails fast instead of hanging the job


@dataclass(frozen=True)
class Remote:
    """One upstream file: where it is fetched from, its name on disk and its MD5 sum."""

    url: str
    name: str
    md5: str


@dataclass(frozen=True)
class Standard:
    """A standard data set: its files, the folder an archive unpacks to, its class names."""

    title: str
    files: tuple[Remote, ...]
    subdir: str  # where the files lie under data.root ("" for the root itself)
    unpacks_to: str | None  # the folder a tar archive extracts to (None: the files are read as they are)
    classes: tuple[str, ...]  # CIFAR's are read from its meta file; these stand in the docs


_CIFAR = "https://www.cs.toronto.edu/~kriz/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"

DATASETS: dict[str, Standard] = {
    "cifar10": Standard(
        "CIFAR-10", (Remote(_CIFAR + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "", "cifar-10-batches-py",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "cifar100": Standard(
        "CIFAR-100", (Remote(_CIFAR + "cifar-100-python.tar.gz", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        "", "cifar-100-python", tuple(str(i) for i in range(100)),  # the batches' meta file names them
    ),
    "fashion_mnist": Standard(
        "Fashion-MNIST",
        tuple(Remote(_FASHION + n, n, m) for n, m in (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        )),
        "FashionMNIST/raw", None,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "svhn": Standard(
        "SVHN",
        (Remote(_SVHN + "train_32x32.mat", "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
         Remote(_SVHN + "test_32x32.mat", "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")),
        "", None, tuple(str(i) for i in range(10)),
    ),
}


def storage_root(root: str | None) -> Path:
    """The folder standard data sets are kept in: ``data.root`` (inside ``$NASNAV_DATA_ROOT`` when that is
    set), else ``$NASNAV_DATA_ROOT`` itself, else ``~/.cache/nasnav/data``."""
    if root:
        return sources.confine_path(root, "data.root")
    return sources.data_root() or sources.cache_dir() / "data"


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _url(remote: Remote) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    return f"{mirror}/{remote.name}" if mirror else remote.url


def _missing_message(source: str, ds: Standard, folder: Path, missing: list[Remote], why: str) -> str:
    files = "; ".join(f"{r.name} from {r.url} (MD5 {r.md5})" for r in missing)
    return (f"data.source: {source} ({ds.title}): {why}. Put these files into {folder}: {files} "
            f"(or set data.download: true on a machine with internet access; data.root chooses the folder, "
            f"${MIRROR_ENV} a mirror to fetch from)")


def fetch(remote: Remote, folder: Path, source: str, ds: Standard) -> Path:
    """Download one file into ``folder`` (atomically), checking its MD5 sum; InvalidInput when offline or
    when the bytes are not the published ones."""
    folder.mkdir(parents=True, exist_ok=True)
    url = _url(remote)
    dest = folder / remote.name
    tmp = folder / f".{remote.name}.{os.getpid()}@{host_name()}.part"
    log.info(f"downloading {url} to {dest}")
    h = hashlib.md5()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "nasnav"})
        with (urllib.request.urlopen(req, timeout=TIMEOUT_S) as r, open(tmp, "wb") as f,
              bar(int(r.headers.get("Content-Length") or 0) or None, remote.name, unit="B") as shown):
            while chunk := r.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
                shown.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:  # offline, refused, timed out, bad address
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise InvalidInput(_missing_message(source, ds, folder, [remote], f"cannot download {url} ({reason}); "
                                            "this machine seems to be offline")) from None
    if h.hexdigest() != remote.md5:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"data.download: {url} gave a file whose MD5 sum is {h.hexdigest()}, not the published "
                           f"{remote.md5}: it was not kept (a broken transfer or a changed file); try again, or "
                           f"put the right {remote.name} into {folder} by hand")
    os.replace(tmp, dest)
    return dest


def _unsafe(member: tarfile.TarInfo, folder: Path) -> str | None:
    """Why a member may not be unpacked into ``folder`` (None: a plain file or folder inside it)."""
    if not (member.isfile() or member.isdir()):
        return "a link or special file"  # the published archives hold none
    if os.path.isabs(member.name) or not (folder / member.name).resolve().is_relative_to(folder.resolve()):
        return "a path outside the folder"
    return None


def _extract(archive: Path, folder: Path) -> None:
    """Unpack a tar archive into ``folder``: regular files and folders only, nothing outside it. Every
    member is checked before anything is written; tarfile's ``data`` filter (Python >= 3.11.4) is applied
    on top where it exists, and without it no owner, mode or time is taken from the archive."""
    log.info(f"extracting {archive}")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                if why := _unsafe(m, folder):
                    raise InvalidInput(f"data.root: {archive} holds {why} ({m.name!r}); nothing was extracted: "
                                       "it is not the published archive, delete it and download it again")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, members=members, filter="data")
            else:  # Python < 3.11.4: no filters; the members were checked above
                for m in members:
                    tar.extract(m, folder, set_attrs=False)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InvalidInput(f"data.root: cannot extract {archive} ({type(e).__name__}: {e}); delete it and "
                           "download it again") from None


def ensure(source: str, root: str | None, download: bool) -> Path:
    """The folder holding ``source``'s files, downloading (and extracting) what is missing when allowed."""
    ds = DATASETS[source]
    base = storage_root(root)
    folder = base / ds.subdir if ds.subdir else base
    if ds.unpacks_to and (folder / ds.unpacks_to).is_dir():
        return folder / ds.unpacks_to  # extracted before (by nasnav, torchvision or by hand)
    missing = [r for r in ds.files if not _present(folder, r)]
    if missing and not download:
        raise InvalidInput(_missing_message(source, ds, folder, missing, "its files are not there"))
    for r in missing:
        fetch(r, folder, source, ds)
    if ds.unpacks_to:
        archive = folder / ds.files[0].name
        if md5sum(archive) != ds.files[0].md5:
            raise InvalidInput(f"data.root: {archive} is not the published file (MD5 sum differs from "
                               f"{ds.files[0].md5}); delete it and download it again (data.download: true)")
        _extract(archive, folder)
        if not (folder / ds.unpacks_to).is_dir():
            raise InvalidInput(f"data.root: {archive} did not unpack to {ds.unpacks_to}/; it is not the "
                               f"{ds.title} archive: delete it and download it again")
        return folder / ds.unpacks_to
    return folder


def _present(folder: Path, r: Remote) -> bool:
    """A file is there as downloaded, or (Fashion-MNIST) already unzipped the way torchvision leaves it."""
    return (folder / r.name).is_file() or (r.name.endswith(".gz") and (folder / r.name[:-3]).is_file())


# ---- readers ---------------------------------------------------------------------------------------
def _idx(folder: Path, name: str, dims: int) -> np.ndarray:
    """An IDX file (MNIST's format: a big-endian header, then uint8 values), gzipped or not."""
    path = folder / name if (folder / name).is_file() else folder / name[:-3]
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        magic = int.from_bytes(data[:4], "big")
        shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
        if magic != 0x0800 + dims or len(data) != 4 + 4 * dims + int(np.prod(shape)):
            raise ValueError("not an IDX file of unsigned bytes")
        return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    except (OSError, EOFError, ValueError) as e:
        raise InvalidInput(f"data.root: '{path}' is not a readable IDX file ({e}); delete it and download it "
                           "again (data.download: true)") from None


def _fashion(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    xs = [_idx(folder, f"{p}-images-idx3-ubyte.gz", 3) for p in ("train", "t10k")]
    ys = [_idx(folder, f"{p}-labels-idx1-ubyte.gz", 1) for p in ("train", "t10k")]
    return np.concatenate(xs)[:, None], np.concatenate(ys).astype(np.int64)  # (N, 28, 28) -> (N, 1, 28, 28)


def _svhn(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in ("train_32x32.mat", "test_32x32.mat"):
        path = folder / name
        try:
            mat = scipy.io.loadmat(path)  # MATLAB arrays; reading one runs no code
            x, y = np.asarray(mat["X"], np.uint8), np.asarray(mat["y"], np.int64).reshape(-1)
        except (OSError, ValueError, KeyError, TypeError, NotImplementedError) as e:
            raise InvalidInput(f"data.root: '{path}' is not a readable SVHN file ({type(e).__name__}: {e}); "
                               "delete it and download it again (data.download: true)") from None
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or len(y) != x.shape[3]:
            raise InvalidInput(f"data.root: '{path}' holds arrays of shape {x.shape} and {y.shape}, "
                               "not SVHN's 32x32x3xN images with N labels")
        xs.append(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
        ys.append(np.where(y == 10, 0, y))  # SVHN labels the digit 0 as 10
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def read_standard(source: str, root: str | None, download: bool) -> sources.RawData:
    """A standard data set as ``RawData`` (uint8 images N,C,H,W; upstream train and test files pooled)."""
    folder = ensure(source, root, download)
    ds = DATASETS[source]
    if source in ("cifar10", "cifar100"):
        return sources.read_cifar_folder(folder, "data.root")  # class names from the batches' meta file
    x, y = _fashion(folder) if source == "fashion_mnist" else _svhn(folder)
    if len(y) and (y.min() < 0 or y.max() >= len(ds.classes)):
        raise InvalidInput(f"data.root: labels of {ds.title} in {folder} lie outside 0..{len(ds.classes) - 1}")
    return sources.RawData(x, y, ds.classes, "image")
