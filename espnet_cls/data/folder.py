"""Importer for a folder-per-class layout: ``root/<label>/**/*.{wav,flac}`` (multi-class).

    python -m espnet_cls.data.folder --folder_root /db/mysounds data

If ``root`` holds ``train/``, ``valid/`` or ``test/`` sub-folders, each of them is
read as ``<split>/<label>/…``; otherwise every class is split by ``--seed`` into
train/valid/test with ``--valid_fraction`` and ``--test_fraction`` (stratified).
Labels are the folder names (spaces → ``_``, commas removed); utterance ids are
``<label>-<relative path without extension>`` made safe.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool
from espnet_cls.data.common import SPLITS, Utt, sanitize_id, sanitize_label, stratified_split, write_splits
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")

EXTS = (".wav", ".flac")


def scan_classes(root: Path) -> list[Utt]:
    """One :class:`Utt` per audio file of ``root/<label>/…`` (sorted; empty class folders are logged)."""
    if not root.is_dir():
        raise DataError("folder not found", root)
    utts: list[Utt] = []
    ids: dict[str, str] = {}
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        label = sanitize_label(cls_dir.name)
        files = []
        for dirpath, dirnames, filenames in os.walk(cls_dir):
            dirnames.sort()
            files += [Path(dirpath) / f for f in sorted(filenames) if os.path.splitext(f)[1].lower() in EXTS]
        if not files:
            logger.warning("class folder %s has no .wav/.flac files; skipped", cls_dir)
            continue
        for f in files:
            rel = f.relative_to(cls_dir).with_suffix("")
            uttid = f"{sanitize_id(label)}-{sanitize_id(str(rel).replace(os.sep, '-'))}"
            if uttid in ids:
                raise DataError(f"files {ids[uttid]} and {f} give the same utterance id {uttid!r}", f)
            ids[uttid] = str(f)
            utts.append(Utt(uttid, str(f.resolve()), (label,)))
    if not utts:
        raise DataError("no class folders with .wav/.flac files", root)
    return utts


def prepare_folder(root: Path, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Utt]]:
    """Utterances of train/valid/test from a folder-per-class tree."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present:
        missing = [s for s in SPLITS if s not in present]
        if missing:
            raise DataError(f"has split folders {present} but not {missing}", root)
        return {s: scan_classes(root / s) for s in SPLITS}
    utts = scan_classes(root)
    by_id = {u.uttid: u for u in utts}
    parts = stratified_split([(u.uttid, u.labels[0]) for u in utts], valid_fraction, test_fraction, seed)
    return {s: [by_id[k] for k in parts[s]] for s in SPLITS}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--folder_root", required=True, type=Path, help="root/<label>/*.wav (or root/<split>/<label>/…)")
    p.add_argument("--valid_fraction", type=float, default=0.1)
    p.add_argument("--test_fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: import the folder tree and write the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging()
    write_splits(args.datadir, prepare_folder(args.folder_root, args.valid_fraction, args.test_fraction, args.seed), args.validate)
    return 0


if __name__ == "__main__":
    run_main(main)
