"""Importer for AudioSet clips kept on disk (multi-label).

    python -m espnet_cls.data.audioset --audioset_root /db/audioset data

Reads ``class_labels_indices.csv`` (``index,mid,display_name``) and segment lists
in the official format (comment lines starting with ``#``, then rows
``YTID, start_seconds, end_seconds, "mid1,mid2"``): by default
``balanced_train_segments.csv`` → ``train`` and ``eval_segments.csv`` → ``test``;
``valid`` is ``--valid_csv`` if given, else a seeded ``--valid_fraction`` of the
training list. Labels are display names with commas removed and spaces turned
into ``_`` (``"Male speech, man speaking"`` → ``Male_speech_man_speaking``).

Clips are looked up under ``--audio_dir`` (default ``<root>/audio``, searched
recursively for .wav/.flac/.ogg/.mp3) by file stem: ``YTID``, ``Y<YTID>``,
``<YTID>_<start>``, ``<YTID>_<start>_<end>`` (start/end as written in the csv, as
integers, or as milliseconds), or ``--name_format`` (a Python format string with
``{ytid}``, ``{start}``, ``{end}``, ``{start_f}``, ``{end_f}``). Missing clips are
skipped and counted in one log line per list. The training set also gets
``utt2weight`` (sum of inverse label frequencies) for balanced sampling.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.data.common import Utt, inverse_frequency_weights, item_rng, sanitize_label, write_splits
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")


def read_class_labels(path: Path) -> dict[str, str]:
    """``mid -> label`` from ``class_labels_indices.csv`` (labels sanitised, must be unique)."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None
    out: dict[str, str] = {}
    with f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:3] != ["index", "mid", "display_name"]:
            raise DataError(f"expected the header index,mid,display_name, got {','.join(header)!r}", path, 1)
        for row in reader:
            if not row:
                continue
            if len(row) != 3:
                raise DataError(f"expected 3 fields (index,mid,display_name), found {len(row)}", path, reader.line_num)
            mid, label = row[1].strip(), sanitize_label(row[2])
            if not mid or not label:
                raise DataError("empty mid or display_name", path, reader.line_num)
            if mid in out:
                raise DataError(f"duplicate mid {mid!r}", path, reader.line_num)
            if label in out.values():
                raise DataError(f"two classes are both named {label!r} after sanitising", path, reader.line_num)
            out[mid] = label
    return out


def read_segments(path: Path, mid2label: dict[str, str]) -> list[dict]:
    """Rows of an AudioSet segment csv: dicts with ytid, start, end (strings and floats), labels, line.

    Raises :class:`DataError` naming file and line for a row with fewer than four
    fields, a non-numeric time, or an unknown mid.
    """
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None
    rows = []
    with f:
        reader = csv.reader(f, skipinitialspace=True)
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 4:
                raise DataError(f"expected YTID, start_seconds, end_seconds, \"mids\"; found {len(row)} fields", path, line)
            ytid, start, end = (v.strip() for v in row[:3])
            try:
                start_f, end_f = float(start), float(end)
            except ValueError:
                raise DataError(f"start/end seconds are not numbers: {start!r}, {end!r}", path, line) from None
            if not ytid or any(c.isspace() for c in ytid):
                raise DataError(f"bad YTID {ytid!r}", path, line)
            mids = [m.strip() for m in ",".join(row[3:]).split(",") if m.strip()]
            labels = []
            for m in mids:
                if m not in mid2label:
                    raise DataError(f"unknown label id {m!r} (not in class_labels_indices.csv)", path, line)
                if mid2label[m] not in labels:
                    labels.append(mid2label[m])
            rows.append(dict(ytid=ytid, start=start, end=end, start_f=start_f, end_f=end_f, labels=labels, line=line))
    return rows


def index_audio(audio_dir: Path) -> dict[str, str]:
    """Map file stem -> absolute path for every audio file under ``audio_dir`` (first in sorted order wins)."""
    index: dict[str, str] = {}
    if not audio_dir.is_dir():
        raise DataError("audio directory not found", audio_dir)
    for dirpath, dirnames, filenames in os.walk(audio_dir):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in AUDIO_EXTS:
                index.setdefault(stem, os.path.abspath(os.path.join(dirpath, name)))
    return index


