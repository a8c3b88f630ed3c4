"""Stage 3: drop too short / too long utterances and those with empty text from a dump dir.

:func:`filter_data_dir` keeps an utterance when ``min_len <= num_samples <= max_len``
(``min_len = round(min_wav_duration * fs)``, ``max_len`` likewise, none = no upper
bound) and its ``text`` has at least one label (``<blank>``, the multi-label "no label"
mark, counts as a label). ESPnet's cls.sh uses strict ``min < n < max``; the only
difference is a clip of exactly the limit length, which is kept here, as "shorter than"
and "longer than" say.

Every per-utterance file of the dir (``wav.scp``, ``utt2num_samples``, ``text``,
``utt2spk``, ``utt2weight`` and the other ``utt2*`` Kaldi files present) is filtered to
the same utterances, keeping its lines as they were; ``spk2utt`` is rebuilt from the
filtered ``utt2spk`` and ``spk2gender`` filtered to the remaining speakers.

Backup and re-runs: the originals are copied to ``<dir>/.filter_backup/`` (not Kaldi's
``.backup/``, which ``utils/fix_data_dir.sh`` overwrites) with ``state.json`` holding the
SHA-256 of each backed-up and each written file. A re-run filters from the backup when
every current file is either the backed-up original or this tool's last output (so it is
idempotent, and a looser threshold brings utterances back); when the dir was rewritten
since (e.g. stage 2 ran again), the current files become the new originals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Optional

from espnet_cls.fileio import DataError, atomic_write, iter_kv

logger = logging.getLogger(__name__)

BACKUP_DIR = ".filter_backup"
STATE_FILE = "state.json"
#: files keyed by utterance id, filtered when present (the first four are required)
UTT_FILES = (
    "wav.scp",
    "utt2num_samples",
    "text",
    "utt2spk",
    "utt2weight",
    "utt2dur",
    "utt2num_frames",
    "utt2lang",
    "utt2category",
    "utt2uniq",
    "feats.scp",
)
REQUIRED = ("wav.scp", "utt2num_samples", "text", "utt2spk")
SPK_FILES = ("spk2utt", "spk2gender")


@dataclass
class FilterResult:
    """Counts of one filtering run; ``kept`` utterance ids in ``wav.scp`` order."""

    total: int = 0
    too_short: int = 0
    too_long: int = 0
    empty_text: int = 0
    no_speaker: int = 0
    kept: list = field(default_factory=list)
    source: str = ""

    def summary(self) -> str:
        s = (
            f"kept {len(self.kept)} of {self.total} (too short: {self.too_short}, too long: {self.too_long}, "
            f"empty text: {self.empty_text}"
        )
        if self.no_speaker:
            s += f", not in utt2spk: {self.no_speaker}"
        return s + ")"


def _sha(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def _sha_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _managed(d: str) -> list[str]:
    return [f for f in UTT_FILES + SPK_FILES if os.path.isfile(os.path.join(d, f))]


def _choose_source(d: str) -> str:
    """The folder to read the originals from: the backup, or ``d`` itself (see module doc)."""
    bdir = os.path.join(d, BACKUP_DIR)
    state_path = os.path.join(bdir, STATE_FILE)
    if not os.path.isfile(state_path):
        return d
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        backup, output = state["backup"], state.get("output", {})
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s is unreadable; taking the current files of %s as the originals", state_path, d)
        return d
    names = set(backup) | set(_managed(d))
    for name in sorted(names):
        cur = _sha(os.path.join(d, name))
        if cur is None or cur not in (backup.get(name), output.get(name)):
            logger.info("%s changed since the last filtering (%s); taking the current files as the originals", d, name)
            return d
        if name in backup and _sha(os.path.join(bdir, name)) != backup[name]:
            logger.warning("%s/%s does not match %s; taking the current files as the originals", bdir, name, STATE_FILE)
            return d
    return bdir


def _make_backup(d: str) -> dict[str, str]:
    """Copy the managed files of ``d`` into ``d/.filter_backup`` (atomically: temp dir + rename)."""
    bdir = os.path.join(d, BACKUP_DIR)
    tmp = bdir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    hashes = {}
    for name in _managed(d):
        shutil.copy2(os.path.join(d, name), os.path.join(tmp, name))
        hashes[name] = _sha(os.path.join(tmp, name))
    old = bdir + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(bdir):
        os.replace(bdir, old)
    os.replace(tmp, bdir)
    shutil.rmtree(old, ignore_errors=True)
    return hashes


def _read_lines_by_key(path: str) -> list[tuple[str, bytes]]:
    """``(key, raw line)`` for every line; blank lines -> DataError."""
    return list(_raw_lines(path))


_END = object()


def _raw_lines(path: str):
    """``(key, raw line ending in a newline)`` of each line; a blank line -> DataError."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            parts = raw.split(maxsplit=1)
            if not parts:
                raise DataError("empty line", path, lineno)
            yield parts[0].decode("utf-8", "replace"), raw if raw.endswith(b"\n") else raw + b"\n"


