"""Shared pytest fixtures."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (where cls.sh lives)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shell_env() -> dict:
    """Environment for running the recipe's shell scripts from tests (C locale, utils/ on PATH)."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["PATH"] = f"{REPO_ROOT / 'utils'}:{REPO_ROOT / 'pyscripts' / 'utils'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
