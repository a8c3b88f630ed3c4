"""HTML experiment reports (stage 8): one self-contained page per experiment, or a comparison.

    from espnet_cls.report import write_report, write_comparison
    write_report("exp/cls_X")                      # -> exp/cls_X/report.html
    write_comparison(["exp/cls_A", "exp/cls_B"], "compare.html")

``data`` reads an experiment directory, ``charts`` draws the charts (matplotlib, the same
figures as the PNGs of ``images/``), ``page`` writes the HTML,
``browser`` drives a headless Chromium (tests and screenshots).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.fileio import PathLike, atomic_write
from espnet_cls.report.data import Experiment, load_experiment

logger = logging.getLogger(__name__)

__all__ = ["Experiment", "load_experiment", "write_report", "write_comparison", "EMBED_LIMIT_BYTES"]

EMBED_LIMIT_BYTES = 20 * 1024 * 1024  # embed_audio falls back to relative paths above this total


def _write_page(out: Path, html: str) -> None:
    """Write atomically, then give the page the permissions of a plain ``open()`` (umask), not
    ``atomic_write``'s 0600: a report is meant to be read by others (shared disks, web servers)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(html)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(out, 0o666 & ~mask)


def write_report(
    exp_dir: PathLike,
    output: Optional[PathLike] = None,
    root: Optional[PathLike] = None,
    n_errors: int = 10,
    embed_audio: bool = False,
) -> Path:
    """Write one experiment's report (default ``EXP/report.html``); return its path."""
    from espnet_cls.report.page import render_experiment

    exp = load_experiment(exp_dir, root=root, n_errors=n_errors)
    out = Path(output) if output is not None else Path(exp_dir) / "report.html"
    if embed_audio:
        total = sum(e.audio.stat().st_size for r in exp.sets for e in r.errors if e.audio is not None and e.audio.is_file())
        if total > EMBED_LIMIT_BYTES:
            logger.warning("the error clips take %.1f MB: linking them by relative path instead of embedding", total / 2**20)
            embed_audio = False
    _write_page(out, render_experiment(exp, out, embed_audio=embed_audio))
    return out


def write_comparison(exp_dirs: Sequence[PathLike], output: PathLike, root: Optional[PathLike] = None) -> Path:
    """Write a page comparing several experiments (metrics side by side, curves overlaid)."""
    from espnet_cls.report.page import render_comparison

    exps = [load_experiment(d, root=root, n_errors=0) for d in exp_dirs]
    out = Path(output)
    _write_page(out, render_comparison(exps, out))
    return out
