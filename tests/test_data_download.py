"""Standard data sets (CIFAR-10/100, Fashion-MNIST, SVHN): download, checksum, extraction, reading, and
the messages when the files are missing or the machine is offline. Never touches the internet: small
fake files in the upstream formats are served from 127.0.0.1 (``$NASNAV_DATA_MIRROR``), and the published
MD5 sums are swapped for the fakes' where a download is meant to succeed."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import io
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from nasnav.cli import main
from nasnav.config import load_config
from nasnav.data import standard
from nasnav.data.splits import load_splits
from nasnav.errors import InvalidInput

REPO = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)


# ---- fake upstream files ---------------------------------------------------------------------------
def _pickle_member(tar: tarfile.TarFile, name: str, obj) -> None:
    data = pickle.dumps(obj)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def fake_cifar(folder: Path, hundred: bool = False) -> str:
    """A small cifar-10-python.tar.gz (or cifar-100-python.tar.gz) in the python-batch layout."""
    name = "cifar-100-python" if hundred else "cifar-10-batches-py"
    archive = folder / ("cifar-100-python.tar.gz" if hundred else "cifar-10-python.tar.gz")
    key = b"fine_labels" if hundred else b"labels"
    k = 100 if hundred else 10
    with tarfile.open(archive, "w:gz") as tar:
        batches = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for b in batches:
            n = 2 * k if hundred else 20
            _pickle_member(tar, f"{name}/{b}", {b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
                                                 key: [i % k for i in range(n)]})
        meta = {b"fine_label_names": [f"c{i}".encode() for i in range(k)]} if hundred else {
            b"label_names": [f"n{i}".encode() for i in range(k)]}
        _pickle_member(tar, f"{name}/{'meta' if hundred else 'batches.meta'}", meta)
    return archive.name


def _idx(values: np.ndarray) -> bytes:
    head = (0x0800 + values.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in values.shape)
    return gzip.compress(head + values.astype(np.uint8).tobytes())


def fake_fashion(folder: Path) -> None:
    for part, n in (("train", 80), ("t10k", 40)):
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(_idx(RNG.integers(0, 256, (n, 28, 28))))
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(_idx(np.arange(n) % 10))


def fake_svhn(folder: Path) -> None:
    for name, n in (("train_32x32.mat", 30), ("test_32x32.mat", 20)):
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # SVHN writes the digit 0 as 10
        scipy.io.savemat(folder / name, {"X": RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": y})


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request lines in the test output
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A folder of fake upstream files served over HTTP on 127.0.0.1 for this module's tests."""
    folder = tmp_path_factory.mktemp("mirror")
    fake_cifar(folder)
    fake_cifar(folder, hundred=True)
    fake_fashion(folder)
    fake_svhn(folder)
    handler = lambda *a, **k: _Quiet(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def served(mirror, monkeypatch, tmp_path):
    """The mirror in use, the fakes' MD5 sums in place of the published ones, an empty data root."""
    folder, url = mirror
    monkeypatch.setenv(standard.MIRROR_ENV, url)
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp_path))  # data.root (tmp_path/data) lies inside it
    for source, ds in standard.DATASETS.items():
        files = tuple(dataclasses.replace(r, md5=standard.md5sum(folder / r.name)) for r in ds.files)
        monkeypatch.setitem(standard.DATASETS, source, dataclasses.replace(ds, files=files))
    return tmp_path / "data"


def data_cfg(source: str, root: Path, download: bool = True, **kw):
    cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.source={source}", f"data.root={root}",
                                                       f"data.download={str(download).lower()}", "data.max_samples=null"])
    return dataclasses.replace(cfg.data, **kw)


# ---- tests ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source,shape,n,classes", [
    ("cifar10", (3, 32, 32), 120, 10), ("cifar100", (3, 32, 32), 400, 100),
    ("fashion_mnist", (1, 28, 28), 120, 10), ("svhn", (3, 32, 32), 50, 10)])
def test_download_verify_store_and_read(served, source, shape, n, classes):
    raw = standard.read_standard(source, str(served), download=True)
    assert raw.x.shape == (n, *shape) and raw.x.dtype == np.uint8 and raw.kind == "image"
    assert len(raw.class_names) == classes and raw.y.min() >= 0 and raw.y.max() < classes
    ds = standard.DATASETS[source]
    folder = served / ds.subdir if ds.subdir else served
    assert all((folder / r.name).is_file() for r in ds.files)  # kept under the data root, torchvision's layout
    assert not list(served.rglob("*.part"))
    if source == "cifar10":
        assert raw.class_names[0] == "n0"  # names from the batches' meta file
    if source == "svhn":
        assert set(np.unique(raw.y)) == set(range(10))  # "10" read as the digit 0
    again = standard.read_standard(source, str(served), download=False)  # no second download needed
    assert np.array_equal(again.x, raw.x)


def test_standard_source_through_the_config_splits(served):
    splits = load_splits(data_cfg("fashion_mnist", served), seed=0)
    assert tuple(splits.spec.shape) == (1, 28, 28) and splits.spec.class_names[9] == "Ankle boot"
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 120


