"""Decoding ``wav.scp`` entries: a path or a Kaldi pipe, optional segment, mono, resampled.

A ``wav.scp`` value is either a file path, or a Kaldi pipe ``cmd args |`` whose stdout
is audio in any format libsndfile reads (wav 8/16/24/32-bit int and float, flac, ogg…).
Everything here returns float32 samples in [-1, 1) (integer formats are scaled by
soundfile) and raises :class:`AudioError` with a one-line cause for bad audio.

Main entry points::

    x, fs = load_audio("path/to/a.wav", fs=16000)               # mono float32 at 16 kHz
    x, fs = load_audio("sox a.wav -t wav - |", fs=None)          # native rate
    x, fs = load_audio("rec.flac", fs=16000, start=1.5, end=3.0) # a segment
    y = resample(x, 44100, 16000)

Resampling uses libsoxr (``soxr``, "HQ" quality). Measured with
``python bench/dump.py --resampler_check`` (10 s mono, 44.1 kHz -> 16 kHz, 1 thread, CPU
time): soxr HQ ~2 ms, 133 dB SNR on a 1 kHz tone, a 9 kHz tone (above the new Nyquist)
leaks at -144 dB; ``torchaudio.functional.resample`` with its defaults ~4 ms, 68 dB SNR
and only -17 dB alias rejection (its Kaiser "best" settings: ~9 ms, 113 dB). soxr is
faster and cleaner, and is a small, well-kept C library (the resampler behind sox and
ffmpeg's soxr option), so it is the one used here. See docs/benchmarks.md.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from typing import Any, Optional

import numpy as np
import soundfile as sf
import soxr

from espnet_cls.contract import PCM_BITS, PCM_MAX, PCM_MIN, PCM_SCALE

__all__ = [
    "AudioError",
    "SegmentError",
    "segment_frames",
    "is_pipe",
    "is_ark",
    "read_entry",
    "to_mono",
    "resample",
    "check_samples",
    "load_audio",
    "load_array",
    "write_audio",
    "audio_info_ok",
    "AUDIO_FORMATS",
]

#: default tolerance (seconds) for a segment whose end lies beyond the recording; as
#: Kaldi's ``extract-segments --max-overshoot`` (0.5 s): such segments are truncated.
DEFAULT_MAX_OVERSHOOT = 0.5

#: output formats: extension -> (libsndfile format, subtype)
AUDIO_FORMATS = {"flac": ("FLAC", f"PCM_{PCM_BITS}"), "wav": ("WAV", f"PCM_{PCM_BITS}")}
#: ESPnet's archive formats: the clips of a job in one Kaldi ark (each clip a flac/wav file,
#: kaldiio's "soundfile" write function), ``wav.scp`` pointing at ``<ark>:<byte offset>``
ARK_AUDIO_FORMATS = {"flac.ark": "flac", "wav.ark": "wav"}

_ARK_ENTRY = re.compile(r"^(?P<ark>.+\.ark):(?P<offset>\d+)$")


class AudioError(Exception):
    """A ``wav.scp`` entry that cannot be turned into audio; ``str()`` is the cause."""


class SegmentError(AudioError):
    """A segment (start/end) that does not fit its recording; ``str()`` is the cause."""


def is_pipe(entry: str) -> bool:
    """True for a Kaldi pipe entry (``cmd args |``)."""
    return entry.rstrip().endswith("|")


def _run_pipe(entry: str) -> bytes:
    """Run the command of a pipe entry; return its stdout. Non-zero exit -> AudioError."""
    cmd = entry.rstrip()[:-1].strip()
    if not cmd:
        raise AudioError("empty pipe command")
    try:
        proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
    except OSError as e:  # pragma: no cover - /bin/sh missing
        raise AudioError(f"cannot run pipe command {cmd!r}: {e}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = f": {err[-1].strip()}" if err else ""
        how = f"exit status {proc.returncode}" if proc.returncode > 0 else f"signal {-proc.returncode}"
        shown = cmd if len(cmd) <= 200 else cmd[:200] + "…"
        raise AudioError(f"pipe command failed ({how}){tail}: {shown}")
    if not proc.stdout:
        raise AudioError(f"pipe command wrote no data: {cmd}")
    return proc.stdout


def _fix_streamed_wav(data: bytes) -> bytes:
    """Patch the sizes of a RIFF/WAVE stream written to a pipe (sizes unknown: 0 or too large).

    Tools that write WAV to a pipe cannot seek back to fill in the sizes; libsndfile
    copes with 0xFFFFFFFF but reads a data size of 0 as an empty file. Here the RIFF and
    ``data`` sizes are set to what the stream really holds. Other data is returned as is.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            actual = len(data) - (pos + 8)
            if size == 0 or size > actual:
                buf = bytearray(data)
                buf[4:8] = min(len(data) - 8, 0xFFFFFFFF).to_bytes(4, "little")
                buf[pos + 4 : pos + 8] = min(actual, 0xFFFFFFFF).to_bytes(4, "little")
                return bytes(buf)
            return data
        pos += 8 + size + (size & 1)
    return data


