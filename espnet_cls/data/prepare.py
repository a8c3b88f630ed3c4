"""Make a demo corpus and write its Kaldi data directories (behind ``local/data.sh``).

    python -m espnet_cls.data.prepare --corpus instruments --size default --seed 0 data

writes ``data/{train,valid,test}/{wav.scp,text,utt2spk,spk2utt}`` (sorted, C locale)
and the audio as 16-bit wav under ``data/audio/<corpus>/<set>/`` (or ``--audio_dir``);
``wav.scp`` holds absolute paths. Each directory is checked with
``utils/validate_data_dir.sh --no-feats`` when the repository has it.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool
from espnet_cls.data.common import SPLITS, Utt, reset_dir, write_splits
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")

DEMO_CORPORA = ("instruments", "instruments_mix", "lid")


def make_corpus(
    corpus: str, audio_dir: Path, size: str, seed: int, nj: int, fs: int = 16000,
    counts: Optional[Sequence[int]] = None, duration: Optional[float] = None, programs: str = "core",
) -> dict[str, list[Utt]]:  # fmt: skip
    """Generate ``corpus`` into ``audio_dir`` and return the utterances of each split.

    ``programs`` (instruments corpora): ``"core"`` (four programs per GM family) or ``"all"``.

    ``counts`` (train, valid, test; per class, or clips for ``instruments_mix``) and
    ``duration`` (seconds per clip) override the defaults of ``size``.
    """
    if corpus == "instruments":
        from espnet_cls.data.instruments import make_instruments

        return make_instruments(audio_dir, size, seed, nj, fs, counts, duration, programs)
    if corpus == "instruments_mix":
        from espnet_cls.data.instruments import make_instruments_mix

        return make_instruments_mix(audio_dir, size, seed, nj, fs, counts, duration, programs)
    if corpus == "lid":
        from espnet_cls.data.lid import make_lid

        return make_lid(audio_dir, size, seed, nj, fs, counts, duration)
    raise ValueError(f"unknown demo corpus {corpus!r}; choose from {', '.join(DEMO_CORPORA)}")


def default_counts(corpus: str, size: str) -> tuple[int, int, int]:
    """The (train, valid, test) counts that ``size`` gives ``corpus``."""
    if corpus == "lid":
        from espnet_cls.data.lid import SIZES as LID_SIZES

        return tuple(LID_SIZES[size][0])  # type: ignore[return-value]
    from espnet_cls.data.instruments import SIZES

    return tuple(SIZES[corpus][size][0])  # type: ignore[return-value]


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (ESPnet spellings)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--corpus", default="instruments", choices=DEMO_CORPORA)
    p.add_argument("--size", default="default", choices=("small", "default"), help="small: a few 1-s clips per class")
    p.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical audio")
    p.add_argument("--audio_dir", default=None, help="where audio goes (default: <datadir>/audio/<corpus>)")
    p.add_argument("--nj", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--num_train", type=int, default=None, help="override: training clips per class (per corpus for instruments_mix)")
    p.add_argument("--num_valid", type=int, default=None, help="override: validation clips per class")
    p.add_argument("--num_test", type=int, default=None, help="override: test clips per class")
    p.add_argument("--duration", type=float, default=None, help="override: seconds per clip")
    p.add_argument("--programs", default="core", choices=("core", "all"),
                   help="instruments corpora: 4 archetypal programs per GM family (core) or all 8 (harder)")
    p.add_argument("--fs", type=int, default=16000, help="sample rate of the written audio (Hz)")
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: generate the corpus, write and validate the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    counts = None
    overrides = (args.num_train, args.num_valid, args.num_test)
    if any(v is not None for v in overrides):
        counts = default_counts(args.corpus, args.size)
        counts = tuple(o if o is not None else c for o, c in zip(overrides, counts))
        if min(counts) < 1:
            raise DataError(f"--num_train/--num_valid/--num_test must be >= 1, got {counts}")
    if args.duration is not None and args.duration <= 0:
        raise DataError(f"--duration must be > 0, got {args.duration}")
    datadir = Path(args.datadir)
    audio_dir = Path(args.audio_dir) if args.audio_dir else datadir / "audio" / args.corpus
    audio_dir = reset_dir(audio_dir.resolve())
    for split in SPLITS:
        (audio_dir / split).mkdir()
    start = time.perf_counter()
    splits = make_corpus(args.corpus, audio_dir, args.size, args.seed, args.nj, args.fs, counts, args.duration, args.programs)
    n = sum(len(v) for v in splits.values())
    logger.info("generated %d clips of %s (size=%s, seed=%d) in %.1f s with nj=%d", n, args.corpus, args.size, args.seed, time.perf_counter() - start, args.nj)
    write_splits(datadir, splits, args.validate)
    return 0


if __name__ == "__main__":
    run_main(main)