def test_a_wrong_checksum_keeps_nothing(served, monkeypatch):
    ds = standard.DATASETS["svhn"]
    bad = tuple(dataclasses.replace(r, md5="0" * 32) for r in ds.files)
    monkeypatch.setitem(standard.DATASETS, "svhn", dataclasses.replace(ds, files=bad))
    with pytest.raises(InvalidInput, match=r"MD5 sum is [0-9a-f]{32}, not the published 0{32}"):
        standard.read_standard("svhn", str(served), download=True)
    assert not served.exists() or not [p for p in served.rglob("*") if p.is_file()]


def test_a_published_checksum_refuses_a_changed_file(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv(standard.MIRROR_ENV, mirror[1])  # the fakes against the real sums
    with pytest.raises(InvalidInput, match="c58f30108f718f92721af3b95e74349a"):
        standard.read_standard("cifar10", str(tmp_path), download=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_offline_is_exit_2_naming_the_folder_and_files(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(standard.MIRROR_ENV, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(InvalidInput) as e:
        standard.read_standard("fashion_mnist", str(tmp_path), download=True)
    msg = str(e.value)
    assert "offline" in msg and str(tmp_path / "FashionMNIST" / "raw") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "fashion-mnist.s3-website" in msg  # the upstream address
    code = main(["validate", str(REPO / "configs" / "tiny.yaml"), "--set", "data.source=cifar10",
                 f"data.root={tmp_path}", "data.download=true"])
    err = capsys.readouterr().err
    assert code == 2 and "cifar-10-python.tar.gz" in err and "Traceback" not in err


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(InvalidInput, match=r"data.source: svhn .*not there.*Put these files into .*train_32x32.mat"
                                           r".*data.download: true"):
        standard.read_standard("svhn", str(tmp_path), download=False)


def test_a_folder_torchvision_filled_is_read_without_download(tmp_path):
    name = fake_cifar(tmp_path)
    with tarfile.open(tmp_path / name) as tar:
        tar.extractall(tmp_path, filter="data")
    (tmp_path / name).unlink()
    raw = standard.read_standard("cifar10", str(tmp_path), download=False)
    assert raw.x.shape == (120, 3, 32, 32)


def test_file_mirror_and_the_data_root(served, monkeypatch, mirror, tmp_path):
    monkeypatch.setenv(standard.MIRROR_ENV, mirror[0].as_uri())  # a file:// mirror works too
    monkeypatch.setenv("NASNAV_DATA_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    raw = standard.read_standard("svhn", None, download=True)  # data.root unset: the data root itself
    assert raw.x.shape == (50, 3, 32, 32) and (tmp_path / "root" / "train_32x32.mat").is_file()
    with pytest.raises(InvalidInput, match="data.root: .* outside the data root"):
        standard.read_standard("svhn", str(tmp_path / "elsewhere"), download=True)


# ---- unpacking an archive: checked member by member, with or without tarfile's filters ---------------------
@pytest.fixture(params=["filters", "python<3.11.4"])
def tar_module(request, monkeypatch):
    """tarfile as it is, or as Python before 3.11.4 has it: no ``filter`` argument and no ``data_filter``."""
    if request.param != "filters":
        monkeypatch.delattr(tarfile, "data_filter")
        every, one = tarfile.TarFile.extractall, tarfile.TarFile.extract
        monkeypatch.setattr(tarfile.TarFile, "extractall", lambda self, path=".", members=None, *, numeric_owner=False:
                            every(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted"))
        monkeypatch.setattr(tarfile.TarFile, "extract", lambda self, member, path="", set_attrs=True, *,
                            numeric_owner=False: one(self, member, path, set_attrs, numeric_owner=numeric_owner,
                                                     filter="fully_trusted"))
    return request.param


def _archive(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return m


def test_a_published_layout_unpacks_with_or_without_filters(tar_module, tmp_path):
    (tmp_path / "into").mkdir()
    standard._extract(tmp_path / fake_cifar(tmp_path), tmp_path / "into")
    assert (tmp_path / "into" / "cifar-10-batches-py" / "data_batch_1").is_file()


@pytest.mark.parametrize("member", [
    _member("../evil.txt"), _member("/tmp/nasnav-evil-abs.txt"), _member("ok/../../evil.txt"),
    _member("link", tarfile.SYMTYPE, "/etc"), _member("hard", tarfile.LNKTYPE, "/etc/passwd"),
    _member("dev", tarfile.CHRTYPE),
], ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "device"])
def test_an_archive_reaching_out_of_its_folder_is_refused(tar_module, tmp_path, member):
    into = tmp_path / "into"
    into.mkdir()
    archive = _archive(tmp_path / "bad.tar", _member("fine.txt"), member)
    with pytest.raises(InvalidInput, match=r"data\.root: .*bad\.tar"):
        standard._extract(archive, into)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/nasnav-evil-abs.txt").exists()
    assert not (into / "link").exists() and not (into / "hard").exists()
