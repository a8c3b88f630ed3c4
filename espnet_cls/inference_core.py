"""The torch-free part of stage-7 inference: batching plan, windows, audio reading, output files.

Both stage-7 backends use it: :class:`espnet_cls.inference.BatchInference` (PyTorch: ``eager`` and
``jit``) and :class:`espnet_cls.onnx_inference.OnnxInference` (ONNX Runtime, a job that never imports
torch). A backend is a :class:`SegmentScorer` with its own ``_forward(waves) -> probs``; everything
else here (length-sorted batches, windows of long clips and their aggregation, ``wav.scp`` reading with
decoding ahead in a thread, the decision rule of :mod:`espnet_cls.contract` and the
``prediction/{text,score,token}`` files) is shared, so both backends write the same files.

Imports: numpy, soundfile, soxr (through :mod:`espnet_cls.audio`) and the package's torch-free modules.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from espnet_cls.contract import MULTI_LABEL, decided_ids
from espnet_cls.fileio import DataError, PathLike, atomic_write, iter_kv

logger = logging.getLogger(__name__)

#: ``--dtype`` choices of stage 7 (the onnx backend runs float32 only)
DTYPE_NAMES = ("bfloat16", "float16", "float32", "float64")
#: longest batch (seconds) a traced graph (the jit backend, the ONNX export) scores; longer ones run the
#: eager PyTorch model (the transformer's positional table was traced at 5000 frames: 200 s at hop 10 ms)
MAX_TRACED_SEC = 120.0
#: clips per forward pass when ``cls_inference --batch_size`` is not given, per backend: ONNX Runtime is
#: fastest one clip at a time on CPU (batch 4 took 1.09-1.16x the CPU of batch 1 for every model, with
#: the spectrum-input graph; docs/benchmarks.md, stage-7 section), PyTorch a few at a time
DEFAULT_BATCH_SIZE = {"onnx": 1, "jit": 4, "eager": 4}

# --------------------------------------------------------------------------- batching


def window_bounds(n: int, win: Optional[int], hop: Optional[int]) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample ranges covering a clip of ``n`` samples.

    No window, or a clip no longer than it: the whole clip. Otherwise windows of ``win``
    every ``hop`` samples; when they do not reach the end, one more window ends at ``n``.
    """
    if not win or n <= win:
        return [(0, n)]
    hop = hop or win
    starts = list(range(0, n - win + 1, hop))
    if starts[-1] + win < n:
        starts.append(n - win)
    return [(s, s + win) for s in starts]


