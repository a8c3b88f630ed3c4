"""Helpers for the bad-input catalogue (tests/test_robustness_*.py): run a worker in-process."""

from __future__ import annotations

import importlib
import io
import logging
import os
from pathlib import Path

import pytest

from espnet_cls.cli import run_main


def run_worker(name: str, argv: list, capsys) -> tuple[int, str]:
    """``python -m espnet_cls.bin.<name> argv`` in this process: ``(exit status, console text)``."""
    mod = importlib.import_module(f"espnet_cls.bin.{name}")
    # pytest's log capture holds the root logger's records: listen on the package logger too
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    pkg = logging.getLogger("espnet_cls")
    pkg.addHandler(handler)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        with pytest.raises(SystemExit) as ei:
            run_main(mod.main, [str(a) for a in argv])
    finally:
        pkg.removeHandler(handler)
        root.handlers[:] = saved[0]  # drop the worker's stderr handler (its stream is capsys's)
        root.setLevel(saved[1])
    out = capsys.readouterr()
    code = ei.value.code
    return (0 if code is None else int(code)), out.err + out.out + buf.getvalue()


def error_lines(text: str) -> list[str]:
    """The ERROR lines of a console text."""
    return [ln for ln in text.splitlines() if "ERROR" in ln]


def assert_one_clear_error(text: str, *needles: str) -> str:
    """Exactly one kind of error line, no traceback, containing every needle; returns it."""
    assert "Traceback" not in text, text
    errs = error_lines(text)
    assert errs, text
    last = errs[-1]
    for n in needles:
        assert n in last, (n, last)
    return last


def listing(d: Path) -> list[str]:
    """Every file under ``d`` (relative), sorted; [] when ``d`` does not exist."""
    if not d.exists():
        return []
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() or p.is_symlink())


def no_temp_files(d: Path) -> bool:
    """No temp file (``.*.tmp*``) left anywhere under ``d``."""
    return not [p for p in d.rglob("*") if p.name.startswith(".") and ".tmp" in p.name] if d.exists() else True


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def tmpfs(path: Path, size: str = "64k"):
    """Mount a tiny tmpfs at ``path`` (root only); returns an unmount callable or None."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None
    import subprocess

    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        return None

    def umount():
        subprocess.run(["umount", "-l", str(path)], capture_output=True)

    return umount
