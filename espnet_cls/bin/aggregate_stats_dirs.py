"""Merge the per-job stats dirs of stage 5 (ESPnet's ``aggregate_stats_dirs``).

    python -m espnet_cls.bin.aggregate_stats_dirs --input_dir logdir/stats.1 --input_dir logdir/stats.2 \
        --output_dir exp/cls_stats_16k

Writes ``<output_dir>/{train,valid}/{speech_shape,label_shape,stats_keys,feats_stats.npz}``:
shapes concatenated and sorted by key, statistics summed.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_dir", action="append", required=True, help="a stats.N dir (repeat for each job)")
    p.add_argument("--output_dir", required=True, help="where to write the merged train/ and valid/ dirs")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Aggregate; returns the exit status."""
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    from espnet_cls.train.stats import aggregate_stats_dirs

    aggregate_stats_dirs(args.input_dir, args.output_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
