"""The STFT power spectrum of the default frontend in numpy, for stage 7's torch-free ONNX jobs.

ONNX Runtime's ``STFT`` (and ``DFT``) kernels are slow on CPU: 44 % of the default CNN's graph time
in its ONNX form, ~30x numpy's FFT on the same frames (docs/benchmarks.md, stage-7 section). So the
export that stage 7's CPU jobs run (:func:`espnet_cls.onnx_inference.ensure_onnx`) starts *after* the
STFT, at the power spectrum, and the job computes that here. What it computes is what
:class:`espnet_cls.export.ExportWrapper` and
:meth:`espnet_cls.models.frontend.DefaultFrontend.power_spectrum` compute before the mel filterbank:

1. ``pad_samples`` zeros appended to the batch, samples past each clip's length set to 0;
2. the 16-bit grid of the dump (``pcm16_input``): ``clip(round(x * 32768), -32768, 32767) / 32768``;
3. centring (``center``): ``n_fft // 2`` zeros on each side, or ``reflect`` at each clip's own ends;
4. frames of ``n_fft`` every ``hop_length`` samples times the model's window, real FFT, ``re² + im²``.

The parameters (and the window's float32 values) travel in the ONNX file's ``metadata_props`` under
:data:`META_KEY` (:func:`spectrum_params` reads them), so the job needs nothing but the file. The
export check (:func:`espnet_cls.export.check_export`) runs this code plus the graph against the
PyTorch model (``ATOL`` 1e-5).

Imports: numpy and the package's torch-free :mod:`espnet_cls.contract`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

import numpy as np

from espnet_cls.contract import PCM_MAX, PCM_MIN, PCM_SCALE

#: the ``metadata_props`` key of a spectrum-input export (JSON of :func:`power_spectrum`'s ``params``)
META_KEY = "spectrum_input"
#: the ONNX input names of a spectrum-input export
INPUT_NAMES = ("power", "speech_lengths")


def spectrum_params(meta: Mapping[str, str]) -> Optional[dict[str, Any]]:
    """The spectrum parameters of an export's metadata, or None for a waveform-input graph."""
    text = meta.get(META_KEY)
    if not text:
        return None
    params = json.loads(text)
    params["window"] = np.asarray(params["window"], dtype=np.float32)
    return params


def power_spectrum(speech: np.ndarray, lengths: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """speech ``[B, T]`` float32 (zero-padded), lengths ``[B]`` samples -> power ``[B, T', n_fft // 2 + 1]`` float32.

    ``params``: ``n_fft``, ``hop_length``, ``center`` (bool), ``pad_mode`` (``zero`` | ``reflect``),
    ``pcm16_input`` (bool), ``pad_samples`` (int) and ``window`` (``n_fft`` float32 values).
    ``T' = (T + pad_samples + 2 * (n_fft // 2 if center else 0) - n_fft) // hop_length + 1``.
    """
    x = np.asarray(speech, dtype=np.float32)
    lengths = np.asarray(lengths, dtype=np.int64)
    if x.ndim != 2 or lengths.shape != (x.shape[0],):
        raise ValueError(f"speech must be [B, T] and lengths [B], got {x.shape} and {lengths.shape}")
    n_fft, hop = int(params["n_fft"]), int(params["hop_length"])
    pad = int(params.get("pad_samples", 0))
    b, t = x.shape
    t += pad
    half = n_fft // 2 if params.get("center", True) else 0
    reflect = half > 0 and params.get("pad_mode", "zero") == "reflect"
    lead = 0 if reflect else half  # zero centring: the clips go straight into the centred buffer
    buf = np.zeros((b, lead + t + lead), dtype=np.float32)
    for i in range(b):  # copy each clip's valid samples: the rest stays 0
        n = min(int(lengths[i]), x.shape[1])
        buf[i, lead : lead + n] = x[i, :n]
    if params.get("pcm16_input", True):
        body = buf[:, lead : lead + t]  # a view: the zero borders stay zero
        np.multiply(body, np.float32(PCM_SCALE), out=body)
        np.round(body, out=body)  # half to even, as torch.round
        np.clip(body, PCM_MIN, PCM_MAX, out=body)
        np.divide(body, np.float32(PCM_SCALE), out=body)
    if reflect:
        pos = np.abs(np.arange(-half, t + half))[None, :]
        last = (lengths - 1)[:, None]
        idx = np.clip(np.where(pos > last, 2 * last - pos, pos), 0, max(t - 1, 0))
        buf = np.take_along_axis(buf, idx, axis=1)
    if buf.shape[1] < n_fft:
        raise ValueError(f"{buf.shape[1]} samples after padding, fewer than n_fft={n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(buf, n_fft, axis=1)[:, ::hop]  # [B, T', n_fft], a view
    window = np.asarray(params["window"], dtype=np.float32)
    spec = np.fft.rfft(frames * window, axis=-1)  # complex64 with numpy >= 2
    power = np.square(spec.real, dtype=np.float32)
    power += np.square(spec.imag, dtype=np.float32)
    return power


def onnx_feed(speech: np.ndarray, lengths: np.ndarray, params: Optional[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The inputs of an espnet_cls ONNX graph for a batch: the waveform (``params`` None) or its power spectrum."""
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    if params is None:
        return {"speech": np.ascontiguousarray(speech, dtype=np.float32), "speech_lengths": lengths}
    return {INPUT_NAMES[0]: power_spectrum(speech, lengths, params), INPUT_NAMES[1]: lengths}


def onnx_run(session: Any, speech: np.ndarray, lengths: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """``session.run(outputs, ...)`` on a waveform batch, for either kind of espnet_cls ONNX graph."""
    params = spectrum_params(dict(session.get_modelmeta().custom_metadata_map))
    return session.run(outputs, onnx_feed(speech, lengths, params))