def length_sorted_batches(lengths: Sequence[int], batch_size: int, batch_bins: int = 0) -> list[list[int]]:
    """Indices grouped into batches, longest first (little padding).

    A batch holds at most ``batch_size`` items and, if ``batch_bins > 0``, at most
    ``batch_bins`` padded samples (``len(longest) * n_items``; a single longer item
    still forms its own batch).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= batch_size or (batch_bins > 0 and longest * (len(cur) + 1) > batch_bins)):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@dataclass
class _Segment:
    clip: int  # index of the clip it belongs to
    start: int
    end: int


class SegmentScorer:
    """Scores clips (1-D float arrays at the model's rate) in length-sorted batches.

    Subclasses implement ``_forward(waves) -> np.ndarray [B, n_classes]`` (float64) for one batch.

    Args:
        fs: sampling rate of the clips (for the window length in samples).
        batch_size: segments per forward pass; batch_bins: if > 0, also at most this many
            padded samples per forward pass (bounds memory for long clips).
        window_sec, hop_sec: split clips longer than ``window_sec`` (``hop_sec`` default:
            ``window_sec``), aggregate with ``window_aggregation`` (``mean`` | ``max``).
    """

    def __init__(
        self,
        fs: int = 16000,
        batch_size: int = 16,
        window_sec: Optional[float] = None,
        hop_sec: Optional[float] = None,
        window_aggregation: str = "mean",
        batch_bins: int = 0,
    ) -> None:
        if window_aggregation not in ("mean", "max"):
            raise ValueError(f"window_aggregation must be mean or max, got {window_aggregation!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if window_sec is not None and window_sec <= 0:
            raise ValueError("window_sec must be > 0")
        if hop_sec is not None and hop_sec <= 0:
            raise ValueError("hop_sec must be > 0")
        self.fs = int(fs)
        self.batch_size = int(batch_size)
        self.batch_bins = int(batch_bins)
        self.win = int(round(window_sec * fs)) if window_sec else None
        self.hop = int(round(hop_sec * fs)) if (hop_sec and window_sec) else None
        self.window_aggregation = window_aggregation

    def _forward(self, waves: Sequence[np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def segments(self, lengths: Sequence[int]) -> list[_Segment]:
        """The windows of every clip (one per clip without windowing)."""
        return [_Segment(i, a, b) for i, n in enumerate(lengths) for a, b in window_bounds(int(n), self.win, self.hop)]

    def predict(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``[N, n_classes]`` for in-memory clips."""
        return self.predict_iter(len(waves), [len(w) for w in waves], lambda i: waves[i])

    def predict_iter(
        self,
        n_clips: int,
        lengths: Sequence[int],
        get_wave: Callable[[int], np.ndarray],
        on_batch: Optional[Callable[[int], None]] = None,
    ) -> np.ndarray:
        """Probabilities ``[N, C]`` for clips fetched lazily by index.

        ``lengths`` (samples) plan the batches and windows; ``get_wave(i)`` reads clip ``i``
        when its first batch is due (it is kept until its last window is scored). A clip
        scored whole uses its real length even if the plan differs (e.g. by a resampling
        rounding). ``on_batch(n_segments)`` is called after each forward pass (progress).
        """
        if len(lengths) != n_clips:
            raise ValueError("need one length per clip")
        if n_clips == 0:
            return np.zeros((0, 0))
        segs = self.segments(lengths)
        seg_len = [s.end - s.start for s in segs]
        batches = length_sorted_batches(seg_len, self.batch_size, self.batch_bins)
        out: Optional[np.ndarray] = None
        count = np.zeros(n_clips, dtype=np.int64)
        cache: dict[int, np.ndarray] = {}
        n_segs = np.bincount([s.clip for s in segs], minlength=n_clips)
        remaining = n_segs.copy()
        for batch in batches:
            waves = []
            for j in batch:
                s = segs[j]
                if s.clip not in cache:
                    cache[s.clip] = get_wave(s.clip)
                w = cache[s.clip]
                if n_segs[s.clip] == 1:
                    waves.append(w)  # a clip scored whole: its real length, whatever the plan said
                else:
                    piece = w[s.start : s.end]
                    waves.append(piece if len(piece) else w[-(s.end - s.start) :])
            p = self._forward(waves)
            if out is None:
                out = np.full((n_clips, p.shape[1]), -np.inf if self.window_aggregation == "max" else 0.0)
            for row, j in zip(p, batch):
                c = segs[j].clip
                if self.window_aggregation == "max":
                    np.maximum(out[c], row, out=out[c])
                else:
                    out[c] += row
                count[c] += 1
                remaining[c] -= 1
                if remaining[c] == 0:
                    cache.pop(c, None)
            if on_batch is not None:
                on_batch(len(batch))
        if out is None:
            return np.zeros((0, 0))
        if self.window_aggregation == "mean":
            out /= np.maximum(count, 1)[:, None]
        return out


def pad_waves(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad 1-D arrays into ``speech [B, T]`` float32 and ``lengths [B]`` int64 (numpy)."""
    lens = np.array([len(w) for w in waves], dtype=np.int64)
    speech = np.zeros((len(waves), int(lens.max()) if len(waves) else 0), dtype=np.float32)
    for i, w in enumerate(waves):
        speech[i, : len(w)] = w
    return speech, lens


# --------------------------------------------------------------------------- decisions / writing


def _fmt_row(values: Iterable[float]) -> str:
    return " ".join(f"{v:.7g}" for v in values)


def write_predictions(
    output_dir: PathLike,
    keys: Sequence[str],
    probs: np.ndarray,
    predicted: Sequence[Sequence[int]],
    class_names: Sequence[str],
    output_all_probabilities: bool = True,
) -> None:
    """Write ``output_dir/prediction/{text,score,token}``, sorted by key (C locale), atomically."""
    pred_dir = Path(output_dir) / "prediction"
    order = sorted(range(len(keys)), key=lambda i: keys[i].encode("utf-8"))
    with atomic_write(pred_dir / "text") as ft, atomic_write(pred_dir / "score") as fs, atomic_write(pred_dir / "token") as fk:
        for i in order:
            ids = predicted[i]
            labels = " ".join(class_names[k] for k in ids)
            scores = _fmt_row(probs[i]) if output_all_probabilities else _fmt_row(probs[i, ids])
            ft.write(f"{keys[i]} {labels}\n" if labels else f"{keys[i]}\n")
            fs.write(f"{keys[i]} {scores}\n" if scores else f"{keys[i]}\n")
            tok = " ".join(str(k) for k in ids)
            fk.write(f"{keys[i]} {tok}\n" if tok else f"{keys[i]}\n")


# --------------------------------------------------------------------------- data


def read_keys(key_file: PathLike) -> list[str]:
    """First column of a key file (e.g. ``keys.JOB.scp`` from ``split_scp.pl``)."""
    keys = []
    seen = set()
    for key, _value, lineno in iter_kv(key_file, allow_empty_value=True):
        if key in seen:
            raise DataError(f"duplicate key {key!r}", key_file, lineno)
        seen.add(key)
        keys.append(key)
    return keys


class ScpAudio:
    """Lazy reader of a ``wav.scp`` (paths or ``cmd |`` pipes), resampling to ``fs``.

    ``lengths(keys)`` plans batches from ``utt2num_samples`` beside the ``wav.scp`` when
    present (a dump dir), else from the file headers; a pipe is decoded to learn its length.
    """

    def __init__(self, wav_scp: PathLike, fs: int) -> None:
        self.path = str(wav_scp)
        self.fs = int(fs)
        self.entries: dict[str, tuple[str, int]] = {}
        for key, value, lineno in iter_kv(wav_scp):
            if key in self.entries:
                raise DataError(f"duplicate key {key!r}", wav_scp, lineno)
            self.entries[key] = (value, lineno)

    def check_keys(self, keys: Iterable[str], key_file: Optional[PathLike] = None) -> None:
        for k in keys:
            if k not in self.entries:
                raise DataError(f"key {k!r} is not in {self.path}", key_file)

    def read(self, key: str) -> np.ndarray:
        from espnet_cls.audio import AudioError, load_audio

        value, lineno = self.entries[key]
        try:
            x, _ = load_audio(value, self.fs)
        except AudioError as e:
            raise DataError(str(e), self.path, lineno) from None
        return x

    def lengths(self, keys: Sequence[str]) -> list[int]:
        import soundfile as sf

        u2n = Path(self.path).parent / "utt2num_samples"
        known: dict[str, int] = {}
        if u2n.is_file():
            for key, value, lineno in iter_kv(u2n):
                try:
                    known[key] = int(value)
                except ValueError:
                    raise DataError(f"not an integer: {value!r}", u2n, lineno) from None
        out = []
        for k in keys:
            if k in known:
                out.append(known[k])
                continue
            value, lineno = self.entries[k]
            n = None
            if not value.rstrip().endswith("|"):
                try:
                    info = sf.info(value.strip())
                    n = int(round(info.frames * self.fs / info.samplerate))
                except Exception:  # unreadable: read() will report it with file and line
                    n = None
            out.append(len(self.read(k)) if n is None else n)
        return out


def iter_triples(specs: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """ESPnet ``path,name,type`` triples."""
    for spec in specs:
        parts = spec.rsplit(",", 2)
        if len(parts) != 3:
            raise DataError(f"--data_path_and_name_and_type: expected PATH,NAME,TYPE, got {spec!r}")
        yield parts[0], parts[1], parts[2]


def speech_scp(data_path_and_name_and_type: Sequence[str]) -> str:
    """The ``wav.scp`` of the ``PATH,speech,TYPE`` entry (type ``sound`` or ``kaldi_ark``)."""
    speech = [t for t in iter_triples(data_path_and_name_and_type) if t[1] == "speech"]
    if not speech:
        raise DataError("--data_path_and_name_and_type: need a PATH,speech,sound entry")
    wav_scp, _name, typ = speech[0]
    if typ not in ("sound", "kaldi_ark"):  # kaldi_ark: ark:offset entries, read by espnet_cls.audio
        raise DataError(f"--data_path_and_name_and_type: type {typ!r} is not supported (use sound or kaldi_ark)")
    return wav_scp


def score_scp(
    wav_scp: PathLike,
    output_dir: PathLike,
    engine: SegmentScorer,
    class_names: Sequence[str],
    classification_type: str,
    key_file: Optional[PathLike] = None,
    threshold: float = 0.5,
    threshold_file: Optional[PathLike] = None,
    output_all_probabilities: bool = True,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Score the clips of ``wav_scp`` (or those of ``key_file``) with ``engine``; write
    ``output_dir/prediction/{text,score,token}``. Returns ``{"n_clips", "seconds", "clips_per_sec", "audio_sec"}``."""
    fs = engine.fs
    thr: Union[float, np.ndarray] = threshold
    if threshold_file is not None:
        from espnet_cls.scoring import read_threshold_file

        if classification_type != MULTI_LABEL:
            logger.info("--threshold_file is ignored for a multi-class model (argmax)")
        thr = read_threshold_file(threshold_file, class_names, default=threshold)

    audio = ScpAudio(wav_scp, fs)
    keys = read_keys(key_file) if key_file is not None else list(audio.entries)
    audio.check_keys(keys, key_file)
    lengths = audio.lengths(keys)
    window_sec = engine.win / fs if engine.win else None
    logger.info(
        "%d clips (%.1f s of audio) from %s, %s model, batch_size %d%s",
        len(keys),
        sum(lengths) / fs,
        wav_scp,
        classification_type,
        engine.batch_size,
        f", windows of {window_sec:g} s ({engine.window_aggregation})" if window_sec else "",
    )
    get_wave = prefetching_reader(audio, keys, engine, lengths, num_workers)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(engine.segments(lengths)), unit="clip" if not window_sec else "window", leave=False)
    t0 = time.perf_counter()
    try:
        probs = engine.predict_iter(len(keys), lengths, get_wave, on_batch=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    dt = time.perf_counter() - t0
    if not keys:
        probs = np.zeros((0, len(class_names)))
    predicted = decided_ids(probs, classification_type, thr)
    write_predictions(output_dir, keys, probs, predicted, class_names, output_all_probabilities)
    stats = {
        "n_clips": len(keys),
        "seconds": dt,
        "clips_per_sec": len(keys) / dt if dt > 0 else float("inf"),
        "audio_sec": sum(lengths) / fs,
    }
    logger.info(
        "Scored %d clips in %.2f s: %.1f clips/s (%.1f× real time); wrote %s/prediction/{text,score,token}",
        len(keys),
        dt,
        stats["clips_per_sec"],
        stats["audio_sec"] / dt if dt > 0 else float("inf"),
        output_dir,
    )
    return stats

def prefetching_reader(
    audio: ScpAudio, keys: Sequence[str], engine: SegmentScorer, lengths: Sequence[int], num_workers: int
) -> Callable[[int], np.ndarray]:
    """``get_wave(i)``; with ``num_workers > 0`` clips are decoded ahead by a thread pool,
    in the order the batches will ask for them (decoding releases the GIL)."""
    if num_workers <= 0:
        return lambda i: audio.read(keys[i])
    from concurrent.futures import ThreadPoolExecutor

    segs = engine.segments(lengths)
    order: list[int] = []
    seen: set[int] = set()
    for batch in length_sorted_batches([s.end - s.start for s in segs], engine.batch_size, engine.batch_bins):
        for j in batch:
            c = segs[j].clip
            if c not in seen:
                seen.add(c)
                order.append(c)
    pool = ThreadPoolExecutor(max_workers=num_workers)
    futures: dict[int, Any] = {}
    ahead = max(2 * engine.batch_size, 8)
    pos = [0]

    def fill(upto: int) -> None:
        while pos[0] < min(upto, len(order)):
            c = order[pos[0]]
            futures[c] = pool.submit(audio.read, keys[c])
            pos[0] += 1

    rank = {c: r for r, c in enumerate(order)}

    def get(i: int) -> np.ndarray:
        fill(rank[i] + 1 + ahead)
        w = futures.pop(i).result()
        if pos[0] >= len(order) and not futures:
            pool.shutdown(wait=False)
        return w

    return get
