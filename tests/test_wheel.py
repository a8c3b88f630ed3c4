"""Packaging: ``pip wheel`` builds without setuptools warnings and ships every package and the LID texts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_package_and_its_resources(tmp_path):
    src_copy = tmp_path / "src"  # pip builds in the tree: build from a copy, not the checkout
    src_copy.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src_copy / name)
    shutil.copytree(REPO / "espnet_cls", src_copy / "espnet_cls", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src_copy)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "is absent from the `packages` configuration" not in p.stdout + p.stderr
    (whl,) = out.glob("espnet_cls-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    src = REPO / "espnet_cls"
    wanted = {f"espnet_cls/{f.relative_to(src).as_posix()}" for f in src.rglob("*")
              if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"}
    assert wanted <= names, sorted(wanted - names)
    assert "espnet_cls/data/resources/lid/en.txt" in names and "espnet_cls/contract.py" in names
