"""Stage 2 worker: decode the utterances of one job and write them as mono ``fs`` audio.

One call of :func:`format_wav_scp` is one ``JOB`` of ``scripts/audio/format_wav_scp.sh``.
It reads the whole ``wav.scp`` (and ``segments``, if any) so that an error can name the
line of the *original* file, processes the keys of its part (``--keys``, a split of
``wav.scp`` or ``segments``), and writes

- ``<outdir>/<utt>.<flac|wav>`` — mono, 16-bit PCM, at ``fs``; each file atomically
  (temp name + rename), so an existing ``<utt>.<fmt>`` is always complete;
- ``<outdir>/wav.scp`` and ``<outdir>/utt2num_samples`` — this job's part, written only
  when every utterance of the job succeeded (the driver merges the parts).

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

import glob
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from espnet_cls.audio import (
    AUDIO_FORMATS,
    DEFAULT_MAX_OVERSHOOT,
    AudioError,
    SegmentError,
    audio_info_ok,
    check_samples,
    is_pipe,
    read_entry,
    resample,
    segment_frames,
    to_mono,
    write_audio,
)
from espnet_cls.fileio import DataError, iter_kv, write_kv

logger = logging.getLogger(__name__)


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
    num_samples: dict = field(default_factory=dict)


def read_segments(path: str) -> dict[str, Segment]:
    """Read ``utt rec start end`` lines (``end`` -1 = to the end). Bad lines -> DataError."""
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
        if utt in out:
            raise DataError(f"duplicate utterance id {utt!r}", path, line)
        out[utt] = Segment(utt, rec, start, None if end == -1 else end, line)
    return out


def read_wav_scp(path: str) -> dict[str, tuple[str, int]]:
    """Read ``key entry`` lines into ``{key: (entry, line)}``; a duplicate key is a DataError."""
    out: dict[str, tuple[str, int]] = {}
    for key, value, line in iter_kv(path):
        if key in out:
            raise DataError(f"duplicate key {key!r}", path, line)
        out[key] = (value, line)
    return out


def read_keys(path: str) -> list[str]:
    """First field of each non-empty line of ``path`` (a split part of wav.scp/segments)."""
    keys = []
    for key, _value, _line in iter_kv(path, allow_empty_value=True):
        keys.append(key)
    return keys


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
    another ``nj`` or added/removed lines) is moved here. Siblings are listed lazily, once.
    """

    def __init__(self, outdir: str, fs: int, audio_format: str) -> None:
        self.outdir = os.path.normpath(outdir)
        self.fs = fs
        self.fmt = audio_format
        self._siblings: Optional[dict[str, str]] = None

    def _sibling_index(self) -> dict[str, str]:
        if self._siblings is None:
            self._siblings = {}
            parent = os.path.dirname(os.path.abspath(self.outdir))
            me = os.path.abspath(self.outdir)
            suffix = "." + self.fmt
            for d in sorted(glob.glob(os.path.join(glob.escape(parent), "format.*"))):
                if os.path.abspath(d) == me or not os.path.isdir(d):
                    continue
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.endswith(suffix) and not e.name.startswith("."):
                            self._siblings.setdefault(e.name, e.path)
        return self._siblings

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
        other = self._sibling_index().get(os.path.basename(out_path))
        if other is None or not os.path.exists(other):
            return None
        n = audio_info_ok(other, self.fs, self.fmt, tag)
        if n is None or not self._fresh(other, entry):
            return None
        try:
            os.replace(other, out_path)  # keeps the mtime
        except OSError:
            return None
        return n


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
    if audio_format not in AUDIO_FORMATS:
        raise DataError(f"unknown audio format {audio_format!r} (choose from {', '.join(AUDIO_FORMATS)})")
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
    for stale in (out_wav_scp, out_num_samples):
        if os.path.exists(stale):
            os.unlink(stale)

    recs = read_wav_scp(wav_scp)
    segs = read_segments(segments) if segments else None
    if keys is not None:
        utts = read_keys(keys)
    else:
        utts = list(segs) if segs is not None else list(recs)

    res = JobResult(n_total=len(utts))
    paths: dict[str, str] = {}
    cache = _PipeCache()
    reuse = _Reuse(outdir, fs, audio_format)
    t0 = time.perf_counter()
    it = utts
    if show_progress:
        from tqdm import tqdm

        it = tqdm(utts, desc=os.path.basename(outdir), unit="clip")

    def fail(utt: str, cause: str, path: str, line: Optional[int]) -> None:
        err = DataError(f"set {set_name}, utt {utt}: {cause}", path, line)
        res.errors.append(err)
        logger.error("%s", err)

    for i, utt in enumerate(it, 1):
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
            rec = recs.get(utt)
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
        paths[utt] = out_path

        # reuse a complete output of an earlier run (in this job's folder, or moved from
        # another format.* folder when the split changed)
        tag = source_tag(entry, seg, max_overshoot)
        n = reuse.find(utt, out_path, tag, entry)
        if n is not None:
            res.num_samples[utt] = n
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
        try:
            check_samples(x)
            y = resample(to_mono(x), fs_in, fs)
            check_samples(y)
        except AudioError as e:
            fail(utt, f"{e}{rec_note}", *where)
            continue
        n_clip = write_audio(out_path, y, fs, audio_format, comment=tag)
        if n_clip:
            res.n_clipped_utts += 1
            logger.warning("set %s, utt %s: %d sample(s) clipped to the 16-bit range", set_name, utt, n_clip)
        res.num_samples[utt] = len(y)
        res.n_written += 1
        res.audio_seconds += len(y) / fs
        if log_every and i % log_every == 0 and not show_progress:
            dt = time.perf_counter() - t0
            logger.info("%s: %d/%d clips, %.1f clips/s", os.path.basename(outdir), i, len(utts), i / max(dt, 1e-9))

    res.elapsed = time.perf_counter() - t0
    if not res.errors:
        write_kv(out_wav_scp, ((u, paths[u]) for u in utts))
        write_kv(out_num_samples, ((u, str(res.num_samples[u])) for u in utts))
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
