"""Batched inference (stage 7): clips -> class probabilities -> ``prediction/{text,score}``.

ESPnet's ``cls_inference`` scores one clip at a time. Here clips are grouped into
length-sorted batches (little padding) and the model's masks make the result of a
padded batch equal to per-clip calls (``tests/test_inference.py`` checks batch 32 ==
batch 1 to 1e-5 with the CNN and transformer encoders).

Python API::

    model, config = load_inference_model("exp/cls_X/config.yaml", "exp/cls_X/valid.acc.best.pth")
    engine = BatchInference(model, fs=model_facts(config).fs, batch_size=16)
    probs = engine.predict(list_of_float32_arrays)            # [N, n_classes] float64
    labels = decided_ids(probs, model.classification_type)    # per clip: list of class ids
    # (model_facts, decided_ids: espnet_cls.contract)

Long clips: with ``window_sec`` every clip longer than the window is cut into windows
of ``window_sec`` every ``hop_sec`` (the last one aligned to the clip's end), each window
is scored, and the clip's probabilities are the ``mean`` or ``max`` over its windows.
Clips no longer than the window are scored whole (never padded).

Output files (SPEC "File formats"), sorted by uttid in C locale, written atomically:
``prediction/text`` (``uttid label…``: argmax for multi-class; every class with
probability ≥ its threshold for multi-label, possibly none -> ``uttid`` alone),
``prediction/score`` (all ``n_classes`` probabilities in token-list order, or only the
predicted classes' when ``output_all_probabilities`` is false) and ``prediction/token``
(the predicted class ids, as ESPnet).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from espnet_cls.contract import MULTI_LABEL, decided_ids, model_facts
from espnet_cls.fileio import DataError, PathLike, atomic_write, iter_kv

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# --------------------------------------------------------------------------- model


def load_inference_model(
    train_config: Optional[PathLike] = None,
    model_file: Optional[PathLike] = None,
    packed_model: Optional[PathLike] = None,
    device: Union[str, torch.device] = "cpu",
    unpack_dir: Optional[PathLike] = None,
) -> tuple[torch.nn.Module, dict]:
    """Load a model for inference, in eval mode on ``device``; returns ``(model, config)``.

    Either ``train_config`` (+ ``model_file``, a ``.pth`` state_dict or ``.safetensors``),
    or ``packed_model`` (a stage-9 ``.zip``, unpacked with :func:`espnet_cls.pack.unpack`
    into ``unpack_dir``, or into a temporary folder removed once the model is loaded).
    """
    from espnet_cls import espnet
    from espnet_cls.tasks.cls import load_model

    # models trained by real ESPnet (exp/cls_X/config.yaml + .pth, or its packed zip)
    if packed_model is not None and espnet.zip_is_espnet(packed_model):
        return espnet.load_espnet_model(packed_model, device=device)
    if packed_model is None and train_config is not None and model_file is not None and os.path.isfile(train_config) \
            and espnet.is_espnet_weights(model_file):
        return espnet.load_espnet_model(train_config, model_file=model_file, device=device)
    if packed_model is not None:
        try:
            from espnet_cls import pack
        except ImportError:  # pragma: no cover - pack is part of the package
            raise DataError("cannot load a packed model: espnet_cls.pack is missing", packed_model) from None
        with tempfile.TemporaryDirectory(prefix="espnet_cls_model_") as tmp:
            outdir = str(unpack_dir) if unpack_dir is not None else tmp
            pack.unpack(packed_model, outdir)
            config, _meta = pack.load_packed_config(outdir)
            weights = Path(outdir) / pack.WEIGHTS
            try:  # everything is read into memory here, so the temporary folder may go
                return load_model(config, weights, device=device)
            except (ValueError, RuntimeError, KeyError) as e:
                raise DataError(f"cannot load the packed model: {e}", packed_model) from None
    if train_config is None:
        raise DataError("need --classification_train_config (with --classification_model_file) or --model_file")
    if model_file is not None and not os.path.isfile(model_file):
        raise DataError("model file not found", model_file)
    if not os.path.isfile(train_config):
        raise DataError("config not found", train_config)
    try:
        return load_model(train_config, model_file, device=device)
    except (ValueError, RuntimeError, KeyError) as e:  # bad config keys, weights that do not fit
        raise DataError(f"cannot load the model ({model_file}): {e}", train_config) from None


# --------------------------------------------------------------------------- batching

BACKENDS = ("eager", "jit")


def trace_for_inference(model: torch.nn.Module, fs: int, device: Union[str, torch.device] = "cpu") -> Any:
    """``model`` as a frozen TorchScript module ``(speech, lengths) -> (probs, logits)``, or False.

    Traced through :class:`espnet_cls.export.ExportWrapper` (which appends a few zeros to
    every batch so that the encoders' short-input branches are never needed; masks keep the
    scores unchanged), then ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``. The
    result is checked against the eager model on two clips of other lengths (1e-5); any
    failure returns False (the caller runs the eager model).
    """
    import warnings

    from espnet_cls.export import ExportWrapper, default_pad_samples

    try:
        wrapper = ExportWrapper(model, default_pad_samples(model, fs)).eval()
        g = torch.Generator().manual_seed(0)
        example = (0.1 * torch.randn(1, fs, generator=g)).to(device), torch.tensor([fs], device=device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, example, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            x = (0.1 * torch.randn(2, (3 * fs) // 2, generator=g)).to(device)
            lens = torch.tensor([(3 * fs) // 2, fs // 3], device=device)
            want = model.predict_proba(x, lens)
            got = frozen(x, lens)[0]
        diff = float((got - want).abs().max())
        if not diff <= 1e-5:
            logger.info("traced model differs from the eager one by %.2e: using the eager model", diff)
            return False
        return frozen
    except Exception as e:  # noqa: BLE001 - any tracing problem: run the eager model
        logger.info("cannot trace the model (%s: %s): using the eager model", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return False



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


def pad_batch(waves: Sequence[np.ndarray], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D arrays into ``speech [B, T]`` and ``lengths [B]`` (long)."""
    lens = torch.tensor([len(w) for w in waves], dtype=torch.long)
    speech = torch.zeros(len(waves), int(lens.max()) if len(waves) else 0, dtype=dtype)
    for i, w in enumerate(waves):
        speech[i, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32), dtype=dtype)
    return speech, lens


