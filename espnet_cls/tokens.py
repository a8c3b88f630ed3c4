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


def check_labels(text: PathLike, classification_type: str, training: bool = True, limit: int = 10) -> list[str]:
    """The one label check of stage 4: raise :class:`DataError` (file:line) for a label a
    ``text`` file cannot mean; return warnings (also logged) for doubtful ones.

    Errors (each names ``text`` and the line; up to ``limit`` are logged, the first raised):

    - a byte that is not UTF-8, a BOM, a CR line end, a duplicate utterance id;
    - multi-class: more than one label on a line (multi-class takes exactly one; the
      config says ``model_conf.classification_type: multi-label`` for several), and
      ``<blank>`` or ``<unk>`` as the label (the clip would teach nothing), and, in the
      training text, a line without a label;
    - any type: ``<unk>`` as a label.

    Warnings: labels that differ only in case (``Low`` / ``low``): ESPnet's classes are
    case-sensitive, so they are two classes; ``<blank>`` beside real labels (multi-label).
    """
    from espnet_cls.contract import MULTI_CLASS, UNK, check_classification_type
    from espnet_cls.datacheck import iter_table, read_table

    ctype = check_classification_type(classification_type)
    # a text with strictly sorted ids (as stages 2 and 3 write it) has no duplicate: read it one
    # line at a time; otherwise the table (its duplicate check names the first line)
    prev, ascending = None, True
    for utt, _value, _no in iter_table(str(text), allow_empty_value=True):
        b = utt.encode("utf-8")
        if prev is not None and b <= prev:
            ascending = False
            break
        prev = b
    if ascending:
        rows = ((u, (v, no)) for u, v, no in iter_table(str(text), allow_empty_value=True))
    else:
        rows = iter(read_table(str(text), allow_empty_value=True, what="utterance id").rows.items())
    errors: list[DataError] = []
    warnings: list[str] = []
    first_seen: dict[str, int] = {}
    n_mixed = 0
    for utt, (value, no) in rows:
        words = value.split()
        if ctype == MULTI_CLASS:
            if len(words) > 1:
                errors.append(DataError(
                    f"utt {utt}: {len(words)} labels ({' '.join(words)}) on one line of a multi-class text: "
                    "multi-class takes exactly one (for several, set model_conf.classification_type: multi-label)",
                    text, no,
                ))  # fmt: skip
                continue
            if words and words[0] in SPECIAL_TOKENS:
                errors.append(DataError(
                    f"utt {utt}: {words[0]} is not a class: a multi-class clip needs one real label "
                    "(remove the clip, or use multi-label, where <blank> means 'no class')",
                    text, no,
                ))  # fmt: skip
                continue
            if not words and training:
                errors.append(DataError(f"utt {utt}: no label in the training text (multi-class takes exactly one)", text, no))
                continue
        else:
            if UNK in words:
                errors.append(DataError(f"utt {utt}: {UNK} is not a class (use {BLANK} for 'no class')", text, no))
                continue
            if BLANK in words and len(set(words)) > 1:
                n_mixed += 1
        for w in words:
            if w not in SPECIAL_TOKENS:
                first_seen.setdefault(w, no)
    by_fold: dict[str, list[str]] = {}
    for w in first_seen:
        by_fold.setdefault(w.casefold(), []).append(w)
    for group in by_fold.values():
        if len(group) > 1:
            where = ", ".join(f"{w!r} (line {first_seen[w]})" for w in group)
            warnings.append(f"{text}: labels differ only in case: {where}; classes are case-sensitive (as ESPnet's), so these are {len(group)} classes")
    if n_mixed:
        warnings.append(f"{text}: {n_mixed} line(s) hold {BLANK} together with real labels ({BLANK} is ignored there)")
    for w in warnings:
        logger.warning("%s", w)
    if errors:
        for e in errors[:limit]:
            logger.error("%s", e)
        if len(errors) > limit:
            logger.error("... and %d more such line(s) in %s", len(errors) - limit, text)
        first = errors[0]
        more = f" (and {len(errors) - 1} more line(s))" if len(errors) > 1 else ""
        raise DataError(first.msg + more, first.path, first.line)
    return warnings
