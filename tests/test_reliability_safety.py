"""Safe loading and serving: no file a user hands in is ever unpickled freely, YAML is only read
with safe_load, uploads are limited, and on a shared server data paths stay inside
``$NASNAV_DATA_ROOT`` and run references inside the runs root."""

from __future__ import annotations

import ast
import io
import os
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nasnav import cli
from nasnav.config import load_config, preset_path
from nasnav.data import sources
from nasnav.store.io import read_yaml

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "nasnav").rglob("*.py"), REPO / "app.py", *(REPO / "pages").glob("*.py"), *(REPO / "bench").rglob("*.py")])


class Evil:
    """Runs ``touch marker`` when unpickled by a loader that allows code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---- static: every loader in the code base is a safe one -------------------------------------------
def _calls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_every_torch_load_is_weights_only():
    found = 0
    for path in SOURCES:
        for node, name in _calls(path):
            if name.endswith("torch.load"):
                found += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kw and isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True, \
                    f"{path}:{node.lineno}: torch.load without weights_only=True"
    assert found >= 3


def test_no_free_unpickling_and_only_safe_yaml():
    for path in SOURCES:
        text = path.read_text()
        for node, name in _calls(path):
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            assert name not in ("pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads", "dill.load",
                                "joblib.load", "eval", "exec"), f"{where}: {name}"
            assert name not in ("yaml.load", "yaml.full_load", "yaml.unsafe_load", "yaml.load_all"), f"{where}: {name}"
            if name.endswith("np.load") or name.endswith("numpy.load"):
                kw = {k.arg: k.value for k in node.keywords}
                assert "allow_pickle" in kw and ast.literal_eval(kw["allow_pickle"]) is False, f"{where}: np.load needs allow_pickle=False"
            if name.endswith("read_pickle") or name.endswith("pd.read_pickle"):
                pytest.fail(f"{where}: pandas.read_pickle unpickles code")
        if "pickle.Unpickler" in text:  # only subclasses that restrict find_class: CIFAR's, the published tables'
            assert path.name in ("sources.py", "table_pickle.py") and "def find_class" in text, path


def test_restricted_unpickler_allows_only_numpy_rebuilders():
    allowed = sources._numpy_globals()
    assert {m for m, _ in allowed} <= {"numpy", "numpy.core.multiarray", "numpy._core.multiarray"}
    assert {n for _, n in allowed} <= {"_reconstruct", "scalar", "ndarray", "dtype"}


# ---- dynamic: hostile pickles are refused and never run -------------------------------------------
def _evil_torch(path: Path, marker: Path, wrap=lambda e: {"state_dict": e}) -> None:
    torch.save(wrap(Evil(marker)), path)


@pytest.mark.parametrize("loader", ["supernet_ckpt", "lightning_ckpt", "final_weights", "cifar_batch", "cifar_meta"])
def test_code_in_a_pickle_is_never_run(loader, tmp_path):
    marker = tmp_path / "pwned"
    if loader == "supernet_ckpt":
        from nasnav.workflow.supernet import load_checkpoint

        _evil_torch(tmp_path / "supernet.ckpt", marker)
        with pytest.raises(ValueError, match=r"supernet\.ckpt: not a readable nasnav checkpoint \(it names Python code \(posix\.system\)"):
            load_checkpoint(tmp_path / "supernet.ckpt")
    elif loader == "lightning_ckpt":
        from nasnav.train.trainer import AtomicCheckpointIO

        _evil_torch(tmp_path / "last.ckpt", marker)
        with pytest.raises(ValueError, match=r"last\.ckpt: not a readable training checkpoint \(it names Python code"):
            AtomicCheckpointIO().load_checkpoint(tmp_path / "last.ckpt")
    elif loader == "final_weights":
        from nasnav.workflow.retrain import load_weights

        _evil_torch(tmp_path / "weights.pt", marker, wrap=lambda e: e)
        with pytest.raises(Exception):  # noqa: B017 - refused either way (the message: see the xfail in test_reliability_inputs)
            load_weights(tmp_path / "weights.pt")
    else:
        root = tmp_path / "cifar"
        root.mkdir()
        ok = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1]}
        (root / "data_batch_1").write_bytes(pickle.dumps(ok))
        (root / "test_batch").write_bytes(pickle.dumps(ok))
        name = "data_batch_1" if loader == "cifar_batch" else "batches.meta"
        (root / name).write_bytes(pickle.dumps({b"label_names": Evil(marker), b"data": Evil(marker)}))
        with pytest.raises(ValueError, match=rf"{name}' refers to 'posix\.system'.*refusing to load it"):
            sources.read_cifar(str(root))
    assert not marker.exists(), "a hostile pickle ran code"


def test_python_tags_in_yaml_are_refused_everywhere(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = f"data: !!python/object/apply:os.system ['touch {marker}']\n"
    (tmp_path / "c.yaml").write_text(evil)
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_yaml(tmp_path / "c.yaml")  # run files: config.yaml, space.yaml
    assert cli.main(["validate", str(tmp_path / "c.yaml")]) == 2
    assert not marker.exists()


# ---- uploads ------------------------------------------------------------------------------------------
def test_upload_size_is_limited_and_uploaders_take_yaml_only():
    conf = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    limit = conf["server"]["maxUploadSize"]  # megabytes; Streamlit refuses bigger uploads itself
    assert 0 < limit <= 50, limit
    uploaders = 0
    for path in [REPO / "app.py", *(REPO / "pages").glob("*.py"), *(REPO / "nasnav" / "ui").glob("*.py")]:
        for node, name in _calls(path):
            if name.endswith("file_uploader"):
                uploaders += 1
                kw = {k.arg: k.value for k in node.keywords}
                types = ast.literal_eval(kw["type"]) if "type" in kw else None
                assert types and set(types) <= {"yaml", "yml"}, f"{path}:{node.lineno}: uploader accepts {types}"
    assert uploaders >= 1


@pytest.fixture
def home(tmp_path, monkeypatch):
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    st_config.set_option("client.showErrorDetails", "full")
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("NASNAV_RUNS", str(runs))
    at = AppTest.from_file(str(REPO / "pages" / "home.py"), default_timeout=60)
    return at, runs


@pytest.mark.parametrize("name,content,match", [
    ("evil.yaml", b"data: !!python/object/apply:os.system ['touch {marker}']\n", "not valid YAML"),
    ("list.yaml", b"- a\n- b\n", "expected a mapping"),
    ("binary.yaml", bytes(range(256)), "not a UTF-8 text file"),
    ("typo.yaml", yaml.safe_dump({**read_yaml(preset_path("tiny")), "supernett": {}}).encode(), "supernett: unknown key"),
    ("zero.yaml", yaml.safe_dump({**read_yaml(preset_path("tiny")), "search": {"budget": 0}}).encode(),
     r"search.budget: 0 must be greater than 0"),
    ("stage.yaml", yaml.safe_dump({**read_yaml(preset_path("tiny")), "space": {"stages": [
        {"name": 'x"""\n__import__("pathlib").Path("{marker}").touch()\n"""', "candidates": ["conv3x3"]},
        {"name": "![i](http://evil.example/i.png)", "candidates": ["skip"]}]}}).encode(),
     # as st.error gets it: the bad name (and the key's brackets) escaped, so no image is loaded
     "space.stages\\[1\\].name: '!\\[i\\](http\\://evil.example/i.png)' is not a valid name"),
])
def test_hostile_uploaded_config_is_an_error_message(home, tmp_path, name, content, match):
    at, runs = home
    marker = tmp_path / "pwned"
    at.run()
    at.file_uploader(key="home_upload").set_value((name, content.replace(b"{marker}", str(marker).encode()), "application/x-yaml"))
    at.run()
    at.button(key="home_create_yaml").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert name in errors and match in errors, errors
    assert not any(runs.iterdir()), "a run was created from a bad upload"
    assert not marker.exists()


# ---- data root confinement ------------------------------------------------------------------------------
@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "sets").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("a,label\n1,x\n2,y\n")
    monkeypatch.setenv(sources.DATA_ROOT_ENV, str(root))
    return root


@pytest.fixture
def default_roots(tmp_path, monkeypatch):
    """No NASNAV_DATA_ROOT: the default roots, ./data of the working directory and nasnav's cache."""
    monkeypatch.delenv(sources.DATA_ROOT_ENV, raising=False)
    (tmp_path / "work" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("NASNAV_CACHE", str(tmp_path / "cache"))
    (tmp_path / "secret.csv").write_text("api_key_column,label\nhunter2,x\nhunter3,y\n")
    return tmp_path / "work" / "data", tmp_path / "cache"


@pytest.mark.parametrize("path,inside", [
    ("data/t.csv", True),  # relative: from the working directory, into ./data
    ("{work}/data/sets/t.csv", True),
    ("{cache}/data/cifar-10-batches-py", True),  # where standard data sets are downloaded to
    ("{tmp}/secret.csv", False),  # absolute outside
    ("../secret.csv", False),  # relative outside
    ("data/../../secret.csv", False),  # .. escape
    ("data/link/secret.csv", False),  # a symbolic link inside ./data pointing out of it
    ("/etc/passwd", False),
    ("~/.ssh/id_rsa", False),
])
def test_without_a_data_root_paths_are_confined_to_data_and_the_cache(default_roots, tmp_path, path, inside):
    here, cache = default_roots
    (here / "link").symlink_to(tmp_path, target_is_directory=True)
    text = path.format(work=tmp_path / "work", cache=cache, tmp=tmp_path)
    if inside:
        got = sources.confine_path(text)
        assert got.is_relative_to(here.resolve()) or got.is_relative_to(cache.resolve())
    else:
        with pytest.raises(ValueError) as e:
            sources.confine_path(text, "data.path")
        msg = str(e.value)
        assert msg.startswith(f"data.path: '{text}'") and f"outside the data roots {here.resolve()} and {cache.resolve()}" in msg
        assert "NASNAV_DATA_ROOT" in msg


def test_a_file_outside_the_roots_is_refused_before_it_is_read(default_roots, tmp_path, capsys):
    """The refusal names the key, the path and the roots, and nothing of the file (its columns, its rows)."""
    secret = tmp_path / "secret.csv"
    with pytest.raises(ValueError) as e:
        sources.read_csv(str(secret), "nope")
    assert "hunter2" not in str(e.value) and "api_key_column" not in str(e.value)
    raw = {**read_yaml(preset_path("tiny")), "data": {"source": "csv", "path": str(secret), "target": "nope"},
           "space": {"stages": [{"name": "h", "candidates": ["linear", "skip"]}]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert cli.main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"data.path: '{secret}' is outside the data roots" in err and "Traceback" not in err, err
    assert "api_key_column" not in err and "hunter" not in err, err


def test_a_download_target_outside_the_roots_is_refused(default_roots, tmp_path):
    from nasnav.data import standard

    with pytest.raises(ValueError, match=r"data\.root: '.*elsewhere' is outside the data roots"):
        standard.read_standard("svhn", str(tmp_path / "elsewhere"), download=True)
    assert not (tmp_path / "elsewhere").exists()


def test_opening_every_path_is_a_deliberate_setting(default_roots, tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_ROOT_ENV, "/")
    assert sources.confine_path(str(tmp_path / "secret.csv")) == (tmp_path / "secret.csv").resolve()


@pytest.mark.parametrize("path,inside", [
    ("sets/train.csv", True),  # relative: taken inside the root
    ("sets/../sets/train.csv", True),
    ("{root}/sets/train.csv", True),  # absolute inside
    ("../secret.csv", False),  # .. escape
    ("sets/../../secret.csv", False),
    ("{tmp}/secret.csv", False),  # absolute outside
    ("/etc/passwd", False),
    ("link/secret.csv", False),  # a symbolic link inside the root pointing out of it
    ("{root}", True),
])
def test_data_paths_are_confined_to_the_data_root(data_root, tmp_path, path, inside):
    (data_root / "link").symlink_to(tmp_path, target_is_directory=True)
    path = path.format(root=data_root, tmp=tmp_path)
    if inside:
        assert sources.confine_path(path).is_relative_to(data_root.resolve())
    else:
        with pytest.raises(ValueError, match=rf"data\.path: '.*' is outside the data root {data_root.resolve()} \(NASNAV_DATA_ROOT\)"):
            sources.confine_path(path)


def test_nul_byte_in_a_path_is_refused(data_root):
    with pytest.raises(ValueError, match="data.path: .* NUL character"):
        sources.confine_path("sets/a\x00.csv")


def test_confinement_applies_to_every_file_source(data_root, tmp_path, capsys):
    from PIL import Image

    outside = tmp_path / "outside"
    for c in ("a", "b"):
        (outside / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(outside / c / f"{i}.png")
    folder = data_root / "imgs"
    (folder / "a").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(folder / "a" / f"{i}.png")
    (folder / "b").symlink_to(outside / "b", target_is_directory=True)  # a class folder linked out of the root
    with pytest.raises(ValueError, match="outside the data root"):
        sources.read_folder("imgs", None, False)
    with pytest.raises(ValueError, match="outside the data root"):
        sources.read_folder(str(outside), None, False)
    with pytest.raises(ValueError, match="outside the data root"):
        sources.read_cifar("../outside")
    with pytest.raises(ValueError, match="outside the data root"):
        sources.read_csv("../secret.csv", "label")
    raw = yaml.safe_dump({**read_yaml(preset_path("tiny")), "data": {"source": "csv", "path": "../secret.csv", "target": "label"},
                          "space": {"stages": [{"name": "h", "candidates": ["linear", "skip"]}]}})
    (tmp_path / "c.yaml").write_text(raw)
    assert cli.main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "data.path: '../secret.csv' is outside the data root" in err and "NASNAV_DATA_ROOT" in err, err
    # inside the root, a relative path works
    (data_root / "sets" / "t.csv").write_text("a,b,label\n" + "".join(f"{i % 3},{i},{'xy'[i % 2]}\n" for i in range(40)))
    assert sources.read_csv("sets/t.csv", "label").x.shape == (40, 2)


def test_app_data_preview_refuses_a_path_outside_the_root(data_root, tmp_path, monkeypatch):
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    st_config.set_option("client.showErrorDetails", "full")
    monkeypatch.setenv("NASNAV_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "pages" / "1_search_space.py"), default_timeout=60).run()
    at.selectbox(key="data_source").set_value("csv").run()
    at.text_input(key="data_path").set_value(str(tmp_path / "secret.csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "data.path" in errors and "outside the data root" in errors, errors


# ---- run references in the app's URL ------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["../elsewhere", "{abs}"])
def test_url_cannot_open_a_run_outside_the_runs_root(home, tmp_path, ref):
    from nasnav.config import load_config as load
    from nasnav.workflow.runs import create_run

    at, runs = home
    other = create_run(load(preset_path("tiny")), tmp_path / "elsewhere")
    at.query_params["run"] = ref.format(abs=other.path)
    at.run()
    assert not at.exception
    opened = at.session_state["run_path"] if "run_path" in at.session_state else None
    assert opened is None or Path(opened).resolve() != other.path.resolve(), f"the URL opened {opened}"


def test_run_names_cannot_traverse():
    from nasnav.ui import state

    for bad in ("../x", "a/b", "/etc", ".hidden", "", "x" * 81, "a\x00b"):
        with pytest.raises(ValueError, match="run name"):
            state.check_run_name(bad)


def test_checkpoints_carry_plain_data_only(tmp_path):
    """What nasnav writes loads back with weights_only=True: nothing in it needs code."""
    from nasnav.config import config_from_dict
    from nasnav.data.splits import InputSpec
    from nasnav.train.modules import SupernetModule
    from nasnav.workflow.supernet import save_supernet

    cfg = config_from_dict(read_yaml(preset_path("tiny")), "tiny")
    space = cfg.search_space()
    module = SupernetModule(space.to_dict(), "image", 1, 10, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                                                             "weight_decay": 0.0, "schedule": "constant"})
    save_supernet(tmp_path / "s.ckpt", module, space, cfg, InputSpec("image", (1, 8, 8), 10, tuple("0123456789")), 1)
    buf = io.BytesIO((tmp_path / "s.ckpt").read_bytes())
    ckpt = torch.load(buf, weights_only=True)
    assert set(ckpt) >= {"state_dict", "space", "spec", "config"}


# ---- the app listens on 127.0.0.1 unless opened on purpose ---------------------------------------------------
def _listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* write them) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def _own_address() -> str | None:
    """This machine's address on its default route (a UDP 'connect' sends nothing), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
ANY = {"00000000", "0" * 32}  # 0.0.0.0, ::


def test_the_app_listens_on_loopback_unless_opened_on_purpose(tmp_path):
    import socket
    import sys

    from bench.browser import Server

    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    env = {k: v for k, v in os.environ.items() if k != "NASNAV_ADDRESS"}
    env["NASNAV_RUNS"] = str(tmp_path / "runs")
    cmd = [sys.executable, "-m", "nasnav.ui.launch"]  # what `make run` starts, with no address given
    closed = Server(cmd, env, tmp_path / "closed.log", wait=120, address=None)
    opened = Server(cmd, {**env, "NASNAV_ADDRESS": "0.0.0.0"}, tmp_path / "opened.log", wait=120, address=None)
    try:
        assert _listening(closed.port) == {LOOPBACK_V4}, _listening(closed.port)
        assert _listening(opened.port) & ANY, _listening(opened.port)  # the check sees an open server
        own = _own_address()
        if own is not None:  # from this machine's network address: refused by the closed one, answered by the other
            with pytest.raises(OSError):
                socket.create_connection((own, closed.port), timeout=5).close()
            socket.create_connection((own, opened.port), timeout=5).close()
    finally:
        closed.stop()
        opened.stop()


def test_launch_sets_the_address_unless_the_command_line_names_one(monkeypatch):
    from nasnav.ui import launch

    monkeypatch.delenv("NASNAV_ADDRESS", raising=False)
    assert launch.options(["--server.port", "8501"]) == ["--server.address", "127.0.0.1", "--server.port", "8501"]
    monkeypatch.setenv("NASNAV_ADDRESS", "0.0.0.0")
    assert launch.options([])[:2] == ["--server.address", "0.0.0.0"]
    assert launch.options(["--server.address=10.0.0.5"]) == ["--server.address=10.0.0.5"]
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"  # `streamlit run app.py` is closed too
