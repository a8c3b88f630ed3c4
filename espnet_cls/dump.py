"""Stage 2 worker: decode the utterances of one job and write them as mono ``fs`` audio.

One call of :func:`format_wav_scp` is one ``JOB`` of ``scripts/audio/format_wav_scp.sh``.
It reads the original ``wav.scp`` (and ``segments``, if any), so that an error can name the
line of the *original* file, but keeps only the entries of its part (``--keys``, a split of
the sorted key list; a sorted ``wav.scp`` is read in step with it, holding nothing per
utterance), and writes

- ``<outdir>/<utt>.<flac|wav>`` — mono, 16-bit PCM, at ``fs``; each file atomically
  (temp name + rename), so an existing ``<utt>.<fmt>`` is always complete;
- ``<outdir>/wav.scp`` and ``<outdir>/utt2num_samples`` — this job's part, written as it
  goes under temp names and renamed only when every utterance of the job succeeded (the
  driver merges the parts).

Re-running a job (after a failure or a kill) keeps every existing output that is a
readable mono file of the right format and rate, carries the tag of its current source
(``wav.scp`` entry and segment, stored as the file's metadata comment) and is not older
than its source file (plain-path entries); it redoes the rest. Outputs that another
``format.*`` folder holds (the split moved them) are moved, not redone. The driver
removes files no longer listed after a successful merge.

Bad input (missing/unreadable file, failing pipe, zero or NaN/Inf samples, segment
outside the recording) is reported as one ``ERROR`` line per utterance naming the set,
the utterance, the ``wav.scp``/``segments`` line and the cause; the other utterances are
still processed so one run shows every problem, and the job then fails.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import soundfile as sf

from espnet_cls.audio import (
    ARK_AUDIO_FORMATS,
    AUDIO_FORMATS,
    DEFAULT_MAX_OVERSHOOT,
    AudioError,
    SegmentError,
    audio_info_ok,
    check_samples,
    is_ark,
    is_pipe,
    read_entry,
    resample,
    segment_frames,
    to_mono,
    write_audio,
)
from espnet_cls.contract import AUDIO_FORMAT_FILE, DUMP_FS_FILE, FEATS_TYPE_FILE
from espnet_cls.datacheck import Table, iter_table, read_table
from espnet_cls.fileio import DataError, atomic_write, iter_kv, write_kv

logger = logging.getLogger(__name__)

#: ``format.JOB/errors``: the per-utterance errors of one job, one ``path:line: message`` a line.
ERRORS_FILE = "errors"
#: ``<logdir>/keys.all``: every utterance of the set (sorted), split into ``keys.JOB.scp``.
KEYS_FILE = "keys.all"
#: Utterance tables of a source data dir that stage 2 checks against the utterance list
#: and copies (sorted) into the dump; ``utt2num_samples`` is recomputed, not copied.
UTT_TABLES = (
    "text", "utt2spk", "utt2category", "utt2dur", "utt2num_frames", "utt2weight",
    "utt2lang", "utt2uniq", "utt2warp", "feats.scp", "vad.scp",
)  # fmt: skip
#: Speaker tables copied sorted (``spk2utt`` is rebuilt from ``utt2spk``).
SPK_TABLES = ("spk2gender", "spk2warp")
#: Files of ``dump/<set>`` that stage 2 writes (removed when it starts, so none is stale).
DUMP_OUTPUTS = (
    "wav.scp", "utt2num_samples", FEATS_TYPE_FILE, DUMP_FS_FILE, AUDIO_FORMAT_FILE, "spk2utt", *UTT_TABLES, *SPK_TABLES,
)  # fmt: skip


@dataclass
class Segment:
    """One line of a Kaldi ``segments`` file."""

    utt: str
    rec: str
    start: float
    end: Optional[float]  # None: to the end of the recording (-1 in the file)
    line: int


@dataclass
class JobResult:
    """What one job did: counts, time, and the per-utterance errors (DataError)."""

    n_total: int = 0
    n_written: int = 0
    n_reused: int = 0
    n_clipped_utts: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    errors: list = field(default_factory=list)


class _PartLists:
    """A job's ``wav.scp`` and ``utt2num_samples``: written as the job goes (to temp names,
    renamed when it succeeded) when its utterances come sorted, as the driver's split parts
    do; otherwise (a hand-made unsorted key list) kept and written sorted at the end."""

    def __init__(self, wav_scp: str, num_samples: str, stream: bool) -> None:
        self.outs = (wav_scp, num_samples)
        self.rows: tuple[dict, dict] = ({}, {})
        self.tmps: tuple = ()
        self.files: tuple = ()
        if stream:
            self.tmps = tuple(os.path.join(os.path.dirname(os.path.abspath(p)), f".{os.path.basename(p)}.tmp{os.getpid()}") for p in self.outs)
            self.files = tuple(open(t, "w", encoding="utf-8") for t in self.tmps)

    def add(self, utt: str, listed: str, n: int) -> None:
        if self.files:
            self.files[0].write(f"{utt} {listed}\n")
            self.files[1].write(f"{utt} {n}\n")
        else:
            self.rows[0][utt] = listed
            self.rows[1][utt] = str(n)

    def close(self, keep: bool) -> None:
        """Rename the lists into place (``keep``), or remove them."""
        if not self.files:
            if keep:
                for path, rows in zip(self.outs, self.rows):
                    write_kv(path, rows.items())
            return
        if not keep:
            self.abort()
            return
        for f, path in zip(self.files, self.outs):
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise OSError(e.errno, e.strerror, path) from None  # a failed write names no file: name the output
        for f in self.files:
            f.close()
        self.files = ()
        for tmp, path in zip(self.tmps, self.outs):
            os.replace(tmp, path)

    def abort(self) -> None:
        """Remove the temp lists (a failed job, or an exception): no half-written part."""
        for f in self.files:
            with contextlib.suppress(OSError):
                f.close()
        self.files = ()
        for tmp in self.tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def read_segments(path: str, only: Optional[set] = None) -> dict[str, Segment]:
    """Read ``utt rec start end`` lines (``end`` -1 = to the end). Bad lines -> DataError.

    ``only``: keep just these utterances (a job's part); every line is still checked.
    """
    out: dict[str, Segment] = {}
    for utt, rest, line in iter_kv(path):
        parts = rest.split()
        if len(parts) != 3:
            raise DataError(f"expected 'utt recording start end', got {len(parts) + 1} fields", path, line)
        rec, s, e = parts
        try:
            start, end = float(s), float(e)
        except ValueError:
            raise DataError(f"start/end are not numbers: {s!r} {e!r}", path, line) from None
        if not (np.isfinite(start) and np.isfinite(end)):
            raise DataError(f"start/end are not finite: {s!r} {e!r}", path, line)
        if only is not None and utt not in only:
            continue
        if utt in out:
            raise DataError(f"duplicate utterance id {utt!r}", path, line)
        out[utt] = Segment(utt, rec, start, None if end == -1 else end, line)
    return out


def read_wav_scp(path: str, only: Optional[set] = None) -> dict[str, tuple[str, int]]:
    """Read ``key entry`` lines into ``{key: (entry, line)}``; a duplicate key is a DataError.

    ``only``: keep just these keys (a job's part: its memory grows with the part, not with
    the whole file; a duplicate among the other keys is the driver's ``--step begin``'s to find).
    """
    out: dict[str, tuple[str, int]] = {}
    for key, value, line in iter_kv(path):
        if only is not None and key not in only:
            continue
        if key in out:
            raise DataError(f"duplicate key {key!r}", path, line)
        out[key] = (value, line)
    return out


def _ascending(rows) -> bool:
    """Whether the keys of ``(key, value, line)`` rows are strictly ascending in C order."""
    prev = None
    for key, _v, _no in rows:
        b = key.encode("utf-8")
        if prev is not None and b <= prev:
            return False
        prev = b
    return True


def _merge_sorted(keys: str, wav_scp: str):
    """``(utt, (entry, line) or None)`` for each key of ``keys``, both files sorted (C order,
    strictly): one pass over each, in step."""
    scp = iter_kv(wav_scp)
    cur = next(scp, None)
    for utt, _v, _no in iter_kv(keys, allow_empty_value=True):
        b = utt.encode("utf-8")
        while cur is not None and cur[0].encode("utf-8") < b:
            cur = next(scp, None)
        if cur is not None and cur[0] == utt:
            yield utt, (cur[1], cur[2])
        else:
            yield utt, None


def read_keys(path: str) -> list[str]:
    """First field of each non-empty line of ``path`` (a split part of wav.scp/segments)."""
    keys = []
    for key, _value, _line in iter_kv(path, allow_empty_value=True):
        keys.append(key)
    return keys


def _wav_data_sizes(path: str) -> Optional[tuple[int, int, int]]:
    """``(data bytes the header declares, data bytes present, block align)`` of a RIFF/WAVE
    file, or None when it is not one (or the sizes are unknown, as in a streamed header)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos, align = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                ch = f.read(8)
                if len(ch) < 8:
                    return None
                cid, n = ch[:4], int.from_bytes(ch[4:8], "little")
                if cid == b"fmt ":
                    fmt = f.read(min(n, 16))
                    if len(fmt) >= 14:
                        align = int.from_bytes(fmt[12:14], "little")
                elif cid == b"data":
                    if n in (0, 0xFFFFFFFF) or align <= 0:
                        return None
                    return n, size - (pos + 8), align
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def truncation(path: str, n_read: Optional[int] = None) -> Optional[str]:
    """Why the audio file ``path`` is cut short (its header promises more), or None.

    WAV: the ``data`` chunk size of the header against the bytes in the file (libsndfile
    silently reads what is there). Other formats: the header's frame count against
    ``n_read``, the frames a whole-file read gave (when known).
    """
    sizes = _wav_data_sizes(path)
    if sizes is not None:
        declared, present, align = sizes
        if present < declared:
            try:
                fs = sf.info(path).samplerate
            except (sf.LibsndfileError, RuntimeError, OSError):
                return f"truncated file: its header declares {declared} data bytes, the file holds {present}"
            want, have = declared // align, present // align
            return (
                f"truncated file: its header declares {want} frames ({want / fs:.3f} s), "
                f"the file holds {have} ({have / fs:.3f} s); re-create or remove it"
            )
        return None
    if n_read is None:
        return None
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    if info.frames > n_read:
        return (
            f"truncated file: its header declares {info.frames} frames ({info.frames / info.samplerate:.3f} s), "
            f"only {n_read} could be decoded; re-create or remove it"
        )
    return None


def _check_utt_id(utt: str) -> Optional[str]:
    """Why ``utt`` cannot be used as a file name, or None."""
    if "/" in utt or utt in (".", "..") or utt.startswith("."):
        return f"utterance id {utt!r} cannot be used as a file name (contains '/' or starts with '.')"
    return None


class _PipeCache:
    """Keeps the last decoded pipe recording, so many segments of one pipe decode it once."""

    def __init__(self) -> None:
        self.entry: Optional[str] = None
        self.data: Optional[tuple[np.ndarray, int]] = None

    def get(self, entry: str) -> tuple[np.ndarray, int]:
        if self.entry != entry:
            self.entry, self.data = None, None
            self.data = read_entry(entry)
            self.entry = entry
        assert self.data is not None
        return self.data


def _cut(x: np.ndarray, fs: int, seg: Segment, max_overshoot: float) -> np.ndarray:
    a, b = segment_frames(len(x), fs, seg.start, seg.end, max_overshoot)
    return x[a:b]


def source_tag(entry: str, seg: Optional[Segment], max_overshoot: float) -> str:
    """The metadata comment that ties an output file to its source (entry and segment)."""
    src = entry.strip() if seg is None else f"{entry.strip()}\t{seg.rec}\t{seg.start!r}\t{seg.end!r}\t{max_overshoot!r}"
    return "espnet_cls.format_wav_scp:" + hashlib.sha1(src.encode("utf-8")).hexdigest()[:20]


class _Reuse:
    """Finds complete outputs of an earlier run that can be kept.

    A file ``<utt>.<fmt>`` is kept when it is a mono 16-bit file of the right format and
    rate whose metadata comment is the source tag of the current entry (so an edited
    ``wav.scp`` line or segment is redone), and, for a plain-path entry, is not older than
    the source file. A file found in a sibling ``format.*`` folder (the split changed, e.g.
    another ``nj`` or added/removed lines) is moved here. The sibling folders are listed lazily, once.
    """

    def __init__(self, outdir: str, fs: int, audio_format: str) -> None:
        self.outdir = os.path.normpath(outdir)
        self.fs = fs
        self.fmt = audio_format
        self._siblings: Optional[list] = None

    def _sibling_dirs(self) -> list:
        if self._siblings is None:
            parent = os.path.dirname(os.path.abspath(self.outdir))
            me = os.path.abspath(self.outdir)
            self._siblings = [
                d for d in sorted(glob.glob(os.path.join(glob.escape(parent), "format.*")))
                if os.path.abspath(d) != me and os.path.isdir(d)
            ]  # fmt: skip
        return self._siblings

    def _sibling(self, name: str) -> Optional[str]:
        """The first sibling folder's ``name`` (a stat per folder: no per-file index in memory)."""
        if name.startswith("."):
            return None
        for d in self._sibling_dirs():
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
        return None

    def _fresh(self, path: str, entry: str) -> bool:
        if is_pipe(entry):
            return True
        try:
            return os.path.getmtime(path) >= os.path.getmtime(entry.strip())
        except OSError:
            return False  # the source is gone: decode again (and report it)

    def find(self, utt: str, out_path: str, tag: str, entry: str) -> Optional[int]:
        """Frames of a reusable output for ``utt`` (now at ``out_path``), or None."""
        if os.path.exists(out_path):
            n = audio_info_ok(out_path, self.fs, self.fmt, tag)
            return n if n is not None and self._fresh(out_path, entry) else None
        other = self._sibling(os.path.basename(out_path))
        if other is None:
            return None
        n = audio_info_ok(other, self.fs, self.fmt, tag)
        if n is None or not self._fresh(other, entry):
            return None
        try:
            os.replace(other, out_path)  # keeps the mtime
        except OSError:
            return None
        return n


class _ArkWriter:
    """One job's clips in one Kaldi ark, ``<outdir>/data.<fmt>.ark`` (ESPnet's ``--audio_format
    flac.ark``/``wav.ark``): each clip a 16-bit flac/wav file written by kaldiio's "soundfile"
    function; ``wav.scp`` points at ``<ark>:<offset>``. Written to a temp name and renamed
    when the job succeeded, so an ark is complete or absent (a re-run rewrites it whole)."""

    def __init__(self, outdir: str, audio_format: str) -> None:
        self.sub = ARK_AUDIO_FORMATS[audio_format]
        self.path = os.path.join(outdir, f"data.{audio_format}")
        self.tmp = os.path.join(outdir, f".data.{audio_format}.tmp{os.getpid()}")
        self.f = open(self.tmp, "wb")

    def add(self, utt: str, y: np.ndarray, fs: int) -> tuple[str, int]:
        """Append one clip; returns its ``wav.scp`` value and the number of clipped samples."""
        import kaldiio

        from espnet_cls.contract import PCM_MAX, PCM_MIN, PCM_SCALE

        scaled = np.round(np.asarray(y, dtype=np.float64) * PCM_SCALE)
        n_clip = int(np.count_nonzero((scaled > PCM_MAX) | (scaled < PCM_MIN)))
        pcm = np.clip(scaled, PCM_MIN, PCM_MAX).astype(np.int16)
        offset = self.f.tell() + len((utt + " ").encode("utf-8"))
        kaldiio.save_ark(self.f, {utt: (pcm, int(fs))}, write_function="soundfile", write_kwargs={"format": self.sub})
        return f"{self.path}:{offset}", n_clip

    def close(self, keep: bool) -> None:
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
        finally:
            self.f.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def format_wav_scp(
    wav_scp: str,
    outdir: str,
    fs: int,
    audio_format: str = "flac",
    segments: Optional[str] = None,
    keys: Optional[str] = None,
    set_name: Optional[str] = None,
    max_overshoot: float = DEFAULT_MAX_OVERSHOOT,
    log_every: int = 1000,
    out_wav_scp: Optional[str] = None,
    out_num_samples: Optional[str] = None,
    show_progress: bool = False,
) -> JobResult:
    """Decode, downmix, resample and write the utterances of one job (see module doc).

    ``wav_scp``/``segments``: the original files (whole); ``keys``: the file whose first
    column lists this job's utterances (default: every utterance). Writes audio under
    ``outdir`` and, when no utterance failed, ``out_wav_scp``/``out_num_samples``
    (default ``outdir/wav.scp``, ``outdir/utt2num_samples``). Per-utterance problems
    are returned in ``JobResult.errors`` (and logged); a malformed input file raises.
    """
    if audio_format not in AUDIO_FORMATS and audio_format not in ARK_AUDIO_FORMATS:
        choices = ", ".join([*AUDIO_FORMATS, *ARK_AUDIO_FORMATS])
        raise DataError(f"unknown audio format {audio_format!r} (choose from {choices})")
    # default set name: the data dir holding wav.scp (data/<set>/wav.scp)
    set_name = set_name or os.path.basename(os.path.dirname(os.path.abspath(wav_scp)))
    out_wav_scp = out_wav_scp or os.path.join(outdir, "wav.scp")
    out_num_samples = out_num_samples or os.path.join(outdir, "utt2num_samples")
    os.makedirs(outdir, exist_ok=True)
    # leftovers of a killed run: temp audio files and stale part lists
    for tmp in glob.glob(os.path.join(glob.escape(outdir), ".*.tmp*")):
        try:
            os.unlink(tmp)
        except OSError:
            pass
    errors_file = os.path.join(outdir, ERRORS_FILE)
    for stale in (out_wav_scp, out_num_samples, errors_file):
        if os.path.exists(stale):
            os.unlink(stale)

    stream = (
        keys is not None and segments is None
        and _ascending(iter_kv(wav_scp)) and _ascending(iter_kv(keys, allow_empty_value=True))
    )  # fmt: skip
    if stream:
        # the usual job: a sorted split of the sorted keys of a sorted wav.scp, both read in step
        # (nothing held per utterance); a key missing from wav.scp is an error, as below
        assert keys is not None
        n_total = sum(1 for _ in iter_kv(keys, allow_empty_value=True))
        pairs = _merge_sorted(keys, wav_scp)
        segs = None
        in_order = True
    elif keys is not None:
        # only this job's part of wav.scp/segments is held (memory ~ the part, not the set)
        utts = read_keys(keys)
        wanted = set(utts)
        segs = read_segments(segments, wanted) if segments else None
        recs = read_wav_scp(wav_scp, wanted if segs is None else {s.rec for s in segs.values()})
        del wanted
    else:
        recs = read_wav_scp(wav_scp)
        segs = read_segments(segments) if segments else None
        utts = list(segs) if segs is not None else list(recs)
    if not stream:
        # a sorted part (keys.JOB.scp is a split of the sorted keys.all) is written as it goes;
        # otherwise the lists are sorted at the end (write_kv)
        in_order = all(utts[i].encode("utf-8") < utts[i + 1].encode("utf-8") for i in range(len(utts) - 1))
        n_total = len(utts)
        pairs = ((u, None if segs is not None else recs.get(u)) for u in utts)

    res = JobResult(n_total=n_total)
    lists = _PartLists(out_wav_scp, out_num_samples, stream=in_order)
    cache = _PipeCache()
    ark = _ArkWriter(outdir, audio_format) if audio_format in ARK_AUDIO_FORMATS else None
    reuse = None if ark is not None else _Reuse(outdir, fs, audio_format)
    t0 = time.perf_counter()
    it = pairs
    if show_progress:
        from tqdm import tqdm

        it = tqdm(pairs, total=n_total, desc=os.path.basename(outdir), unit="clip")

    def fail(utt: str, cause: str, path: str, line: Optional[int]) -> None:
        err = DataError(f"set {set_name}, utt {utt}: {cause}", path, line)
        res.errors.append(err)
        logger.error("%s", err)

    try:
        for i, (utt, rec) in enumerate(it, 1):
            # where an error about this utterance points
            if segs is not None:
                seg = segs.get(utt)
                if seg is None:
                    fail(utt, "not in the segments file", segments, None)
                    continue
                rec = recs.get(seg.rec)
                if rec is None:
                    fail(utt, f"recording {seg.rec!r} is not in {wav_scp}", segments, seg.line)
                    continue
                entry, rec_line = rec
                where = (segments, seg.line)
                rec_where = (wav_scp, rec_line)
                rec_note = f" (recording {seg.rec})"
            else:
                seg = None
                if rec is None:
                    fail(utt, "not in wav.scp", wav_scp, None)
                    continue
                entry, rec_line = rec
                where = rec_where = (wav_scp, rec_line)
                rec_note = ""
            why = _check_utt_id(utt)
            if why:
                fail(utt, why, *where)
                continue
            out_path = os.path.join(outdir, f"{utt}.{audio_format}")

            # reuse a complete output of an earlier run (in this job's folder, or moved from
            # another format.* folder when the split changed)
            tag = source_tag(entry, seg, max_overshoot)
            n = reuse.find(utt, out_path, tag, entry) if reuse is not None else None
            if n is not None:
                lists.add(utt, out_path, n)
                res.n_reused += 1
                res.audio_seconds += n / fs
                continue

            # decode; a segment problem points to the segments line, a file problem to wav.scp
            try:
                if seg is None:
                    x, fs_in = read_entry(entry)
                elif is_pipe(entry):
                    full, fs_in = cache.get(entry)
                    x = _cut(full, fs_in, seg, max_overshoot)
                else:
                    x, fs_in = read_entry(entry, seg.start, seg.end, max_overshoot)
            except SegmentError as e:
                fail(utt, f"{e}{rec_note}", *where)
                continue
            except AudioError as e:
                fail(utt, f"{e}{rec_note}", *rec_where)
                continue
            if not is_pipe(entry):
                short = truncation(entry.strip(), len(x) if seg is None else None)
                if short:
                    fail(utt, short, *rec_where)
                    continue
            try:
                check_samples(x)
                y = resample(to_mono(x), fs_in, fs)
                check_samples(y)
            except AudioError as e:
                fail(utt, f"{e}{rec_note}", *where)
                continue
            if ark is not None:
                listed, n_clip = ark.add(utt, y, fs)
            else:
                listed, n_clip = out_path, write_audio(out_path, y, fs, audio_format, comment=tag)
            if n_clip:
                res.n_clipped_utts += 1
                logger.warning("set %s, utt %s: %d sample(s) clipped to the 16-bit range", set_name, utt, n_clip)
            lists.add(utt, listed, len(y))
            res.n_written += 1
            res.audio_seconds += len(y) / fs
            if log_every and i % log_every == 0 and not show_progress:
                dt = time.perf_counter() - t0
                logger.info("%s: %d/%d clips, %.1f clips/s", os.path.basename(outdir), i, n_total, i / max(dt, 1e-9))

        res.elapsed = time.perf_counter() - t0
        if ark is not None:
            ark.close(keep=not res.errors)
        lists.close(keep=not res.errors)
    except BaseException:
        lists.abort()
        if ark is not None:  # its temp name (gone when it was renamed into place)
            with contextlib.suppress(OSError):
                ark.f.close()
            with contextlib.suppress(OSError):
                os.unlink(ark.tmp)
        raise
    if res.errors:
        with atomic_write(errors_file) as f:
            for e in res.errors:
                f.write(" ".join(str(e).split()) + "\n")
    rate = res.n_total / max(res.elapsed, 1e-9)
    logger.info(
        "%s: %d clips (%d written, %d reused, %d failed) in %.2f s: %.1f clips/s, %.1f s of audio (%.0fx real time)",
        os.path.basename(os.path.normpath(outdir)),
        res.n_total,
        res.n_written,
        res.n_reused,
        len(res.errors),
        res.elapsed,
        rate,
        res.audio_seconds,
        res.audio_seconds / max(res.elapsed, 1e-9),
    )
    return res


# =========================================================================== stage 2 driver
#
# scripts/audio/format_wav_scp.sh keeps only the split, ``${cmd} JOB=1:nj`` and the call
# of the steps below (python -m espnet_cls.bin.format_wav_scp --step begin|report|end):
#
# begin   validate the SOURCE data dir (nothing is written to dump/<set> when it is
#         bad), remove the merged outputs of an earlier run, write <logdir>/keys.all
# job     one JOB (format_wav_scp above)
# report  after a failed ${cmd}: the jobs' errors files as one line per bad utterance
# end     merge the parts, copy the data dir's tables (sorted), record fs and
#         feats_type, write wav.scp last, remove audio no longer listed


@dataclass
class Source:
    """A validated source data dir (or a bare wav.scp [+ segments])."""

    wav_scp: Optional[Table]  # None: checked by streaming (sorted, see _validate_sorted)
    segments: Optional[dict]  # utt -> Segment
    segments_path: Optional[str]
    utts: list  # sorted (C order)
    #: name -> Table (UTT_TABLES / SPK_TABLES present), or the path of an utterance table checked
    #: by streaming: sorted, one line per utterance of ``utts`` (copied as it is read)
    tables: dict = field(default_factory=dict)


def _c_sorted(keys) -> list:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def validate_source(
    wav_scp: str,
    segments: Optional[str] = None,
    datadir: Optional[str] = None,
    set_name: Optional[str] = None,
) -> Source:
    """Check a source data dir before anything is dumped; the first problem is a DataError.

    Checks ``wav.scp`` (non-empty, see :func:`read_table`), ``segments`` (four fields,
    finite numbers, start >= 0, end after start or -1, its recording in ``wav.scp``,
    ids usable as file names) and, with ``datadir``, every utterance table (``text``,
    ``utt2spk``, ...): the same utterances as ``wav.scp``/``segments``, no more, no less.
    Unsorted files are accepted (the dump is written sorted, as after Kaldi's
    ``fix_data_dir.sh``), with and without ``segments`` alike.
    """
    set_name = set_name or os.path.basename(os.path.dirname(os.path.abspath(wav_scp)))
    if segments is None:
        fast = _validate_sorted(wav_scp, datadir)
        if fast is not None:
            return fast
    scp = read_table(wav_scp, what="recording id" if segments else "utterance id")
    if not scp.rows:
        raise DataError(f"set {set_name}: wav.scp is empty (no utterances to dump)", wav_scp)
    segs: Optional[dict] = None
    if segments:
        seg_table = read_table(segments, what="utterance id")
        if not seg_table.rows:
            raise DataError(f"set {set_name}: segments is empty (no utterances to dump)", segments)
        segs = {}
        for utt, (rest, no) in seg_table.rows.items():
            parts = rest.split()
            if len(parts) != 3:
                raise DataError(f"expected 'utt recording start end', got {len(parts) + 1} fields", segments, no)
            rec, a, b = parts
            try:
                start, end = float(a), float(b)
            except ValueError:
                raise DataError(f"start/end are not numbers: {a!r} {b!r}", segments, no) from None
            if not (np.isfinite(start) and np.isfinite(end)):
                raise DataError(f"start/end are not finite: {a!r} {b!r}", segments, no)
            if start < 0:
                raise DataError(f"set {set_name}, utt {utt}: segment start {start:g} s is negative", segments, no)
            if end != -1 and end <= start:
                raise DataError(f"set {set_name}, utt {utt}: segment end {end:g} s is not after its start {start:g} s", segments, no)
            if rec not in scp.rows:
                raise DataError(f"set {set_name}, utt {utt}: recording {rec!r} is not in {wav_scp}", segments, no)
            segs[utt] = Segment(utt, rec, start, None if end == -1 else end, no)
        used = {s.rec for s in segs.values()}
        unused = [r for r in scp.rows if r not in used]
        if unused:
            logger.warning("set %s: %d recording(s) of %s are used by no segment (e.g. %s)", set_name, len(unused), wav_scp, unused[0])
        utt_where = {u: (segments, s.line) for u, s in segs.items()}
    else:
        utt_where = {u: (wav_scp, no) for u, (_v, no) in scp.rows.items()}
    for utt, (path, no) in utt_where.items():
        why = _check_utt_id(utt)
        if why:
            raise DataError(f"set {set_name}: {why}", path, no)
    src = Source(scp, segs, segments, _c_sorted(utt_where))
    if datadir is None:
        return src
    listed_in = os.path.basename(segments) if segments else "wav.scp"
    for name in UTT_TABLES:
        path = os.path.join(datadir, name)
        if not os.path.isfile(path):
            continue
        t = read_table(path, allow_empty_value=(name == "text"), what="utterance id")
        for utt, (value, no) in t.rows.items():
            if utt not in utt_where:
                raise DataError(
                    f"set {set_name}: utterance {utt!r} is not in {listed_in} (ids must agree across files; "
                    "utils/fix_data_dir.sh keeps the common ones)",
                    path,
                    no,
                )
            if name == "utt2spk" and len(value.split()) != 1:
                raise DataError(f"expected 'utt speaker', got {len(value.split()) + 1} fields", path, no)
        for utt, (p, no) in utt_where.items():
            if utt not in t.rows:
                raise DataError(
                    f"set {set_name}: utterance {utt!r} ({os.path.basename(p)} line {no}) has no line in {name} "
                    "(ids must agree across files; utils/fix_data_dir.sh keeps the common ones)",
                    path,
                )
        src.tables[name] = t
    _read_spk_tables(src, datadir)
    return src


def _read_spk_tables(src: Source, datadir: str) -> None:
    """The speaker tables (spk2utt, ...) of ``datadir`` that exist, read and checked into ``src.tables``."""
    for name in SPK_TABLES:
        path = os.path.join(datadir, name)
        if os.path.isfile(path):
            src.tables[name] = read_table(path, what="speaker id")


def _validate_sorted(wav_scp: str, datadir: Optional[str]) -> Optional[Source]:
    """:func:`validate_source` without ``segments`` for the usual data dir, one line at a time:
    ``wav.scp`` and every utterance table sorted (C order, as after ``utils/fix_data_dir.sh``)
    with the same keys. Holds the sorted key list only (no per-utterance table). None when any
    check fails or a file is not sorted so: the full check then finds and names the problem."""
    utts: list = []
    prev = b""
    try:
        for key, _value, _no in iter_table(wav_scp):
            kb = key.encode("utf-8")
            if (utts and kb <= prev) or _check_utt_id(key):
                return None
            utts.append(key)
            prev = kb
    except DataError:
        return None
    if not utts:
        return None
    src = Source(None, None, None, utts)
    if datadir is None:
        return src
    for name in UTT_TABLES:
        path = os.path.join(datadir, name)
        if not os.path.isfile(path):
            continue
        i = 0
        try:
            for key, value, _no in iter_table(path, allow_empty_value=(name == "text")):
                if i >= len(utts) or key != utts[i] or (name == "utt2spk" and len(value.split()) != 1):
                    return None
                i += 1
        except DataError:
            return None
        if i != len(utts):
            return None
        src.tables[name] = path
    _read_spk_tables(src, datadir)
    return src


def _table_rows(t):
    """``(key, value)`` of a Source table: a Table, or the path of a streamed (checked) one."""
    if isinstance(t, Table):
        return ((k, v) for k, (v, _no) in t.rows.items())
    return ((k, v) for k, v, _no in iter_table(t, allow_empty_value=True))


def _write_sorted(path: str, rows) -> None:
    """Write rows already sorted (C order) as write_kv would, streaming."""
    with atomic_write(path) as f:
        for k, v in rows:
            f.write(f"{k} {v}\n" if v != "" else f"{k}\n")


def _source_of(wav_scp: str, segments: Optional[str], copy_data_dir: bool, set_name: Optional[str]) -> Source:
    datadir = os.path.dirname(os.path.abspath(wav_scp)) if copy_data_dir else None
    return validate_source(wav_scp, segments, datadir, set_name)


def dump_begin(
    wav_scp: str,
    dumpdir: str,
    nj: int,
    segments: Optional[str] = None,
    logdir: Optional[str] = None,
    copy_data_dir: bool = False,
    set_name: Optional[str] = None,
) -> int:
    """Stage 2, step 1: validate the source, clear old merged outputs, write the key list.

    Returns the number of jobs to run (``nj``, at most the number of utterances). A bad
    source raises :class:`DataError` before anything is written under ``dumpdir``.
    """
    set_name = set_name or os.path.basename(os.path.normpath(dumpdir))
    src = _source_of(wav_scp, segments, copy_data_dir, set_name)
    nj = max(1, min(int(nj), len(src.utts)))
    for name in DUMP_OUTPUTS:  # never leave an old merged list behind
        path = os.path.join(dumpdir, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.unlink(path)
    logdir = logdir or os.path.join(dumpdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    with atomic_write(os.path.join(logdir, KEYS_FILE)) as f:
        for u in src.utts:
            f.write(f"{u}\n")
    return nj


def failed_jobs_report(dumpdir: str, nj: int, logdir: Optional[str] = None, audiodir: Optional[str] = None, limit: int = 20) -> list:
    """Console lines for a failed ``${cmd}``: the bad utterances of every job, from their errors files.

    A job that failed without an errors file (it crashed or was killed) is named with its log.
    The last line says how many utterances failed and that ``wav.scp`` was not written.
    """
    set_name = os.path.basename(os.path.normpath(dumpdir))
    logdir = logdir or os.path.join(dumpdir, "logs")
    audiodir = audiodir or os.path.join(dumpdir, "data")
    errs: list = []
    crashed: list = []
    for n in range(1, nj + 1):
        part = os.path.join(audiodir, f"format.{n}")
        ef = os.path.join(part, ERRORS_FILE)
        if os.path.isfile(ef):
            with open(ef, encoding="utf-8", errors="replace") as f:
                errs += [ln.rstrip("\n") for ln in f if ln.strip()]
        elif not os.path.isfile(os.path.join(part, "wav.scp")):
            crashed.append(n)
    lines = [f"ERROR: {e}" for e in errs[:limit]]
    if len(errs) > limit:
        lines.append(f"... and {len(errs) - limit} more")
    for n in crashed:
        log = os.path.join(logdir, f"format_wav_scp.{n}.log")
        tail = ""
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                body = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
            err = [ln for ln in body if "ERROR" in ln or "Error" in ln]
            tail = (err or body or [""])[-1]
        except OSError:
            pass
        lines.append(f"ERROR: job {n} failed{': ' + tail if tail else ''} (log: {log})")
    what = f"{len(errs)} bad utterance(s) in set {set_name}" if errs else f"failed for set {set_name}"
    lines.append(f"format_wav_scp.sh: ERROR: {what}; {os.path.join(dumpdir, 'wav.scp')} not written. Logs: {logdir}/format_wav_scp.*.log")
    return lines


def dump_end(
    wav_scp: str,
    dumpdir: str,
    nj: int,
    fs: int,
    segments: Optional[str] = None,
    copy_data_dir: bool = False,
    audiodir: Optional[str] = None,
    set_name: Optional[str] = None,
    audio_format: str = "flac",
) -> int:
    """Stage 2, last step: merge the jobs' parts into ``dumpdir`` (every file atomically).

    Checks that the parts list every utterance of the source exactly once, copies the
    source's tables sorted (``spk2utt`` rebuilt from ``utt2spk``), writes
    ``utt2num_samples``, ``feats_type`` (raw), ``audio_format``, ``fs`` (:data:`DUMP_FS_FILE`) and, last,
    ``wav.scp``; then removes audio of earlier runs that ``wav.scp`` does not list.
    Returns the number of utterances.
    """
    set_name = set_name or os.path.basename(os.path.normpath(dumpdir))
    audiodir = audiodir or os.path.join(dumpdir, "data")
    src = _source_of(wav_scp, segments, copy_data_dir, set_name)
    parts = []
    for n in range(1, nj + 1):
        for name in ("wav.scp", "utt2num_samples"):
            p = os.path.join(audiodir, f"format.{n}", name)
            if not os.path.isfile(p):
                raise DataError(f"job {n} left no {name} (see its log)", p)
            parts.append(p)
    in_order = _parts_in_order(parts, src.utts)
    if not in_order:
        _check_parts(parts, src.utts, audiodir)  # the DataError that says what is wrong, if any
    os.makedirs(dumpdir, exist_ok=True)
    for name, t in src.tables.items():
        if isinstance(t, Table):
            write_kv(os.path.join(dumpdir, name), _table_rows(t))
        else:
            _write_sorted(os.path.join(dumpdir, name), _table_rows(t))
    if "utt2spk" in src.tables:
        _write_spk2utt(os.path.join(dumpdir, "spk2utt"), src)
    _merge(os.path.join(dumpdir, "utt2num_samples"), parts[1::2], in_order)
    with atomic_write(os.path.join(dumpdir, FEATS_TYPE_FILE)) as f:
        f.write("raw\n")
    with atomic_write(os.path.join(dumpdir, AUDIO_FORMAT_FILE)) as f:
        f.write(f"{audio_format}\n")
    with atomic_write(os.path.join(dumpdir, DUMP_FS_FILE)) as f:
        f.write(f"{int(fs)}\n")
    _merge(os.path.join(dumpdir, "wav.scp"), parts[0::2], in_order)  # last: its presence means "complete"
    _remove_unlisted(audiodir, nj)
    return len(src.utts)


def _write_spk2utt(path: str, src: Source) -> None:
    """``spk2utt`` from ``utt2spk`` (speakers sorted, each one's utterances in ``utts`` order).
    Streamed when the speakers come sorted along the sorted utterances (Kaldi's rule: the
    speaker id a prefix of the utterance id); otherwise through a table in memory."""
    t = src.tables["utt2spk"]
    if isinstance(t, Table):
        pairs = lambda: ((u, t.rows[u][0]) for u in src.utts)  # noqa: E731
    else:
        pairs = lambda: _table_rows(t)  # noqa: E731  (sorted, the keys are utts)
    prev = None
    in_order = True
    for _u, spk in pairs():
        b = spk.encode("utf-8")
        if prev is not None and b < prev:
            in_order = False
            break
        prev = b
    if not in_order:
        spk2utt: dict = {}
        for utt, spk in pairs():
            spk2utt.setdefault(spk, []).append(utt)
        write_kv(path, ((s, " ".join(us)) for s, us in spk2utt.items()))
        return
    with atomic_write(path) as f:
        cur, group = None, []
        for utt, spk in pairs():
            if spk != cur:
                if group:
                    f.write(f"{cur} {' '.join(group)}\n")
                cur, group = spk, []
            group.append(utt)
        if group:
            f.write(f"{cur} {' '.join(group)}\n")


def _parts_in_order(parts: list, utts: list) -> bool:
    """Whether the jobs' ``wav.scp``/``utt2num_samples`` parts (job order), read one after the
    other, list exactly ``utts`` (sorted) in order, as the split of the sorted key list makes
    them. Streams: no per-utterance table (see :func:`_check_parts` for what is wrong)."""
    for k in range(2):
        i = 0
        for p in parts[k::2]:
            for key, _v, _no in iter_kv(p):
                if i >= len(utts) or utts[i] != key:
                    return False
                i += 1
        if i != len(utts):
            return False
    return True


def _check_parts(parts: list, utts: list, audiodir: str) -> None:
    """Raise the DataError naming what is wrong with parts that :func:`_parts_in_order` refused
    (none when they hold the right utterances in another order: they are merged sorted)."""
    want = set(utts)
    for k, name in enumerate(("wav.scp", "utt2num_samples")):
        got: set = set()
        for p in parts[k::2]:
            for key, _v, no in iter_kv(p):
                if key in got:
                    raise DataError(f"utterance {key!r} written by two jobs", p, no)
                got.add(key)
        if got != want:
            extra = _c_sorted(got - want)
            missing = _c_sorted(want - got)
            raise DataError(
                f"the jobs' {name} parts do not match the utterances of the source "
                f"({len(missing)} missing, e.g. {missing[:1]}; {len(extra)} extra, e.g. {extra[:1]})",
                audiodir,
            )


def _merge(path: str, parts: list, in_order: bool) -> None:
    """Write the parts into ``path`` (atomically) sorted: one after the other when they come in
    order (streamed), else through a table sorted in memory."""
    if not in_order:
        write_kv(path, ((k, v) for p in parts for k, v, _no in iter_kv(p)))
        return
    with atomic_write(path) as f:
        for p in parts:
            for key, value, _no in iter_kv(p):
                f.write(f"{key} {value}\n")


def _part_files(d: str, part: str):
    """The files under folder ``d`` that the ``wav.scp`` part lists, as ``(path, name)`` (an ark once per entry)."""
    real_d = os.path.realpath(d)
    dirs: dict = {}  # parent folder as written -> whether it is ``d``
    if not os.path.isfile(part):
        return
    for _key, value, _no in iter_kv(part):
        path = value.rsplit(":", 1)[0] if is_ark(value) else value
        parent, name = os.path.split(path)
        if parent not in dirs:
            dirs[parent] = os.path.realpath(parent) == real_d
        if dirs[parent]:
            yield path, name


def _listed_count(d: str, part: str) -> Optional[int]:
    """How many distinct files under ``d`` the part lists, or None when one of them is gone."""
    n, arks = 0, set()
    for path, name in _part_files(d, part):
        if name.endswith(".ark"):
            if name in arks:
                continue
            arks.add(name)
        if not os.path.isfile(path):
            return None
        n += 1
    return n


def _remove_unlisted(audiodir: str, nj: int) -> None:
    """Delete audio under ``audiodir/format.*`` that ``wav.scp`` does not list (earlier runs).

    Folder ``format.J`` (J <= nj) holds what job J's part lists; the part's names are indexed
    only when the folder holds more audio files than the part lists (or a listed one is gone).
    """
    audio_ext = (".flac", ".wav", ".ark")
    stale = []
    for d in glob.glob(os.path.join(glob.escape(audiodir), "format.*")):
        if not os.path.isdir(d):
            continue
        j = d.rsplit("format.", 1)[1]
        part = os.path.join(d, "wav.scp")
        mine = j.isdigit() and 1 <= int(j) <= nj
        n_listed = _listed_count(d, part) if mine else 0
        with os.scandir(d) as it:
            n_files = sum(1 for e in it if e.is_file() and e.name.endswith(audio_ext))
        if n_files == n_listed:
            continue  # every listed file is there and there is no other: nothing stale
        names = {name for _path, name in _part_files(d, part)} if mine else set()
        with os.scandir(d) as it:
            stale += [e.path for e in it if e.is_file() and e.name.endswith(audio_ext) and e.name not in names]
    if stale:
        logger.info("removing %d audio file(s) of earlier runs not listed in wav.scp", len(stale))
    for p in stale:
        try:
            os.unlink(p)
        except OSError:
            pass
    for d in glob.glob(os.path.join(glob.escape(audiodir), "format.*")):
        n = d.rsplit("format.", 1)[1]
        if n.isdigit() and int(n) > nj and os.path.isdir(d):
            try:
                for name in os.listdir(d):
                    os.unlink(os.path.join(d, name))
                os.rmdir(d)
            except OSError:
                pass
