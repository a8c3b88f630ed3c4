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
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from espnet_cls.contract import model_facts
from espnet_cls.fileio import DataError, PathLike

# the torch-free part (shared with the ONNX Runtime backend), re-exported here
from espnet_cls.inference_core import (  # noqa: F401
    DTYPE_NAMES,
    MAX_TRACED_SEC,
    ScpAudio,
    SegmentScorer,
    _fmt_row,
    _Segment,
    iter_triples,
    length_sorted_batches,
    prefetching_reader,
    read_keys,
    score_scp,
    speech_scp,
    window_bounds,
    write_predictions,
)

logger = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


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



def pad_batch(waves: Sequence[np.ndarray], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D arrays into ``speech [B, T]`` and ``lengths [B]`` (long)."""
    lens = torch.tensor([len(w) for w in waves], dtype=torch.long)
    speech = torch.zeros(len(waves), int(lens.max()) if len(waves) else 0, dtype=dtype)
    for i, w in enumerate(waves):
        speech[i, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32), dtype=dtype)
    return speech, lens


class BatchInference(SegmentScorer):
    """Scores clips (1-D float arrays at the model's rate) in length-sorted batches, with PyTorch.

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
        jit_max_sec: float = MAX_TRACED_SEC,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        super().__init__(fs, batch_size, window_sec, hop_sec, window_aggregation, batch_bins)
        self.model = model
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


# --------------------------------------------------------------------------- the torch job


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
    wav_scp = speech_scp(data_path_and_name_and_type)
    model, config = load_inference_model(train_config, model_file, packed_model, device)
    torch_dtype = DTYPES[dtype]
    if torch_dtype == torch.float64:
        model = model.to(torch_dtype)
    fs = model_facts(config).fs
    engine = BatchInference(model, fs, batch_size, window_sec, hop_sec, window_aggregation, device, torch_dtype, batch_bins,
                            backend=backend)
    return score_scp(wav_scp, output_dir, engine, list(model.token_list[: model.n_classes]), model.classification_type,
                     key_file=key_file, threshold=threshold, threshold_file=threshold_file,
                     output_all_probabilities=output_all_probabilities, num_workers=num_workers)
