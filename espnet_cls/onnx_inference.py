"""Stage 7 through ONNX Runtime: a job that never imports torch (``cls_inference --backend onnx``).

Why: a stage-7 job scores ~100 clips, and with PyTorch most of its time is the process start
(``import torch``, model build, trace). ``import onnxruntime`` costs a small fraction of that
(docs/benchmarks.md). The job reads one file, the model exported to ONNX by
:func:`espnet_cls.export.export_onnx` with ``spectrum_input=True`` when the model has the default
frontend: the graph starts at the STFT power spectrum, which the job computes in numpy
(:mod:`espnet_cls.spectrum`; ONNX Runtime's STFT kernel took 44 % of the CNN's graph time), and holds
the rest (mel filterbank, log, normalization, encoder, decoder; dynamic batch and time axes). Other
models get the waveform-input graph. It is cached beside the checkpoint::

    exp/cls_X/valid.acc.best.pth  ->  exp/cls_X/valid.acc.best.onnx
                                      exp/cls_X/valid.acc.best.onnx.stamp   (JSON)

The stamp records the size and SHA-256 of the sources (``config.yaml`` + checkpoint, or the packed
``.zip``) and of the ``.onnx``, the package version and the largest difference to PyTorch measured right
after the export. A cache whose sources changed (checkpoint retrained, config edited) is stale and is
exported again; an export that failed or differed from PyTorch by more than ``ATOL`` is recorded too
(``"ok": false``), so that later jobs fall back to the PyTorch ``jit`` backend at once instead of
retrying. :func:`ensure_onnx` (exporting, imports torch) runs in ``cls.sh`` at the end of stage 6 and
once before stage 7's parallel jobs (``cls_inference --prepare_only true``); the jobs only read the
cache (:func:`cache_state`, torch-free).

Scores: the graph is the traced :class:`espnet_cls.export.ExportWrapper` (the ``jit`` backend runs its
waveform-input form), fed the same float32 batches (:class:`espnet_cls.inference_core.SegmentScorer`: same
length-sorted batches, windows, decision rule and output files); the scores equal the PyTorch ones to
~1e-7 (``tests/test_onnx_inference.py`` asserts 1e-5).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from espnet_cls.fileio import DataError, PathLike
from espnet_cls.inference_core import MAX_TRACED_SEC, SegmentScorer, pad_waves, score_scp, speech_scp
from espnet_cls.spectrum import onnx_feed, spectrum_params

logger = logging.getLogger(__name__)

#: largest |ONNX - PyTorch| (probabilities and logits) accepted when the export is checked
ATOL = 1e-5
#: bumped when the exported graph or the stamp changes meaning (old caches are then re-exported)
CACHE_FORMAT = 2  # 2: the graph takes the power spectrum (espnet_cls.spectrum) when the model has the default frontend
STAMP_SUFFIX = ".stamp"


# --------------------------------------------------------------------------- the cache


def cache_path(model_file: Optional[PathLike] = None, packed_model: Optional[PathLike] = None) -> Path:
    """Where the export of a checkpoint (or packed ``.zip``) is cached: the same name, ``.onnx``."""
    src = packed_model if packed_model is not None else model_file
    if src is None:
        raise DataError("the onnx backend needs --classification_model_file or --model_file")
    return Path(src).with_suffix(".onnx")


def _file_id(path: PathLike) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": os.path.getsize(path), "sha256": h.hexdigest()}


def _sources(train_config: Optional[PathLike], model_file: Optional[PathLike], packed_model: Optional[PathLike]) -> dict:
    import espnet_cls

    files = [packed_model] if packed_model is not None else [train_config, model_file]
    out: dict[str, Any] = {"cache_format": CACHE_FORMAT, "espnet_cls_version": espnet_cls.__version__, "files": {}}
    for f in files:
        if f is None:
            raise DataError("the onnx backend needs --classification_train_config and --classification_model_file, or --model_file")
        if not os.path.isfile(f):
            raise DataError("model file not found", f)
        out["files"][os.path.basename(str(f))] = _file_id(f)
    return out


def _read_stamp(onnx_path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(str(onnx_path) + STAMP_SUFFIX).read_text())
    except (OSError, ValueError):
        return None


def cache_state(
    train_config: Optional[PathLike] = None, model_file: Optional[PathLike] = None, packed_model: Optional[PathLike] = None
) -> tuple[str, Path, str]:
    """``(state, onnx_path, detail)``: state ``fresh`` (usable), ``failed`` (the export of exactly these
    sources failed before: detail says why), ``stale`` or ``missing``. Torch-free."""
    onnx_path = cache_path(model_file, packed_model)
    want = _sources(train_config, model_file, packed_model)
    stamp = _read_stamp(onnx_path)
    if stamp is None:
        return "missing", onnx_path, "no export cached"
    if stamp.get("sources") != want:
        return "stale", onnx_path, "the model or its config changed since the export"
    if not stamp.get("ok"):
        return "failed", onnx_path, str(stamp.get("reason", "export failed"))
    try:
        if _file_id(onnx_path) != stamp.get("onnx"):
            return "stale", onnx_path, f"{onnx_path} does not match its stamp"
    except OSError:
        return "missing", onnx_path, f"{onnx_path} is missing"
    return "fresh", onnx_path, ""


def cached_onnx(
    train_config: Optional[PathLike] = None, model_file: Optional[PathLike] = None, packed_model: Optional[PathLike] = None
) -> Optional[Path]:
    """The cached export when it is fresh, else None. Torch-free."""
    state, path, _ = cache_state(train_config, model_file, packed_model)
    return path if state == "fresh" else None


def _write_stamp(onnx_path: Path, stamp: dict) -> None:
    from espnet_cls.fileio import atomic_write

    with atomic_write(str(onnx_path) + STAMP_SUFFIX) as f:
        f.write(json.dumps(stamp, indent=1, sort_keys=True) + "\n")


def ensure_onnx(
    train_config: Optional[PathLike] = None, model_file: Optional[PathLike] = None, packed_model: Optional[PathLike] = None
) -> tuple[Optional[Path], str]:
    """Export the model to its cache unless a fresh one is there; ``(onnx path or None, why not)``.

    Exporting imports torch and runs :func:`espnet_cls.export.export_onnx_checked` (the TorchScript-based
    exporter, ~1 s; ``torch.onnx.export(dynamo=True)``, tens of seconds, if that fails), which checks the
    file against PyTorch on clips of 0.05-2.3 s (``ATOL``). A failure is stamped, so it is not retried
    for the same sources; the caller falls back to the PyTorch backend.
    """
    state, onnx_path, detail = cache_state(train_config, model_file, packed_model)
    if state == "fresh":
        return onnx_path, ""
    if state == "failed":
        return None, detail
    logger.info("exporting the model to %s (%s)", onnx_path, detail)
    t0 = time.perf_counter()
    stamp: dict[str, Any] = {"sources": _sources(train_config, model_file, packed_model)}
    failures = []
    try:
        from espnet_cls.inference import load_inference_model

        model, config = load_inference_model(train_config, model_file, packed_model, "cpu")
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a model class the export code does not know
        failures.append(f"cannot load the model: {_one_line(e)}")
    else:
        import torch

        from espnet_cls.export import export_onnx_checked, has_spectrum_input

        for noisy in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript", "onnx_ir"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        torch.set_num_threads(1)
        model = model.cpu().eval()
        try:
            # the TorchScript-based exporter first (~1 s), torch.export's (tens of seconds) if it fails,
            # each checked against PyTorch
            # the STFT outside the graph when the model has the default frontend (espnet_cls.spectrum)
            _path, exporter, diff, tried = export_onnx_checked(model, onnx_path, _fs_of(config), atol=ATOL,
                                                               spectrum_input=has_spectrum_input(model))
        except Exception as e:  # noqa: BLE001 - every exporter failed: stamped below
            failures.append(str(e) if isinstance(e, RuntimeError) else _one_line(e))
        else:
            dt = time.perf_counter() - t0
            stamp.update(ok=True, exporter=exporter, onnx=_file_id(onnx_path), max_abs_diff=diff, export_seconds=round(dt, 2))
            if tried:
                stamp["failures"] = tried
            _write_stamp(onnx_path, stamp)
            logger.info("exported %s in %.1f s (%s exporter; max |ONNX - PyTorch| %.2g)", onnx_path, dt, exporter, diff)
            return onnx_path, ""
    reason = "; ".join(failures)
    stamp.update(ok=False, reason=reason)
    try:
        _write_stamp(onnx_path, stamp)
    except OSError as w:
        logger.info("cannot write %s%s: %s", onnx_path, STAMP_SUFFIX, w)
    return None, reason


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _fs_of(config: dict) -> int:
    from espnet_cls.contract import model_facts

    return model_facts(config).fs


# --------------------------------------------------------------------------- the engine


def open_session(path: PathLike, num_threads: int = 1) -> Any:
    """An onnxruntime CPU session, ``num_threads`` intra-op threads (1: the jobs run in parallel)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(num_threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def session_meta(sess: Any) -> dict[str, str]:
    """The ``metadata_props`` written by :func:`espnet_cls.export.export_onnx` (classes, sample_rate...)."""
    return dict(sess.get_modelmeta().custom_metadata_map)


class OnnxInference(SegmentScorer):
    """:class:`SegmentScorer` running an exported model (``speech, speech_lengths -> probs``) in onnxruntime.

    A batch longer than ``max_sec`` (:data:`MAX_TRACED_SEC`, as the jit backend) is scored by
    ``fallback()`` (a PyTorch :class:`SegmentScorer`, built on first use, logged once) when given.
    """

    def __init__(self, session: Any, fs: int, batch_size: int = 4, window_sec: Optional[float] = None,
                 hop_sec: Optional[float] = None, window_aggregation: str = "mean", batch_bins: int = 0,
                 max_sec: float = MAX_TRACED_SEC, fallback: Optional[Callable[[], SegmentScorer]] = None) -> None:
        super().__init__(fs, batch_size, window_sec, hop_sec, window_aggregation, batch_bins)
        self.session = session
        self.spectrum = spectrum_params(session_meta(session))  # None: the graph takes the waveform
        self.max_samples = int(max_sec * self.fs)
        self.fallback = fallback
        self._fallback: Optional[SegmentScorer] = None

    def _forward(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        if self.fallback is not None and max(len(w) for w in waves) > self.max_samples:
            if self._fallback is None:
                logger.info("a batch longer than %g s: scored by the PyTorch model (longer than the traced graph's limit)",
                            self.max_samples / self.fs)
                self._fallback = self.fallback()
            return self._fallback._forward(waves)
        speech, lens = pad_waves(waves)
        (probs,) = self.session.run(["probs"], onnx_feed(speech, lens, self.spectrum))
        return probs.astype(np.float64)


def run_onnx_inference(
    data_path_and_name_and_type: Sequence[str],
    output_dir: PathLike,
    onnx_model: PathLike,
    key_file: Optional[PathLike] = None,
    batch_size: int = 4,
    batch_bins: int = 0,
    threshold: float = 0.5,
    threshold_file: Optional[PathLike] = None,
    window_sec: Optional[float] = None,
    hop_sec: Optional[float] = None,
    window_aggregation: str = "mean",
    output_all_probabilities: bool = True,
    num_workers: int = 1,
    num_threads: int = 1,
    train_config: Optional[PathLike] = None,
    model_file: Optional[PathLike] = None,
    packed_model: Optional[PathLike] = None,
) -> dict[str, Any]:
    """:func:`espnet_cls.inference.run_inference` with an exported model: same arguments, same files.

    ``train_config`` + ``model_file`` (or ``packed_model``): the PyTorch model for batches longer
    than :data:`MAX_TRACED_SEC` (loaded only if one comes).
    """
    wav_scp = speech_scp(data_path_and_name_and_type)
    sess = open_session(onnx_model, num_threads)
    meta = session_meta(sess)
    try:
        classes = json.loads(meta["classes"])
        fs = int(meta["sample_rate"])
        ctype = meta["classification_type"]
    except (KeyError, ValueError):
        raise DataError("not an espnet_cls export (no classes/sample_rate/classification_type metadata)", onnx_model) from None

    fallback = None
    if train_config is not None or packed_model is not None:
        def fallback() -> SegmentScorer:
            import torch

            from espnet_cls.inference import BatchInference, load_inference_model

            torch.set_num_threads(max(1, int(num_threads)))
            model, _ = load_inference_model(train_config, model_file, packed_model, "cpu")
            return BatchInference(model, fs, batch_size, backend="eager")

    engine = OnnxInference(sess, fs, batch_size, window_sec, hop_sec, window_aggregation, batch_bins, fallback=fallback)
    logger.info("ONNX Runtime %s on %s, %d thread(s)", getattr(sys.modules.get("onnxruntime"), "__version__", "?"),
                onnx_model, max(1, int(num_threads)))
    return score_scp(wav_scp, output_dir, engine, classes, ctype, key_file=key_file, threshold=threshold,
                     threshold_file=threshold_file, output_all_probabilities=output_all_probabilities,
                     num_workers=num_workers)
