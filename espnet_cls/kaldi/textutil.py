"""The text rules Kaldi's shell scripts inherit from awk, sort, grep and perl, written out in Python.

Kaldi's data-dir scripts decide with ``awk '{print $1}'``, ``sort -C``, ``grep`` and perl's ``split``; each has
its own idea of a "field" and of a "number".  The tools in this package reproduce those decisions, so they accept
and reject the same files.  Standard library only.

- awk (mawk, the default awk of Debian/Ubuntu): fields are separated by runs of space, tab or newline -- a CR
  stays inside the last field (``"u1 s1\\r"`` has ``$2 == "s1\\r"``).  A comparison is numeric only when both
  sides look like numbers ("strnum"); otherwise the two are compared as strings (bytes, LC_ALL=C).
- perl ``split(" ", $_)``: runs of any ASCII white space (space, tab, CR, LF, VT, FF) -- ``bytes.split()``.
- sort (GNU, LC_ALL=C): a field is its leading blanks (space, tab) plus the non-blanks after them; ``-k2``
  starts at the blanks after field 1.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Union

_AWK_SPLIT = re.compile(rb"[ \t\n]+")
_NUM = re.compile(rb"[ \t\n]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)[ \t\n]*")


def awk_fields(line: bytes) -> List[bytes]:
    """awk's ``$1..$NF`` of a line (default FS)."""
    return [f for f in _AWK_SPLIT.split(line) if f]


def awk_key(line: bytes) -> bytes:
    """awk's ``$1`` (b"" for a blank line)."""
    f = awk_fields(line)
    return f[0] if f else b""


def perl_fields(line: bytes) -> List[bytes]:
    """perl's ``split(" ", $_)``."""
    return line.split()


def perl_key(line: bytes) -> Optional[bytes]:
    """perl's ``m/\\s*(\\S+)\\s*/`` first field, or None for a blank line."""
    f = line.split(None, 1)
    return f[0] if f else None


def awk_number(s: bytes) -> Optional[float]:
    """The value of a field that awk treats as a number (strnum), else None."""
    if not _NUM.fullmatch(s):
        return None
    t = s.strip(b" \t\n")
    if t.lstrip(b"+-")[:2] in (b"0x", b"0X"):
        v = float(int(t.lstrip(b"+-"), 16))
        return -v if t.startswith(b"-") else v
    return float(t)


Operand = Union[bytes, float]


def _awk_str(v: float) -> bytes:
    """awk's number -> string (CONVFMT %.6g; integral values as integers)."""
    if v == int(v):
        return str(int(v)).encode()
    return (b"%.6g" % v)


def awk_cmp(a: Operand, b: Operand) -> int:
    """awk's comparison of two operands: a field (bytes) or a numeric constant (float). -1, 0 or 1."""
    na = a if isinstance(a, float) else awk_number(a)
    nb = b if isinstance(b, float) else awk_number(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    sa = _awk_str(a) if isinstance(a, float) else a
    sb = _awk_str(b) if isinstance(b, float) else b
    return (sa > sb) - (sa < sb)


def sort_key2(line: bytes) -> bytes:
    """GNU sort's ``-k2`` key: from the blanks after field 1 to the end of the line."""
    i = 0
    n = len(line)
    while i < n and line[i] in b" \t":
        i += 1
    while i < n and line[i] not in b" \t":
        i += 1
    return line[i:]


def sort_key1(line: bytes) -> bytes:
    """GNU sort's ``-k1,1`` key: leading blanks plus the first run of non-blanks."""
    i = 0
    n = len(line)
    while i < n and line[i] in b" \t":
        i += 1
    while i < n and line[i] not in b" \t":
        i += 1
    return line[:i]


def sorted_by_k2(lines: List[bytes]) -> bool:
    """``sort -k2 -C`` (LC_ALL=C): by the -k2 key, ties by the whole line."""
    return all((sort_key2(a), a) <= (sort_key2(b), b) for a, b in zip(lines, lines[1:]))


def sort_k1_unique(lines: List[bytes]) -> List[bytes]:
    """``sort -k1,1 -u`` (LC_ALL=C): sorted by field 1, the first line (in input order) of equal keys kept."""
    out: List[bytes] = []
    seen = set()
    for ln in sorted(lines, key=sort_key1):
        k = sort_key1(ln)
        if k not in seen:
            seen.add(k)
            out.append(ln)
    return out


_WORD = rb"[A-Za-z0-9_]"


def grep_word(word: bytes, line: bytes) -> bool:
    """``grep -w WORD`` in the C locale (word constituents: ASCII letters, digits, underscore)."""
    return re.search(rb"(?<!" + _WORD + rb")" + re.escape(word) + rb"(?!" + _WORD + rb")", line) is not None


def non_printable(line: bytes) -> bool:
    """``grep '[^[:print:][:space:]]'`` in a UTF-8 locale: a control character or an unassigned code point.

    Bytes that are not valid UTF-8 never match (grep's rule), so they do not count here.
    """
    for c in line.decode("utf-8", errors="ignore"):
        cat = unicodedata.category(c)
        if (cat == "Cc" and c not in "\t\n\x0b\x0c\r") or cat == "Cn":
            return True
    return False


# perl's \s with unicode_strings, less tab, LF and space
_PERL_SPACE = set("\x0b\x0c\r\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def text_line_problem(line: str) -> Optional[str]:
    """Kaldi's validate_text.pl rule for one decoded line: a CR, or white space other than tab, LF, space."""
    if "\r" in line:
        return "contains CR (0x0D) character"
    if any(c in _PERL_SPACE for c in line):
        return "contains disallowed Unicode whitespaces"
    return None
