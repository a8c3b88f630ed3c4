"""Strict reading of the Kaldi tables of a source data dir: every problem names file and line.

Used by stage 2 (validation of the source data dir, :mod:`espnet_cls.dump`) and stage 4
(the label check, :mod:`espnet_cls.tokens`). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from espnet_cls.fileio import DataError, iter_kv


@dataclass
class Table:
    """A validated Kaldi table of the source data dir: ``{key: (value, line)}`` in file order."""

    path: str
    rows: dict


def iter_table(path: str, allow_empty_value: bool = False):
    """Yield ``(key, value, line)`` of a Kaldi ``key value`` table, one line at a time, with
    :func:`read_table`'s checks of each line (not the duplicate check, which needs the keys):
    :func:`espnet_cls.fileio.iter_kv` refusing CR line ends."""
    return iter_kv(path, allow_empty_value, refuse_cr=True)


def read_table(path: str, allow_empty_value: bool = False, what: str = "id") -> Table:
    """Read a Kaldi ``key value`` table, refusing what Kaldi's tools would trip over.

    Each problem is a :class:`DataError` naming ``path`` and the line: bytes that are not
    UTF-8, a UTF-8 byte-order mark, a CR (Windows) line end, a blank line, a key without
    a value (unless ``allow_empty_value``) and a key seen before (naming its first line).
    """
    rows: dict = {}
    for key, value, no in iter_table(path, allow_empty_value):
        if key in rows:
            raise DataError(f"duplicate {what} {key!r} (first on line {rows[key][1]})", path, no)
        rows[key] = (value, no)
    return Table(path, rows)