class _HashedOut:
    """A temp file beside ``path`` whose SHA-256 is kept as it is written; ``commit`` renames it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.filter{os.getpid()}.tmp")
        self.f = open(self.tmp, "wb")
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.h.update(data)

    def finish(self) -> str:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return self.h.hexdigest()

    def discard(self) -> None:
        if not self.f.closed:
            self.f.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _filter_sorted(d: str, src: str, min_len: int, max_len: Optional[int]) -> Optional[FilterResult]:
    """:func:`filter_data_dir` for the usual dump dir, streaming: every per-utterance file lists
    the keys of ``wav.scp`` (strictly sorted, as stage 2 writes them) in the same order, so the
    decision per line is one byte (a bitmap) and each file is filtered as it is read. None when
    any file is otherwise (or has a problem): the in-memory filter then handles (and names) it."""
    res = FilterResult(source=src)
    names = [n for n in UTT_FILES if os.path.isfile(os.path.join(src, n))]
    kinds = {"wav.scp": False, "utt2num_samples": False, "text": True, "utt2spk": False}
    try:
        its = [
            iter_kv(os.path.join(src, n), allow_empty_value=kinds[n])
            if n in kinds
            else _raw_lines(os.path.join(src, n))
            for n in names
        ]
        col = {n: i for i, n in enumerate(names)}
        keep = bytearray()
        gender = os.path.join(src, "spk2gender")
        kept_spk: Optional[set] = set() if os.path.isfile(gender) else None  # for spk2gender only
        spk_sorted, prev_key, prev_spk = True, b"", None
        while True:
            rows = [next(it, _END) for it in its]
            if all(r is _END for r in rows):
                break
            if any(r is _END for r in rows):
                return None
            key = rows[0][0]
            if any(r[0] != key for r in rows) or (keep and key.encode("utf-8") <= prev_key):
                return None
            prev_key = key.encode("utf-8")
            n = int(rows[col["utt2num_samples"]][1])
            spk = rows[col["utt2spk"]][1]
            res.total += 1
            if n < min_len:
                res.too_short += 1
            elif max_len is not None and n > max_len:
                res.too_long += 1
            elif not rows[col["text"]][1].split():
                res.empty_text += 1
            else:
                res.kept.append(key)
                if kept_spk is not None:
                    kept_spk.add(spk)
                keep.append(1)
                if prev_spk is not None and spk.encode("utf-8") < prev_spk:
                    spk_sorted = False
                prev_spk = spk.encode("utf-8")
                continue
            keep.append(0)
    except (DataError, ValueError):
        return None
    if not res.kept:
        raise DataError(f"no utterance left after filtering: {res.summary()}", d)

    outs: dict = {}
    hashes: dict = {}
    try:
        for name in names:
            out = outs[name] = _HashedOut(os.path.join(d, name))
            for i, (_key, line) in enumerate(_raw_lines(os.path.join(src, name))):
                if keep[i]:
                    out.write(line)
            hashes[name] = out.finish()
        out = outs["spk2utt"] = _HashedOut(os.path.join(d, "spk2utt"))
        kept_pairs = ((k, v) for i, (k, v, _no) in enumerate(iter_kv(os.path.join(src, "utt2spk"))) if keep[i])
        if spk_sorted:  # the speakers come sorted along the sorted utterances: one group at a time
            cur, group = None, []
            for utt, spk in kept_pairs:
                if spk != cur and group:
                    out.write(f"{cur} {' '.join(group)}\n".encode())
                    group = []
                cur = spk
                group.append(utt)
            if group:
                out.write(f"{cur} {' '.join(group)}\n".encode())
        else:
            spk2utts: dict = {}
            for utt, spk in kept_pairs:
                spk2utts.setdefault(spk, []).append(utt)
            for spk, us in sorted(spk2utts.items(), key=lambda kv: kv[0].encode()):
                out.write(f"{spk} {' '.join(us)}\n".encode())
        hashes["spk2utt"] = out.finish()
        if kept_spk is not None:
            out = outs["spk2gender"] = _HashedOut(os.path.join(d, "spk2gender"))
            for key, line in _raw_lines(gender):
                if key in kept_spk:
                    out.write(line)
            hashes["spk2gender"] = out.finish()
        _commit(d, src, hashes)
        for out in outs.values():
            os.replace(out.tmp, out.path)
    finally:
        for out in outs.values():
            out.discard()
    return res


def _commit(d: str, src: str, output_hashes: dict) -> None:
    """Backup (only when the originals are the current files), then the state; the outputs follow."""
    if src == d:
        backup_hashes = _make_backup(d)
    else:
        with open(os.path.join(src, STATE_FILE), encoding="utf-8") as f:
            backup_hashes = json.load(f)["backup"]
    bdir = os.path.join(d, BACKUP_DIR)
    with atomic_write(os.path.join(bdir, STATE_FILE)) as f:
        json.dump({"backup": backup_hashes, "output": output_hashes}, f, indent=1, sort_keys=True)


def filter_data_dir(
    d: str,
    fs: int,
    min_wav_duration: float = 0.1,
    max_wav_duration: Optional[float] = None,
) -> FilterResult:
    """Filter the dump dir ``d`` in place (see module doc); returns the counts.

    Raises :class:`DataError` for a missing required file, a bad ``utt2num_samples``
    line, ``wav.scp`` and ``utt2num_samples`` with different utterances, a non-``raw``
    ``feats_type``, or when no utterance is left.
    """
    ft = os.path.join(d, "feats_type")
    if os.path.isfile(ft):
        with open(ft, encoding="utf-8") as f:
            kind = f.read().strip()
        if kind != "raw":
            raise DataError(f"feats_type is {kind!r}; filtering needs raw audio (stage 2)", ft)
    from espnet_cls.contract import DumpLayout

    note = DumpLayout(d).check_fs(fs)  # a dump at another rate than --fs: ContractError (file:line)
    if note:
        logger.warning("%s", note)
    src = _choose_source(d)
    res = FilterResult(source=src)
    for name in REQUIRED:
        if not os.path.isfile(os.path.join(src, name)):
            raise DataError("missing (run stage 2 first)", os.path.join(src, name))

    min_len = int(round(min_wav_duration * fs))
    max_len = None if max_wav_duration is None else int(round(max_wav_duration * fs))

    wav_path = os.path.join(src, "wav.scp")
    n2s_path = os.path.join(src, "utt2num_samples")
    streamed = _filter_sorted(d, src, min_len, max_len)
    if streamed is not None:
        return streamed
    nsamp: dict[str, int] = {}
    for key, val, lineno in iter_kv(n2s_path):
        try:
            n = int(val)
        except ValueError:
            raise DataError(f"not a number of samples: {val!r}", n2s_path, lineno) from None
        if key in nsamp:
            raise DataError(f"duplicate key {key!r}", n2s_path, lineno)
        nsamp[key] = n
    utts = []
    for key, _val, lineno in iter_kv(wav_path):
        if key not in nsamp:
            raise DataError(f"utterance {key!r} is not in {n2s_path}", wav_path, lineno)
        utts.append(key)
    if len(utts) != len(nsamp):
        extra = next(iter(set(nsamp) - set(utts)))
        raise DataError(f"utterance {extra!r} is not in {wav_path}", n2s_path)
    text = {k: v for k, v, _ in iter_kv(os.path.join(src, "text"), allow_empty_value=True)}
    utt2spk = {k: v for k, v, _ in iter_kv(os.path.join(src, "utt2spk"))}

    res.total = len(utts)
    kept = []
    for utt in utts:
        n = nsamp[utt]
        if n < min_len:
            res.too_short += 1
        elif max_len is not None and n > max_len:
            res.too_long += 1
        elif not text.get(utt, "").split():
            res.empty_text += 1
        elif utt not in utt2spk:
            res.no_speaker += 1
        else:
            kept.append(utt)
    res.kept = kept
    if not kept:
        raise DataError(f"no utterance left after filtering: {res.summary()}", d)

    keep = set(kept)
    outputs: dict[str, bytes] = {}
    for name in UTT_FILES:
        path = os.path.join(src, name)
        if os.path.isfile(path):
            outputs[name] = b"".join(line for key, line in _read_lines_by_key(path) if key in keep)
    spk2utts: dict[str, list[str]] = {}
    for utt in sorted(u for u in utt2spk if u in keep):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    outputs["spk2utt"] = "".join(
        f"{spk} {' '.join(us)}\n" for spk, us in sorted(spk2utts.items(), key=lambda kv: kv[0].encode())
    ).encode("utf-8")
    gender = os.path.join(src, "spk2gender")
    if os.path.isfile(gender):
        outputs["spk2gender"] = b"".join(line for key, line in _read_lines_by_key(gender) if key in spk2utts)

    # backup (only when the originals are the current files), then the state, then the outputs
    _commit(d, src, {k: _sha_bytes(v) for k, v in outputs.items()})
    for name, data in outputs.items():
        with atomic_write(os.path.join(d, name), "wb") as f:
            f.write(data)
    return res
