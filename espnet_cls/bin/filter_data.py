"""Stage 3: drop utterances that are too short, too long or have empty text (train/valid dump dirs).

    python -m espnet_cls.bin.filter_data --fs 16k --min_wav_duration 0.1 [--max_wav_duration 12] dump/train

Filters every per-utterance file of the dir consistently, backs the originals up in
``<dir>/.filter_backup/`` and filters from there on a re-run (idempotent). Logs
``kept N of M (too short: a, too long: b, empty text: c)``. See espnet_cls.filtering.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str_or_none
from espnet_cls.contract import parse_fs
from espnet_cls.filtering import filter_data_dir


def _fs(value: str) -> int:
    try:
        return parse_fs(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seconds_or_none(value: str) -> Optional[float]:
    v = str_or_none(value)
    if v is None:
        return None
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number) or none, got {value!r}") from None
    if x < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {value!r}")
    return x


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Remove utterances shorter than --min_wav_duration or longer than --max_wav_duration "
        "seconds, or with empty text, from a dump dir (in place, originals backed up).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dir", help="dump dir with wav.scp, utt2num_samples, text, utt2spk (stage 2 output)")
    p.add_argument("--fs", type=_fs, required=True, help="sampling rate of the dumped audio: 16k, 16000, ...")
    p.add_argument("--min_wav_duration", type=_seconds_or_none, default=0.1, help="seconds; none: no lower bound")
    p.add_argument("--max_wav_duration", type=_seconds_or_none, default=None, help="seconds; none/empty: no upper bound")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Filter the dir; exit 1 (DataError) when its files are inconsistent or nothing is left."""
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    res = filter_data_dir(args.dir, args.fs, args.min_wav_duration or 0.0, args.max_wav_duration)
    logging.getLogger("espnet_cls").info("%s: %s", args.dir, res.summary())
    return 0


if __name__ == "__main__":
    run_main(main)
