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
from espnet_cls.datacheck import Table, read_table
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

    recs = read_wav_scp(wav_scp)
    segs = read_segments(segments) if segments else None
    if keys is not None:
        utts = read_keys(keys)
    else:
        utts = list(segs) if segs is not None else list(recs)

    res = JobResult(n_total=len(utts))
    paths: dict[str, str] = {}
    cache = _PipeCache()
    ark = _ArkWriter(outdir, audio_format) if audio_format in ARK_AUDIO_FORMATS else None
    reuse = None if ark is not None else _Reuse(outdir, fs, audio_format)
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
        n = reuse.find(utt, out_path, tag, entry) if reuse is not None else None
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
            paths[utt], n_clip = ark.add(utt, y, fs)
        else:
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
    if ark is not None:
        ark.close(keep=not res.errors)
    if not res.errors:
        write_kv(out_wav_scp, ((u, paths[u]) for u in utts))
        write_kv(out_num_samples, ((u, str(res.num_samples[u])) for u in utts))
    else:
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

    wav_scp: Table
    segments: Optional[dict]  # utt -> Segment
    segments_path: Optional[str]
    utts: list  # sorted (C order)
    tables: dict = field(default_factory=dict)  # name -> Table (UTT_TABLES / SPK_TABLES present)


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
    for name in SPK_TABLES:
        path = os.path.join(datadir, name)
        if os.path.isfile(path):
            src.tables[name] = read_table(path, what="speaker id")
    return src


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
    paths: dict = {}
    nums: dict = {}
    for n in range(1, nj + 1):
        part = os.path.join(audiodir, f"format.{n}")
        for name, into in (("wav.scp", paths), ("utt2num_samples", nums)):
            p = os.path.join(part, name)
            if not os.path.isfile(p):
                raise DataError(f"job {n} left no {name} (see its log)", p)
            for k, v, no in iter_kv(p):
                if k in into:
                    raise DataError(f"utterance {k!r} written by two jobs", p, no)
                into[k] = v
    want = set(src.utts)
    for got, name in ((paths, "wav.scp"), (nums, "utt2num_samples")):
        if set(got) != want:
            extra = _c_sorted(set(got) - want)
            missing = _c_sorted(want - set(got))
            raise DataError(
                f"the jobs' {name} parts do not match the utterances of the source "
                f"({len(missing)} missing, e.g. {missing[:1]}; {len(extra)} extra, e.g. {extra[:1]})",
                audiodir,
            )
    os.makedirs(dumpdir, exist_ok=True)
    for name, t in src.tables.items():
        write_kv(os.path.join(dumpdir, name), ((k, v) for k, (v, _no) in t.rows.items()))
    if "utt2spk" in src.tables:
        spk2utt: dict = {}
        for utt in src.utts:
            spk2utt.setdefault(src.tables["utt2spk"].rows[utt][0], []).append(utt)
        write_kv(os.path.join(dumpdir, "spk2utt"), ((s, " ".join(us)) for s, us in spk2utt.items()))
    write_kv(os.path.join(dumpdir, "utt2num_samples"), nums.items())
    with atomic_write(os.path.join(dumpdir, FEATS_TYPE_FILE)) as f:
        f.write("raw\n")
    with atomic_write(os.path.join(dumpdir, AUDIO_FORMAT_FILE)) as f:
        f.write(f"{audio_format}\n")
    with atomic_write(os.path.join(dumpdir, DUMP_FS_FILE)) as f:
        f.write(f"{int(fs)}\n")
    write_kv(os.path.join(dumpdir, "wav.scp"), paths.items())  # last: its presence means "complete"
    _remove_unlisted(audiodir, nj, set(paths.values()))
    return len(paths)


def _remove_unlisted(audiodir: str, nj: int, listed: set) -> None:
    """Delete audio under ``audiodir/format.*`` that ``wav.scp`` does not list (earlier runs)."""
    listed_real = {os.path.realpath(p.rsplit(":", 1)[0] if is_ark(p) else p) for p in listed}
    stale = []
    for d in glob.glob(os.path.join(glob.escape(audiodir), "format.*")):
        if not os.path.isdir(d):
            continue
        with os.scandir(d) as it:
            for e in it:
                if e.is_file() and e.name.endswith((".flac", ".wav", ".ark")) and os.path.realpath(e.path) not in listed_real:
                    stale.append(e.path)
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
