"""Importer for a csv/tsv list of clips: ``path,label[;label…][,split]`` (multi-label or multi-class).

    python -m espnet_cls.data.csvlist --csv /db/list.csv data

The first line is a header naming the columns: ``path`` and ``label`` (or
``labels``) are required, ``split`` (train/valid/test) and ``id`` (utterance id)
are optional; other columns are ignored. A ``.tsv`` file is tab-separated, anything
else comma-separated (``--delimiter`` overrides). Several labels are separated by
``;``; an empty label field means "no label" (``<blank>``). Relative paths are
relative to ``--audio_root`` (default: the csv's folder). Without a split column
the clips are split by ``--seed`` (stratified by first label). Listed files that do
not exist are skipped and counted in one log line; ``--write_utt2weight true``
adds inverse-label-frequency weights for the training set.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.data.common import (
    BLANK,
    SPLITS,
    Utt,
    inverse_frequency_weights,
    sanitize_id,
    sanitize_label,
    stratified_split,
    write_splits,
)
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")


def read_list(csv_path: Path, audio_root: Optional[Path] = None, delimiter: Optional[str] = None) -> tuple[list[tuple[Utt, Optional[str]]], int]:
    """Rows of the list as ``(Utt, split or None)``, and the number of rows whose file is missing.

    Raises :class:`DataError` naming file and line for a header without ``path`` /
    ``label``, a row with a different number of fields than the header, an empty
    path, an unknown split name, or a duplicate utterance id.
    """
    if delimiter is None:
        delimiter = "\t" if csv_path.suffix.lower() == ".tsv" else ","
    base = (audio_root if audio_root is not None else csv_path.parent).resolve()
    try:
        f = open(csv_path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", csv_path) from None
    out: list[tuple[Utt, Optional[str]]] = []
    ids: dict[str, int] = {}
    missing = 0
    with f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader, [])]
        label_col = "label" if "label" in header else "labels"
        if "path" not in header or label_col not in header:
            raise DataError(f"the header must name the columns 'path' and 'label', got {header!r}", csv_path, 1)
        col = {name: header.index(name) for name in header}
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(f"expected {len(header)} fields ({delimiter!r}-separated), found {len(row)}", csv_path, line)
            path = row[col["path"]].strip()
            if not path:
                raise DataError("empty path", csv_path, line)
            labels = tuple(dict.fromkeys(sanitize_label(x) for x in row[col[label_col]].split(";") if x.strip()))
            labels = tuple(lab for lab in labels if lab != BLANK)
            split = row[col["split"]].strip().lower() if "split" in col else None
            if split is not None and split not in SPLITS:
                raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}", csv_path, line)
            if "id" in col and row[col["id"]].strip():
                uttid = sanitize_id(row[col["id"]].strip())
            else:
                uttid = sanitize_id(os.path.splitext(path)[0].replace("/", "-").replace("\\", "-"))
            if uttid in ids:
                raise DataError(f"utterance id {uttid!r} already used on line {ids[uttid]}", csv_path, line)
            ids[uttid] = line
            full = Path(path) if os.path.isabs(path) else base / path
            if not full.is_file():
                missing += 1
                continue
            out.append((Utt(uttid, str(full.resolve()), labels), split))
    return out, missing


def prepare_csvlist(
    csv_path: Path,
    audio_root: Optional[Path] = None,
    delimiter: Optional[str] = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, list[Utt]]:
    """Utterances of train/valid/test from a csv/tsv list."""
    rows, missing = read_list(csv_path, audio_root, delimiter)
    if missing:
        logger.warning("%s: %d of %d listed files not found; skipped", csv_path, missing, missing + len(rows))
    if not rows:
        raise DataError("no usable rows", csv_path)
    with_split = [s is not None for _, s in rows]
    if all(with_split):
        return {s: [u for u, sp in rows if sp == s] for s in SPLITS}
    by_id = {u.uttid: u for u, _ in rows}
    parts = stratified_split([(u.uttid, u.labels[0] if u.labels else BLANK) for u, _ in rows], valid_fraction, test_fraction, seed)
    return {s: [by_id[k] for k in parts[s]] for s in SPLITS}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--csv", required=True, type=Path, help="csv/tsv with a header: path,label[,split][,id]")
    p.add_argument("--audio_root", type=str_or_none, default=None, help="base of relative paths (default: the csv's folder)")
    p.add_argument("--delimiter", type=str_or_none, default=None, help="field separator (default: tab for .tsv, else comma)")
    p.add_argument("--valid_fraction", type=float, default=0.1)
    p.add_argument("--test_fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write_utt2weight", type=str2bool, default=False, help="write train/utt2weight (inverse label frequency)")
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: import the list and write the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging()
    delim = {"tab": "\t", "\\t": "\t"}.get(args.delimiter, args.delimiter) if args.delimiter else None
    splits = prepare_csvlist(
        args.csv, Path(args.audio_root) if args.audio_root else None, delim, args.valid_fraction, args.test_fraction, args.seed
    )
    weights = {"train": inverse_frequency_weights(splits["train"])} if args.write_utt2weight else None
    write_splits(args.datadir, splits, args.validate, weights)
    return 0


if __name__ == "__main__":
    run_main(main)