@dataclass
class _Segment:
    clip: int  # index of the clip it belongs to
    start: int
    end: int


class BatchInference:
    """Scores clips (1-D float arrays at the model's rate) in length-sorted batches.

    Args:
        model: a model with ``predict_proba(speech [B,T], lengths [B]) -> [B, C]``.
        fs: sampling rate of the clips (for the window length in samples).
        batch_size: segments per forward pass; batch_bins: if > 0, also at most this many
            padded samples per forward pass (bounds memory for long clips).
        window_sec, hop_sec: split clips longer than ``window_sec`` (``hop_sec`` default:
            ``window_sec``), aggregate with ``window_aggregation`` (``mean`` | ``max``).
        device, dtype: where and in which precision the model runs (the model must already
            be on ``device``; for ``float64`` also in float64; ``float16``/``bfloat16`` run a
            float32 model under ``torch.autocast``); probabilities are returned as float64 numpy.
        backend: ``eager`` (the PyTorch modules as they are) or ``jit``: the model traced
            (:class:`espnet_cls.export.ExportWrapper`), frozen and optimized for inference
            (fused convolution + bias + ReLU, constant-folded weights); same scores to ~1e-7, about
            1.4x less CPU per clip on CPU. A model that cannot be traced, a non-float32 dtype,
            or a batch longer than ``jit_max_sec`` falls back to ``eager`` (logged once).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        fs: int = 16000,
        batch_size: int = 16,
        window_sec: Optional[float] = None,
        hop_sec: Optional[float] = None,
        window_aggregation: str = "mean",
        device: Union[str, torch.device] = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_bins: int = 0,
        backend: str = "eager",
        jit_max_sec: float = 120.0,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if window_aggregation not in ("mean", "max"):
            raise ValueError(f"window_aggregation must be mean or max, got {window_aggregation!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if window_sec is not None and window_sec <= 0:
            raise ValueError("window_sec must be > 0")
        if hop_sec is not None and hop_sec <= 0:
            raise ValueError("hop_sec must be > 0")
        self.model = model
        self.fs = int(fs)
        self.batch_size = int(batch_size)
        self.batch_bins = int(batch_bins)
        self.win = int(round(window_sec * fs)) if window_sec else None
        self.hop = int(round(hop_sec * fs)) if (hop_sec and window_sec) else None
        self.window_aggregation = window_aggregation
        self.device = torch.device(device)
        self.dtype = dtype
        self.backend = backend
        self.jit_max_samples = int(jit_max_sec * self.fs)
        self._jit: Any = None  # the traced module, False once tracing failed

    def _jit_module(self) -> Any:
        """The traced + frozen model (built on first use), or None when the eager model must run."""
        if self.backend != "jit" or self.dtype != torch.float32 or self.device.type != "cpu" or self._jit is False:
            return None
        if self._jit is None:
            self._jit = trace_for_inference(self.model, self.fs, self.device)
        return self._jit or None

    @torch.no_grad()
    def _forward(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        jit = self._jit_module()
        if jit is not None and max(len(w) for w in waves) <= self.jit_max_samples:
            speech, lens = pad_batch(waves, torch.float32)
            probs = jit(speech.to(self.device), lens.to(self.device))[0]
            return probs.to(torch.float64).cpu().numpy()
        half = self.dtype in (torch.float16, torch.bfloat16)
        # half precision through autocast (the model stays float32: features, softmax and
        # reductions keep float32 where autocast says so); float64 runs a float64 model
        speech, lens = pad_batch(waves, torch.float32 if half else self.dtype)
        speech, lens = speech.to(self.device), lens.to(self.device)
        if half:
            with torch.autocast(self.device.type, dtype=self.dtype):
                probs = self.model.predict_proba(speech, lens)
        else:
            probs = self.model.predict_proba(speech, lens)
        return probs.detach().to(torch.float64).cpu().numpy()

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


def run_inference(
    data_path_and_name_and_type: Sequence[str],
    output_dir: PathLike,
    train_config: Optional[PathLike] = None,
    model_file: Optional[PathLike] = None,
    packed_model: Optional[PathLike] = None,
    key_file: Optional[PathLike] = None,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 16,
    batch_bins: int = 0,
    threshold: float = 0.5,
    threshold_file: Optional[PathLike] = None,
    window_sec: Optional[float] = None,
    hop_sec: Optional[float] = None,
    window_aggregation: str = "mean",
    output_all_probabilities: bool = True,
    num_workers: int = 0,
    backend: str = "eager",
) -> dict[str, Any]:
    """Score the clips of a ``wav.scp`` and write ``output_dir/prediction/{text,score,token}``.

    Returns ``{"n_clips", "seconds", "clips_per_sec", "audio_sec"}``.
    """
    speech = [t for t in iter_triples(data_path_and_name_and_type) if t[1] == "speech"]
    if not speech:
        raise DataError("--data_path_and_name_and_type: need a PATH,speech,sound entry")
    wav_scp, _name, typ = speech[0]
    if typ not in ("sound", "kaldi_ark"):  # kaldi_ark: ark:offset entries, read by espnet_cls.audio
        raise DataError(f"--data_path_and_name_and_type: type {typ!r} is not supported (use sound or kaldi_ark)")
    model, config = load_inference_model(train_config, model_file, packed_model, device)
    torch_dtype = DTYPES[dtype]
    if torch_dtype == torch.float64:
        model = model.to(torch_dtype)
    facts = model_facts(config)
    fs = facts.fs
    class_names = list(model.token_list[: model.n_classes])
    ctype = model.classification_type
    thr: Union[float, np.ndarray] = threshold
    if threshold_file is not None:
        from espnet_cls.scoring import read_threshold_file

        if ctype != MULTI_LABEL:
            logger.info("--threshold_file is ignored for a multi-class model (argmax)")
        thr = read_threshold_file(threshold_file, class_names, default=threshold)

    audio = ScpAudio(wav_scp, fs)
    keys = read_keys(key_file) if key_file is not None else list(audio.entries)
    audio.check_keys(keys, key_file)
    lengths = audio.lengths(keys)
    engine = BatchInference(model, fs, batch_size, window_sec, hop_sec, window_aggregation, device, torch_dtype, batch_bins,
                            backend=backend)
    logger.info(
        "%d clips (%.1f s of audio) from %s, %s model, batch_size %d%s",
        len(keys),
        sum(lengths) / fs,
        wav_scp,
        ctype,
        batch_size,
        f", windows of {window_sec:g} s ({window_aggregation})" if window_sec else "",
    )
    get_wave = _prefetching_reader(audio, keys, engine, lengths, num_workers)
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
    predicted = decided_ids(probs, ctype, thr)
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


def _prefetching_reader(
    audio: ScpAudio, keys: Sequence[str], engine: BatchInference, lengths: Sequence[int], num_workers: int
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
