"""Strict reading of the Kaldi tables of a source data dir: every problem names file and line.

Used by stage 2 (validation of the source data dir, :mod:`espnet_cls.dump`) and stage 4
(the label check, :mod:`espnet_cls.tokens`). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from espnet_cls.fileio import DataError


@dataclass
class Table:
    """A validated Kaldi table of the source data dir: ``{key: (value, line)}`` in file order."""

    path: str
    rows: dict


def iter_table(path: str, allow_empty_value: bool = False):
    """Yield ``(key, value, line)`` of a Kaldi ``key value`` table, one line at a time, with
    :func:`read_table`'s checks of each line (not the duplicate check, which needs the keys)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None
    with f:
        for no, raw in enumerate(f, 1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raise DataError("starts with a UTF-8 byte-order mark (BOM); save the file without it", path, 1)
            if raw.endswith(b"\r"):
                raise DataError("line ends with CR (a Windows line end); convert the file with dos2unix", path, no)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1}", path, no) from None
            parts = line.strip().split(maxsplit=1)
            if not parts:
                raise DataError("empty line", path, no)
            if len(parts) == 1:
                if not allow_empty_value:
                    raise DataError(f"line has a key ({parts[0]!r}) but no value", path, no)
                parts.append("")
            yield parts[0], parts[1].strip(), no


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
