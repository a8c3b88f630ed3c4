"""Stage 4: the class list (``token_list``) from a training ``text`` file, and label checks.

Classes are the unique space-separated words of the label fields (column 2 onwards),
case-sensitive, most frequent first; ties keep the order of first occurrence in the
text. This is what ESPnet's ``tokenize_text --token_type word --write_vocabulary true``
gives (``collections.Counter.most_common`` sorts by count with a stable sort over the
insertion order), so ESPnet token lists and ours agree. ``<blank>`` (the multi-label
"no label" mark) and ``<unk>`` are never classes: they follow the classes, in that order.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Iterable

from espnet_cls.contract import BLANK, SPECIAL_TOKENS, with_special_tokens
from espnet_cls.fileio import DataError, PathLike, atomic_write, iter_kv

logger = logging.getLogger(__name__)



def count_labels(text: PathLike) -> tuple[Counter, int]:
    """Count the labels of a ``text`` file: ``(Counter in first-occurrence order, #utterances)``.

    Lines without labels are allowed (and counted as utterances). ``<blank>`` and ``<unk>``
    are not counted; ``<blank>`` together with real labels on one line is logged.
    """
    counts: Counter = Counter()
    n_utt = 0
    n_mixed = 0
    for _utt, value, _line in iter_kv(text, allow_empty_value=True):
        n_utt += 1
        words = value.split()
        if BLANK in words and len(set(words)) > 1:
            n_mixed += 1
        for w in words:
            if w not in SPECIAL_TOKENS:
                counts[w] += 1
    if n_mixed:
        logger.warning("%s: %d line(s) hold %s together with real labels", text, n_mixed, BLANK)
    return counts, n_utt


def make_token_list(text: PathLike) -> list[str]:
    """Classes of ``text`` by descending frequency (ties: first occurrence), then ``<blank>``, ``<unk>``."""
    counts, _ = count_labels(text)
    if not counts:
        raise DataError("no labels found: cannot build a token list", text)
    return with_special_tokens(w for w, _ in counts.most_common())


def write_token_list(tokens: Iterable[str], path: PathLike) -> None:
    """Write one token per line, atomically."""
    with atomic_write(path) as f:
        for t in tokens:
            f.write(f"{t}\n")


def unknown_labels(token_list: Iterable[str], text: PathLike) -> Counter:
    """Labels of ``text`` (except ``<blank>``) that are not in ``token_list``, with their counts."""
    known = set(token_list)
    unknown: Counter = Counter()
    for _utt, value, _line in iter_kv(text, allow_empty_value=True):
        for w in value.split():
            if w != BLANK and w not in known:
                unknown[w] += 1
    return unknown
