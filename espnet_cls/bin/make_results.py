"""Write ``EXP/RESULTS.md`` (and ``EXP/images/``) from every ``EXP/cls_<set>/scoring/metrics.json``.

    python -m espnet_cls.bin.make_results exp/cls_X

The stage-8 counterpart of ESPnet's ``scripts/utils/show_cls_result.sh``: an environment
block (date, python, torch, espnet_cls, git hash, config), the metrics tables of all sets,
a confusion matrix (multi-class) or per-class AP chart (multi-label) per set, and the
per-class tables.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool
from espnet_cls.scoring import make_results


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dir", help="the experiment directory, e.g. exp/cls_X")
    p.add_argument("--images", type=str2bool, default=True, help="draw images/<set>_*.png (matplotlib)")
    p.add_argument("--per_class", type=str2bool, default=True, help="include the per-class tables")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    make_results(args.exp_dir, images=args.images, per_class=args.per_class)
    logging.getLogger("make_results").info("Wrote %s/RESULTS.md", args.exp_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
