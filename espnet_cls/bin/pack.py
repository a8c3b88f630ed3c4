"""Stage 9: pack a trained model into one zip (ESPnet's ``espnet2.bin.pack cls`` options).

    python -m espnet_cls.bin.pack \\
        --classification_train_config exp/cls_X/config.yaml \\
        --classification_model_file exp/cls_X/valid.acc.best.pth \\
        --option exp/cls_stats_16k/train/feats_stats.npz --option exp/cls_X/RESULTS.md \\
        --option exp/cls_X/images --option data/token_list \\
        --outpath exp/cls_X/cls_X_valid.acc.best.zip

ESPnet's subcommand spelling (``python -m espnet_cls.bin.pack cls --…``) is accepted too.
See :mod:`espnet_cls.pack` for what the archive holds.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool
from espnet_cls.pack import pack


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classification_train_config", required=True, help="exp/cls_X/config.yaml")
    p.add_argument("--classification_model_file", required=True, help="a .pth state_dict (or .safetensors)")
    p.add_argument("--option", action="append", default=[], help="extra file or folder to include (repeatable)")
    p.add_argument("--outpath", required=True, help="the .zip to write")
    p.add_argument(
        "--include_metrics", type=str2bool, default=True, help="also pack <expdir>/cls_*/scoring/metrics.json as metrics/<set>.json"
    )
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` and write the archive; returns the exit status."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cls":  # espnet2.bin.pack's task subcommand
        argv = argv[1:]
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    meta = pack(
        args.classification_train_config,
        args.classification_model_file,
        args.outpath,
        options=args.option,
        include_metrics=args.include_metrics,
    )
    logging.getLogger(__name__).info("wrote %s (%d files)", args.outpath, len(meta["sha256"]) + 1)
    return 0


if __name__ == "__main__":
    run_main(main)
