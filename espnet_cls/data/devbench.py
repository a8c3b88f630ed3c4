"""Development-benchmark corpora: harder, fixed variants of the three demo corpora.

The demo corpora are too easy to tell a good recipe from a better one (``./run.sh`` reaches
~99 % on ``instruments``). These variants test what matters on audio a model has never
heard: instruments unseen in training, more overlap, unseen speakers, other channels.

``instruments_dev`` (multi-class, 10 GM families): all eight programs of every family are
used, split between the sets (:data:`espnet_cls.data.instruments.PROGRAM_SPLIT`: four for
train, two for valid, two for test), so valid and test are played by instruments never heard
in training; every clip goes through a random recording channel with 10-30 dB noise
(:func:`espnet_cls.data.common.degrade`).

``instruments_mix_dev`` (multi-label): two to four families per clip (30/40/30 %; ~5 %
noise-only ``<blank>`` clips), later parts 0 to -12 dB, programs split and channels as above.

``instruments_bank_dev`` / ``instruments_mix_bank_dev``: the same two tasks (all eight programs of each
family in every set) with the **SoundFont split between the sets**: train is played by ``pretty_midi``'s
TimGM6mb, valid by MuseScore General, test by FluidR3 (Debian's ``musescore-general-soundfont-small`` and
``fluid-soundfont-gm``; :data:`espnet_cls.data.instruments.SOUNDFONTS`), so valid and test are other
sampled recordings of the instruments heard in training; random channels and noise as above.

``lid_dev`` (multi-class, 10 languages): eSpeak NG voices disjoint between the sets (test
voices are unseen speakers, :data:`espnet_cls.data.lid.VARIANTS`), sentences disjoint, random
channel and 10-30 dB noise.

Sizes are fixed (:data:`DEV_CORPORA`) so that numbers from different days compare; the seed
changes the audio, and the same seed gives byte-identical files. ``bench/accuracy.py`` trains
configs on them::

    python -m espnet_cls.data.devbench --corpus lid_dev --seed 0 data_dev/lid_dev
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

logger = logging.getLogger("espnet_cls.data")

#: the ``*_bank_dev`` corpora: which SoundFont plays each set (disjoint: valid and test are other banks)
BANK_SPLIT = {"train": "timgm6mb", "valid": "musescore", "test": "fluidr3"}

#: what the two instrument tasks share: clips per set (per class / in all), 1-s clips, channels and noise
INSTRUMENTS_KW = {"counts": (50, 20, 30), "duration": 1.0, "degrade": True}
MIX_KW = {"counts": (500, 150, 200), "duration": 1.0, "degrade": True, "parts": (2, 3, 4), "parts_p": (0.3, 0.4, 0.3),
          "level_db": (-12.0, 0.0)}  # fmt: skip

#: name -> classification type, generator and its fixed arguments (counts: train/valid/test,
#: per class, or clips for instruments_mix_dev; 16 kHz; sized so that the default CNN trains
#: on one of them in a few minutes on two shared CPU cores)
DEV_CORPORA: dict[str, dict] = {
    # unseen programs: each set plays its own GM programs of every family
    "instruments_dev": {
        "type": "multi-class",
        "make": "instruments",
        "kwargs": {**INSTRUMENTS_KW, "program_split": True},
    },
    "instruments_mix_dev": {
        "type": "multi-label",
        "make": "instruments_mix",
        "kwargs": {**MIX_KW, "program_split": True},
    },
    # unseen banks: each set is played by its own SoundFont
    "instruments_bank_dev": {
        "type": "multi-class",
        "make": "instruments",
        "kwargs": {**INSTRUMENTS_KW, "soundfonts": BANK_SPLIT},
    },
    "instruments_mix_bank_dev": {
        "type": "multi-label",
        "make": "instruments_mix",
        "kwargs": {**MIX_KW, "soundfonts": BANK_SPLIT},
    },
    "lid_dev": {
        "type": "multi-class",
        "make": "lid",
        "kwargs": {"counts": (40, 15, 30), "duration": 2.0, "degrade": True},
    },
}


def make_dev_corpus(corpus: str, audio_dir: Path, seed: int, nj: int, small: bool = False) -> dict[str, list[Utt]]:
    """Generate dev corpus ``corpus`` into ``audio_dir``; returns the utterances of each split.

    ``small``: 2/1/1 clips per class (8/4/4 for the mixtures) of 1 s, for tests.
    """
    if corpus not in DEV_CORPORA:
        raise ValueError(f"unknown dev corpus {corpus!r}; choose from {', '.join(DEV_CORPORA)}")
    spec = DEV_CORPORA[corpus]
    kw = dict(spec["kwargs"])
    if small:
        kw["counts"] = (8, 4, 4) if spec["make"] == "instruments_mix" else (2, 1, 1)
        kw["duration"] = 1.0
    if spec["make"] == "lid":
        from espnet_cls.data.lid import make_lid

        return make_lid(audio_dir, "default", seed, nj, name=corpus, **kw)
    from espnet_cls.data.instruments import make_instruments, make_instruments_mix

    make = make_instruments if spec["make"] == "instruments" else make_instruments_mix
    return make(audio_dir, "default", seed, nj, programs="all", name=corpus, **kw)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--corpus", required=True, choices=sorted(DEV_CORPORA))
    p.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical audio")
    p.add_argument("--audio_dir", default=None, help="where audio goes (default: <datadir>/audio)")
    p.add_argument("--nj", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--small", type=str2bool, default=False, help="a few 1-s clips per class (tests)")
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: generate the corpus, write and validate the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    datadir = Path(args.datadir)
    audio_dir = reset_dir((Path(args.audio_dir) if args.audio_dir else datadir / "audio").resolve())
    for split in SPLITS:
        (audio_dir / split).mkdir()
    start = time.perf_counter()
    splits = make_dev_corpus(args.corpus, audio_dir, args.seed, args.nj, args.small)
    n = sum(len(v) for v in splits.values())
    logger.info("generated %d clips of %s (seed=%d) in %.1f s", n, args.corpus, args.seed, time.perf_counter() - start)
    write_splits(datadir, splits, args.validate)
    return 0


if __name__ == "__main__":
    run_main(main)
