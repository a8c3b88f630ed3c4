"""Importer for ESC-50 as distributed (``meta/esc50.csv`` + ``audio/``).

    python -m espnet_cls.data.esc50 --esc50_root /db/ESC-50-master --fold 1 data

Five fold-wise setups: ``--fold K`` puts fold K in ``test``, fold ``--valid_fold``
(default: the next fold, K mod 5 + 1) in ``valid`` and the three others in
``train``. Labels are the ``category`` names (``dog``, ``chirping_birds``, …);
``--esc10 true`` keeps the ESC-10 subset. Utterance ids are the file names
without extension; clips listed but missing from ``audio/`` are skipped and
counted in one log line.

``--set_names espnet`` writes the data dirs of ESPnet's ``egs2/esc50/cls1`` recipe instead:
``train<K>`` (the four other folds) and ``val<K>`` (fold K, which that recipe also tests on), so
its ``run.sh`` settings (``--train_set train1 --valid_set val1 --test_sets val1``) apply as they
are. ``--labels espnet`` writes ESPnet's labels ``audio_class:<target>`` (the numeric class of
``esc50.csv``), which a model trained by ESPnet's recipe has in its token list.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool
from espnet_cls.data.common import SPLITS, Utt, sanitize_label, write_splits
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")

HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def read_meta(csv_path: Path) -> list[dict]:
    """Rows of ``esc50.csv`` as dicts with ``fold`` (int) and ``esc10`` (bool) parsed.

    Raises :class:`DataError` naming the file and line for a wrong header, a row with
    the wrong number of fields, a bad fold number or an empty file name or category.
    """
    try:
        f = open(csv_path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", csv_path) from None
    rows = []
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise DataError(f"expected the header {','.join(HEADER)}, got {','.join(header or [])!r}", csv_path, 1)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(HEADER):
                raise DataError(f"expected {len(HEADER)} fields, found {len(row)}", csv_path, line)
            rec = dict(zip(HEADER, (v.strip() for v in row)))
            try:
                rec["fold"] = int(rec["fold"])
            except ValueError:
                raise DataError(f"fold is not a number: {rec['fold']!r}", csv_path, line) from None
            if not 1 <= rec["fold"] <= 5:
                raise DataError(f"fold must be 1..5, got {rec['fold']}", csv_path, line)
            if not rec["filename"] or not rec["category"]:
                raise DataError("empty filename or category", csv_path, line)
            rec["esc10"] = rec["esc10"].lower() in ("true", "1")
            rec["line"] = line
            rows.append(rec)
    return rows


SET_NAMES = ("default", "espnet")
LABELS = ("category", "espnet")


def espnet_set_names(fold: int) -> tuple[str, str]:
    """ESPnet's esc50 cls1 data-dir names for test fold ``fold``: ``("train<K>", "val<K>")``."""
    return f"train{fold}", f"val{fold}"


def prepare_esc50(
    root: Path, fold: int, valid_fold: Optional[int] = None, esc10: bool = False,
    set_names: str = "default", labels: str = "category",
) -> dict[str, list[Utt]]:  # fmt: skip
    """Utterances of each data dir for test fold ``fold`` (1..5).

    ``set_names="default"``: ``train``/``valid``/``test`` (three folds / ``valid_fold`` / ``fold``);
    ``"espnet"``: ESPnet's ``train<K>`` (four folds) and ``val<K>`` (fold K); ``valid_fold`` must then
    be unset. ``labels``: ``"category"`` names or ESPnet's ``"audio_class:<target>"``.
    """
    if not 1 <= fold <= 5:
        raise DataError(f"--fold must be 1..5, got {fold}")
    if set_names not in SET_NAMES:
        raise DataError(f"--set_names must be one of {', '.join(SET_NAMES)}, got {set_names!r}")
    if labels not in LABELS:
        raise DataError(f"--labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if set_names == "espnet":
        if valid_fold is not None:
            raise DataError("--valid_fold does not apply with --set_names espnet (fold K is val<K>, as ESPnet)")
        train_name, val_name = espnet_set_names(fold)
        names: Sequence[str] = (train_name, val_name)
    else:
        valid_fold = valid_fold if valid_fold is not None else fold % 5 + 1
        if not 1 <= valid_fold <= 5 or valid_fold == fold:
            raise DataError(f"--valid_fold must be 1..5 and differ from --fold {fold}, got {valid_fold}")
        names = SPLITS
    csv_path = root / "meta" / "esc50.csv"
    audio = (root / "audio").resolve()
    out: dict[str, list[Utt]] = {s: [] for s in names}
    missing = 0
    for rec in read_meta(csv_path):
        if esc10 and not rec["esc10"]:
            continue
        path = audio / rec["filename"]
        if not path.is_file():
            missing += 1
            continue
        if set_names == "espnet":
            split = names[1] if rec["fold"] == fold else names[0]
        else:
            split = "test" if rec["fold"] == fold else "valid" if rec["fold"] == valid_fold else "train"
        uttid = os.path.splitext(rec["filename"])[0]
        label = f"audio_class:{rec['target']}" if labels == "espnet" else sanitize_label(rec["category"])
        out[split].append(Utt(uttid, str(path), (label,)))
    total = missing + sum(len(v) for v in out.values())
    if missing:
        logger.warning("ESC-50: %d of %d clips listed in %s are missing from %s; skipped", missing, total, csv_path, audio)
    logger.info("ESC-50 fold %d%s: %s", fold, f" (valid fold {valid_fold})" if valid_fold else "",
                ", ".join(f"{s}={len(v)}" for s, v in out.items()))
    return out


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--esc50_root", required=True, type=Path, help="directory holding meta/esc50.csv and audio/")
    p.add_argument("--fold", type=int, default=1, help="test fold (1..5)")
    p.add_argument("--valid_fold", type=int, default=None, help="validation fold (default: fold mod 5 + 1)")
    p.add_argument("--esc10", type=str2bool, default=False, help="keep only the ESC-10 subset")
    p.add_argument("--set_names", default="default", choices=SET_NAMES,
                   help="default: train/valid/test; espnet: ESPnet's train<K>/val<K> (val<K> = fold K)")
    p.add_argument("--labels", default="category", choices=LABELS,
                   help="category: the category names; espnet: ESPnet's audio_class:<target>")
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: import ESC-50 and write the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging()
    splits = prepare_esc50(args.esc50_root, args.fold, args.valid_fold, args.esc10, args.set_names, args.labels)
    write_splits(args.datadir, splits, args.validate)
    return 0


if __name__ == "__main__":
    run_main(main)
