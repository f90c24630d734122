"""The installable package: the wheel builds offline, installs into a fresh virtual environment, and its
`nasnav` command works from another folder: a preset validates by name, `nasnav app` answers its health check.

The fresh environment gets the dependencies from this interpreter's environment through a .pth line (after its
own site-packages, so the installed nasnav, not this checkout's, is the one imported): nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import venv
from pathlib import Path

import pytest

from bench.browser import Server

REPO = Path(__file__).resolve().parents[1]
# what the wheel is built from (pyproject.toml maps them into the package)
SOURCES = ("nasnav", "pages", "configs", ".streamlit", "app.py", "pyproject.toml", "README.md", "LICENSE")


def test_the_wheel_lists_every_subpackage():
    """pyproject.toml names the packages (the bundle's mapping rules out discovery): a new one must be added."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nasnav").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's bin folder, an unrelated working folder, an environment without this checkout on its path)."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w",
                            str(tmp / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("nasnav-*.whl")
    venv.create(tmp / "venv", with_pip=False)
    python = tmp / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp), "OMP_NUM_THREADS": "1",
           "NASNAV_RUNS": str(elsewhere / "runs")}
    return python.parent, elsewhere, env


def test_the_installed_command_validates_a_preset_from_another_folder(installed):
    bin_dir, elsewhere, env = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import nasnav.resources as r; print(r.bundle_root())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(bin_dir.parent)), where.stderr  # the installed copy, not the checkout
    res = subprocess.run([str(bin_dir / "nasnav"), "validate", "tiny"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "valid. 120 architectures in 3 stages" in res.stdout


def test_the_installed_app_starts_from_another_folder(installed):
    bin_dir, elsewhere, env = installed
    server = Server([str(bin_dir / "nasnav"), "app"], env, elsewhere / "app.log", wait=120, cwd=elsewhere)
    try:
        assert urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10).read() == b"ok"
        assert b"<html" in urllib.request.urlopen(server.url, timeout=10).read().lower()
    finally:
        server.stop()
    assert "Error" not in (elsewhere / "app.log").read_text()
    # the installed app.py finds its pages and presets: its home page renders without an exception
    script = ("import sys, nasnav.resources as r; from streamlit.testing.v1 import AppTest; "
              "at = AppTest.from_file(str(r.app_script()), default_timeout=120).run(); "
              "errors = [str(e.value) for e in at.exception]; print(errors, len(at.button)); "
              "sys.exit(1 if errors or not at.button else 0)")
    home = subprocess.run([str(bin_dir / "python"), "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert home.returncode == 0, home.stdout + home.stderr