def segment_frames(n: int, fs: int, start: float, end: Optional[float], max_overshoot: float) -> tuple[int, int]:
    """Frame range [a, b) of the segment ``start``..``end`` seconds in ``n`` frames at ``fs``.

    ``end`` None or -1 means "to the end". An end beyond the recording by at most
    ``max_overshoot`` seconds is truncated (as Kaldi's extract-segments); beyond that, a
    negative start, an end not after the start, or a start at/after the end of the
    recording is a :class:`SegmentError`.
    """
    dur = n / fs
    if start < 0:
        raise SegmentError(f"segment start {start:g} s is negative")
    a = int(round(start * fs))
    if a >= n:
        raise SegmentError(f"segment start {start:g} s is at or beyond the end of the recording ({dur:.3f} s long)")
    if end is None or end == -1:
        b = n
    else:
        if end <= start:
            raise SegmentError(f"segment end {end:g} s is not after its start {start:g} s")
        b = int(round(end * fs))
        if b > n:
            if end - dur > max_overshoot:
                raise SegmentError(
                    f"segment {start:g}-{end:g} s ends beyond the recording ({dur:.3f} s long) "
                    f"by {end - dur:.3f} s (more than the {max_overshoot:g} s tolerated)"
                )
            b = n
    return a, b


def is_ark(entry: str) -> bool:
    """True for a Kaldi ark entry (``path.ark:offset``), as stage 2 writes for ``--audio_format flac.ark``."""
    return bool(_ARK_ENTRY.match(entry.strip()))


def _read_ark(entry: str) -> tuple[np.ndarray, int]:
    """Decode an audio clip stored in a Kaldi ark (kaldiio), as ``[frames, channels]`` float32."""
    import kaldiio

    path = _ARK_ENTRY.match(entry).group("ark")
    if not os.path.exists(path):
        raise AudioError(f"ark file not found: {path}")
    try:
        obj = kaldiio.load_mat(entry)
    except Exception as e:  # noqa: BLE001 - kaldiio raises many types for a bad ark
        raise AudioError(f"cannot read ark entry {entry}: {type(e).__name__}: {e}") from None
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise AudioError(f"ark entry {entry} holds a Kaldi matrix, not audio (stage 2 writes flac.ark / wav.ark)")
    a, b = obj
    rate, x = (a, b) if isinstance(b, np.ndarray) else (b, a)
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    return x, int(rate)


