"""Reading and writing Kaldi-style text files, with errors that name file and line.

Kaldi "two-column" files (``wav.scp``, ``text``, ``utt2spk``, ``utt2num_samples`` …)
hold one ``key value`` pair per line, separated by the first run of whitespace.
Every reader here reports a problem as :class:`DataError`, whose message reads
``path:line: what is wrong``; entry points turn it into one log line and exit 1
(see :func:`espnet_cls.cli.run_main`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

from espnet_cls.contract import Located

PathLike = Union[str, "os.PathLike[str]"]


class DataError(Located, Exception):
    """Bad input data: carries the file and (1-based) line it was found in (:class:`espnet_cls.contract.Located`)."""


def iter_kv(path: PathLike, allow_empty_value: bool = False, refuse_cr: bool = False) -> Iterator[tuple[str, str, int]]:
    """Yield ``(key, value, lineno)`` for each line ``key value…`` of a Kaldi text file.

    The value is the rest of the line after the first whitespace run, stripped.
    Raises :class:`DataError` for a missing file, a blank line, or a line without a
    value (unless ``allow_empty_value``; e.g. an unlabeled ``text`` line); with ``refuse_cr``
    also a CR (Windows) line end, which is otherwise stripped.
    """
    path = str(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None
    with f:
        for lineno, braw in enumerate(f, 1):
            try:
                raw = braw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not UTF-8: byte 0x{braw[e.start]:02x} at column {e.start + 1}", path, lineno) from None
            if lineno == 1 and raw.startswith("\ufeff"):
                raise DataError("starts with a UTF-8 byte-order mark (BOM); save the file without it", path, 1)
            line = raw.rstrip("\n")
            if line.endswith("\r"):
                if refuse_cr:
                    raise DataError("line ends with CR (a Windows line end); convert the file with dos2unix", path, lineno)
                line = line.rstrip("\r")
            parts = line.strip().split(maxsplit=1)
            if not parts:
                raise DataError("empty line", path, lineno)
            if len(parts) == 1:
                if not allow_empty_value:
                    raise DataError(f"line has a key ({parts[0]!r}) but no value", path, lineno)
                parts.append("")
            yield parts[0], parts[1].strip(), lineno


def read_kv(path: PathLike, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a Kaldi two-column file into an insertion-ordered dict.

    A key that occurs twice is a :class:`DataError` naming the second line.
    """
    out: dict[str, str] = {}
    for key, value, lineno in iter_kv(path, allow_empty_value):
        if key in out:
            raise DataError(f"duplicate key {key!r}", path, lineno)
        out[key] = value
    return out


def read_lines(path: PathLike) -> list[str]:
    """Read a one-item-per-line file (e.g. ``token_list``), without newlines."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success rename it onto ``path``.

    If the block raises, the temp file is removed and ``path`` is untouched, so a
    failure never leaves a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if e.filename is None:  # a failed write (e.g. disk full) names no file: name the output
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_kv(path: PathLike, items: Iterable[tuple[str, str]], sort: bool = True) -> None:
    """Atomically write ``key value`` lines; sorted by key (C locale order) by default."""
    items = list(items)
    if sort:
        items.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_write(path) as f:
        for k, v in items:
            f.write(f"{k} {v}\n" if v != "" else f"{k}\n")