def candidate_stems(row: dict, name_format: Optional[str]) -> list[str]:
    """File stems under which the clip of ``row`` may have been saved."""
    if name_format:
        return [name_format.format(**row)]
    y = row["ytid"]
    out = [y, f"Y{y}"]
    for s, e in (
        (row["start"], row["end"]),
        (f"{row['start_f']:g}", f"{row['end_f']:g}"),
        (str(int(row["start_f"])), str(int(row["end_f"]))),
        (f"{row['start_f']:.1f}", f"{row['end_f']:.1f}"),
        (str(int(round(row["start_f"] * 1000))), str(int(round(row["end_f"] * 1000)))),
    ):
        out += [f"{y}_{s}", f"Y{y}_{s}", f"{y}_{s}_{e}", f"Y{y}_{s}_{e}", f"{y}_{s}-{e}", f"Y{y}_{s}-{e}"]
    return list(dict.fromkeys(out))


def rows_to_utts(rows: list[dict], index: dict[str, str], name_format: Optional[str], source: Path) -> list[Utt]:
    """Utterances of the rows whose clip exists; logs how many were missing."""
    utts, missing, seen = [], 0, set()
    for row in rows:
        path = next((index[s] for s in candidate_stems(row, name_format) if s in index), None)
        if path is None:
            missing += 1
            continue
        uttid = f"Y{row['ytid']}"
        if uttid in seen:
            raise DataError(f"YTID {row['ytid']!r} is listed twice", source, row["line"])
        seen.add(uttid)
        utts.append(Utt(uttid, path, tuple(row["labels"])))
    if missing:
        logger.warning("AudioSet %s: %d of %d clips not found under the audio directory; skipped", source.name, missing, len(rows))
    return utts


def prepare_audioset(
    root: Path,
    audio_dir: Optional[Path] = None,
    train_csv: str = "balanced_train_segments.csv",
    test_csv: str = "eval_segments.csv",
    valid_csv: Optional[str] = None,
    valid_fraction: float = 0.05,
    seed: int = 0,
    name_format: Optional[str] = None,
) -> dict[str, list[Utt]]:
    """Utterances of train/valid/test (csv names are relative to ``root`` unless absolute)."""
    mid2label = read_class_labels(root / "class_labels_indices.csv")
    index = index_audio(audio_dir if audio_dir is not None else root / "audio")
    out: dict[str, list[Utt]] = {}
    for split, name in (("train", train_csv), ("valid", valid_csv), ("test", test_csv)):
        if name is None:
            continue
        path = root / name
        out[split] = rows_to_utts(read_segments(path, mid2label), index, name_format, path)
    if "valid" not in out:
        train = sorted(out["train"], key=lambda u: u.uttid)
        rng = item_rng(seed, "audioset", "valid")
        order = rng.permutation(len(train))
        n_valid = max(1, int(round(len(train) * valid_fraction))) if len(train) > 1 else 0
        out["valid"] = [train[i] for i in order[:n_valid]]
        out["train"] = [train[i] for i in order[n_valid:]]
    return {s: out[s] for s in ("train", "valid", "test")}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datadir", help="output directory that receives train/, valid/ and test/")
    p.add_argument("--audioset_root", required=True, type=Path, help="directory with class_labels_indices.csv and the segment csvs")
    p.add_argument("--audio_dir", type=str_or_none, default=None, help="downloaded clips (default: <root>/audio)")
    p.add_argument("--train_csv", default="balanced_train_segments.csv")
    p.add_argument("--valid_csv", type=str_or_none, default=None, help="default: carve --valid_fraction from train")
    p.add_argument("--test_csv", default="eval_segments.csv")
    p.add_argument("--valid_fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name_format", type=str_or_none, default=None, help="clip file stem, e.g. '{ytid}_{start}'")
    p.add_argument("--write_utt2weight", type=str2bool, default=True, help="write train/utt2weight (inverse label frequency)")
    p.add_argument("--validate", type=str2bool, default=True, help="run utils/validate_data_dir.sh --no-feats")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: import AudioSet and write the data directories."""
    args = get_parser().parse_args(argv)
    setup_logging()
    splits = prepare_audioset(
        args.audioset_root, Path(args.audio_dir) if args.audio_dir else None, args.train_csv, args.test_csv,
        args.valid_csv, args.valid_fraction, args.seed, args.name_format,
    )  # fmt: skip
    weights = {"train": inverse_frequency_weights(splits["train"])} if args.write_utt2weight else None
    write_splits(args.datadir, splits, args.validate, weights)
    return 0


if __name__ == "__main__":
    run_main(main)