def read_entry(
    entry: str,
    start: float = 0.0,
    end: Optional[float] = None,
    max_overshoot: float = DEFAULT_MAX_OVERSHOOT,
) -> tuple[np.ndarray, int]:
    """Decode one ``wav.scp`` value (path, pipe or ``ark:offset``), optionally only ``start``..``end`` s.

    Returns ``(x, fs)`` with ``x`` float32 of shape ``[frames, channels]`` at the file's
    own rate. A path is read with seeking (only the segment is decoded); a pipe's output is
    decoded whole, then cut. Raises :class:`AudioError` (missing/unreadable file, failing
    pipe) or its subclass :class:`SegmentError` (segment outside the recording).
    """
    if is_ark(entry):
        x, fs = _read_ark(entry.strip())
        if start == 0.0 and (end is None or end == -1):
            return x, fs
        a, b = segment_frames(len(x), fs, start, end, max_overshoot)
        return x[a:b], fs
    if is_pipe(entry):
        data = _fix_streamed_wav(_run_pipe(entry))
        try:
            x, fs = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise AudioError(f"cannot decode the pipe's output ({len(data)} bytes): {e}") from None
        if start == 0.0 and (end is None or end == -1):
            return x, int(fs)
        a, b = segment_frames(len(x), int(fs), start, end, max_overshoot)
        return x[a:b], int(fs)

    path = entry.strip()
    if not os.path.exists(path):
        raise AudioError(f"file not found: {path}")
    if os.path.isdir(path):
        raise AudioError(f"is a directory, not an audio file: {path}")
    try:
        with sf.SoundFile(path) as f:
            fs = int(f.samplerate)
            n = f.frames
            if start == 0.0 and (end is None or end == -1):
                a, b = 0, n
            else:
                a, b = segment_frames(n, fs, start, end, max_overshoot)
            if a:
                f.seek(a)
            x = f.read(b - a, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioError(f"cannot read audio file {path}: {e}") from None
    return x, fs


def to_mono(x: np.ndarray) -> np.ndarray:
    """Downmix ``[frames, channels]`` (or ``[frames]``) to ``[frames]`` by averaging channels."""
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    if x.shape[1] == 1:
        return np.ascontiguousarray(x[:, 0], dtype=np.float32)
    # a running sum over the channel columns: ~30x faster than x.mean(axis=1) on [T, C]
    y = np.array(x[:, 0], dtype=np.float32)
    for c in range(1, x.shape[1]):
        y += x[:, c]
    y *= np.float32(1.0 / x.shape[1])
    return y


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Resample float audio ``[frames]`` or ``[frames, channels]`` from ``fs_in`` to ``fs_out``.

    libsoxr "HQ" (see the module docstring for why). The output has
    ``round(frames * fs_out / fs_in)`` frames (±1); returns ``x`` itself when the rates match.
    """
    if int(fs_in) == int(fs_out):
        return x
    if len(x) == 0:
        return x
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), int(fs_in), int(fs_out), quality="HQ")
    return y.astype(np.float32, copy=False)


def check_samples(x: np.ndarray) -> None:
    """AudioError when ``x`` has no samples or holds NaN/Inf values."""
    if x.size == 0:
        raise AudioError("zero samples")
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioError(f"{bad} NaN/Inf sample(s)")


def load_audio(
    entry: str,
    fs: Optional[int] = None,
    start: float = 0.0,
    end: Optional[float] = None,
    max_overshoot: float = DEFAULT_MAX_OVERSHOOT,
) -> tuple[np.ndarray, int]:
    """Decode a ``wav.scp`` value into mono float32 at ``fs`` (None: the file's own rate).

    ``start``/``end`` (seconds; ``end`` None or -1 = to the end) select a segment as in a
    Kaldi ``segments`` file. Returns ``(x [frames] float32, fs)``. Raises
    :class:`AudioError` for unreadable input, zero samples or NaN/Inf samples.
    """
    x, fs_in = read_entry(entry, start, end, max_overshoot)
    check_samples(x)
    y = to_mono(x)
    if fs is not None:
        y = resample(y, fs_in, int(fs))
        fs_in = int(fs)
    check_samples(y)
    return y, fs_in


def load_array(audio: Any, sample_rate: int, fs: Optional[int] = None) -> np.ndarray:
    """An in-memory clip as mono float32 at ``fs`` (None: ``sample_rate``), as :func:`load_audio` does for files.

    ``audio``: ``[frames]``, ``[frames, channels]`` or ``[channels, frames]`` (up to 8
    channels, fewer than frames), numpy or torch. Integer PCM is scaled as libsndfile
    scales it when it decodes a file (``int16 / 32768``, ``int32 / 2**31``, ``uint8``:
    ``(x - 128) / 128``), so an array and the file it came from give the same samples.
    Raises :class:`AudioError` for a bad shape, no samples or NaN/Inf.
    """
    if hasattr(audio, "detach"):  # torch tensor
        audio = audio.detach().cpu().numpy()
    x = np.asarray(audio)
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:  # [channels, frames]
        x = x.T
    if x.ndim not in (1, 2):
        raise AudioError(f"audio array must be [frames] or [frames, channels], got shape {x.shape}")
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)
    elif not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"audio array must hold numbers, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float32)
    check_samples(x)
    y = to_mono(x)
    if fs is not None:
        y = resample(y, int(sample_rate), int(fs))
    check_samples(y)
    return np.ascontiguousarray(y, dtype=np.float32)


def write_audio(path: str, x: np.ndarray, fs: int, audio_format: str = "flac", comment: Optional[str] = None) -> int:
    """Write mono float audio as 16-bit PCM ``flac`` or ``wav``, atomically.

    Samples are scaled by 32768, rounded and clipped to the int16 range (so nothing
    wraps around); the file is written to a temp name in the same folder and renamed,
    so ``path`` either does not exist or is complete. ``comment`` is stored in the file's
    metadata (FLAC vorbis comment / WAV INFO chunk). Returns the number of clipped samples.
    """
    fmt, subtype = AUDIO_FORMATS[audio_format]
    scaled = np.round(np.asarray(x, dtype=np.float64) * PCM_SCALE)
    n_clipped = int(np.count_nonzero((scaled > PCM_MAX) | (scaled < PCM_MIN)))
    pcm = np.clip(scaled, PCM_MIN, PCM_MAX).astype(np.int16)
    # encode in memory: soundfile's close() on a real file calls fsync(), which costs
    # ~10 ms per clip on a busy disk (far more on NFS); temp + rename is what makes the
    # file appear complete or not at all
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", int(fs), 1, subtype, format=fmt) as f:
        if comment:
            f.comment = comment
        f.write(pcm)
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(buf.getbuffer())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return n_clipped


def audio_info_ok(path: str, fs: int, audio_format: str, comment: Optional[str] = None) -> Optional[int]:
    """Frames of ``path`` if it is a complete mono 16-bit ``audio_format`` file at ``fs``
    (and, when given, its metadata comment equals ``comment``); None otherwise."""
    fmt, subtype = AUDIO_FORMATS[audio_format]
    try:
        with sf.SoundFile(path) as f:
            ok = f.format == fmt and f.subtype == subtype and f.channels == 1 and int(f.samplerate) == int(fs)
            ok = ok and f.frames > 0 and (comment is None or f.comment == comment)
            return int(f.frames) if ok else None
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
