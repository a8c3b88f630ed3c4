"""Write an HTML report of an experiment, or a page comparing several (stage 8).

    python -m espnet_cls.bin.report exp/cls_X                  # -> exp/cls_X/report.html
    python -m espnet_cls.bin.report exp/cls_A exp/cls_B -o compare.html
    python -m espnet_cls.bin.report exp/cls_X --screenshot docs/report.png   # needs chromium

One self-contained file: the config summary, training curves (train vs valid, lr, from
train_history.json), per scored set the metrics, a sortable per-class table, the confusion
matrix (multi-class) or per-class AP chart (multi-label) and the most confident errors with
an audio player (the dumped clip by relative path, or embedded with --embed_audio true).
No network resources: open it from disk (file://) in any browser.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dirs", nargs="+", help="experiment directories (exp/cls_<tag>); several: a comparison page")
    p.add_argument("-o", "--output", type=str_or_none, default=None,
                   help="output file (default: EXP/report.html for one directory, compare.html for several)")
    p.add_argument("--root", type=str_or_none, default=None,
                   help="recipe directory that relative paths in metrics.json and wav.scp start from "
                        "(default: the current directory, then EXP/../..)")
    p.add_argument("--n_errors", type=int, default=10, help="worst errors shown per set (0: none)")
    p.add_argument("--embed_audio", type=str2bool, default=False,
                   help="embed the error clips as base64 (portable page) instead of linking them by relative path")
    p.add_argument("--screenshot", type=str_or_none, default=None,
                   help="also save a PNG of the page rendered by headless chromium here")
    p.add_argument("--screenshot_width", type=int, default=1280)
    p.add_argument("--screenshot_height", type=int, default=1500, help="viewport height; 0: the full page")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    from espnet_cls.report import write_comparison, write_report

    log = logging.getLogger("report")
    if len(args.exp_dirs) == 1:
        out = write_report(args.exp_dirs[0], args.output, root=args.root, n_errors=args.n_errors,
                           embed_audio=args.embed_audio)
    else:
        out = write_comparison(args.exp_dirs, args.output or "compare.html", root=args.root)
    log.info("Wrote %s", out)
    if args.screenshot:
        from espnet_cls.report.browser import screenshot

        screenshot(Path(out), Path(args.screenshot), width=args.screenshot_width, height=args.screenshot_height)
        log.info("Wrote %s", args.screenshot)
    return 0


if __name__ == "__main__":
    run_main(main)
