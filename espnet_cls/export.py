"""Export a trained model to ONNX or TorchScript, waveform in, probabilities out.

The exported graph (``export``, ``cls_export``) is the whole model, log-mel frontend included::

    inputs:  speech [B, T] float32 (mono, at the model's sample rate, zero-padded)
             speech_lengths [B] int64 (valid samples of each clip)
    outputs: probs [B, n_classes] (softmax for multi-class, sigmoid for multi-label)
             logits [B, n_classes]

Pre-processing (what gives stage 7's scores): decode, average the channels to mono and
resample to ``sample_rate`` with libsoxr "HQ", as ``espnet_cls.audio.load_audio(path,
fs=sample_rate)`` does; feed float samples in [-1, 1) (16-bit PCM / 32768). The graph
itself rounds them to the 16-bit grid of the recipe's dump (``CLSModel.pcm16_input``), so
float audio and the dumped FLAC give the same scores (``tests/test_parity.py``).

ONNX goes through ``torch.onnx.export(dynamo=True)`` with dynamic batch and time axes
(the STFT becomes ONNX ``DFT``); the file's ``metadata_props`` hold ``classes`` (JSON),
``sample_rate``, ``classification_type`` and ``espnet_cls_version``. TorchScript is a
``torch.jit.trace`` of the same wrapper; its ``classes`` etc. are in the archive's
``extra_files`` (``meta.json``).

Checked (tests/test_export.py) for the CNN, transformer and conformer encoders with the
default frontend. BEATs (``frontend: none``, its own fbank) does not export yet: the
``torch.export`` step fails on its feature extraction, and TorchScript tracing fails too.

Stage 7's own ONNX cache (:func:`espnet_cls.onnx_inference.ensure_onnx`) is the same graph without
the STFT (``spectrum_input=True``): input ``power [B, T', n_fft // 2 + 1]``, computed by the job with
:func:`espnet_cls.spectrum.power_spectrum` from the parameters in the metadata (``spectrum_input``).

Two details make one graph valid for every input length:

* :class:`ExportWrapper` skips the model's "trim the batch to its longest clip" step
  (a data-dependent shape that cannot be exported); masks make it unnecessary.
* It appends ``pad_samples`` zeros to every batch, so the encoders' branches for very
  short inputs (which pad too) are never needed; since every stage masks padded frames,
  the scores do not change (the model's padding-invariance contract, checked by
  :func:`check_export` and the tests).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from espnet_cls.fileio import DataError
from espnet_cls.spectrum import onnx_run

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def default_pad_samples(model: nn.Module, sample_rate: int) -> int:
    """Zeros appended to each batch so that no encoder takes its short-input branch.

    Enough frames for the CNN's total pooling (``encoder.subsampling``) and the conv2d
    input layer (7 frames), plus one; falls back to half a second without a frontend.
    """
    fe = getattr(model, "frontend", None)
    hop = getattr(fe, "hop_length", None)
    if not hop:
        return int(sample_rate) // 2
    frames = max(int(getattr(model.encoder, "subsampling", 1)), 7) + 1
    return int(frames * hop)


class ExportWrapper(nn.Module):
    """``(speech [B, T], speech_lengths [B]) -> (probs, logits)`` of a CLSModel, export-friendly.

    ``spectrum_input``: the graph starts after the STFT, ``(power [B, T', F], speech_lengths [B])``,
    the power spectrum as :func:`espnet_cls.spectrum.power_spectrum` computes it (stage 7's ONNX
    jobs; needs the default frontend, :func:`spectrum_input_params`).
    """

    def __init__(self, model: nn.Module, pad_samples: int = 0, spectrum_input: bool = False):
        super().__init__()
        self.model = model.eval()
        self.pad_samples = int(pad_samples)
        self.spectrum_input = bool(spectrum_input)
        if self.spectrum_input and not has_spectrum_input(model):
            raise ValueError("spectrum_input needs the default frontend")

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        if self.spectrum_input:
            feats, lens = m.frontend.log_mel(speech, speech_lengths)
        else:
            feats, lens = self.features(speech, speech_lengths)
        if m.normalize is not None:
            feats, lens = m.normalize(feats, lens)
        hs, hlens = m.encoder(feats, lens)
        logits = m.decoder(hs, hlens)
        return m.logits_to_proba(logits), logits

    def padded_speech(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """The waveform the frontend sees: ``pad_samples`` zeros appended, padding zeroed, 16-bit grid."""
        from espnet_cls.models.utils import make_pad_mask

        speech = speech.float()
        if self.pad_samples > 0:
            speech = F.pad(speech, (0, self.pad_samples))
        speech = speech.masked_fill(make_pad_mask(speech_lengths, speech.size(1)), 0.0)
        return self.model.prepare_input(speech)  # the 16-bit grid of the dump (CLSModel.pcm16_input)

    def features(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        speech = self.padded_speech(speech, speech_lengths)
        if m.frontend is None:
            return speech.unsqueeze(-1), speech_lengths
        return m.frontend(speech, speech_lengths)


def has_spectrum_input(model: nn.Module) -> bool:
    """Whether ``model`` exports with ``spectrum_input`` (it has the default frontend's two halves)."""
    return hasattr(getattr(model, "frontend", None), "log_mel")


def spectrum_input_params(model: nn.Module, pad_samples: int) -> Optional[dict[str, Any]]:
    """What :func:`espnet_cls.spectrum.power_spectrum` needs to feed a spectrum-input graph of ``model``
    (JSON-able; the window as float32 values), or None when the model has no default frontend."""
    if not has_spectrum_input(model):
        return None
    fe = model.frontend
    return {
        "n_fft": int(fe.n_fft), "hop_length": int(fe.hop_length), "center": bool(fe.center), "pad_mode": fe.pad_mode,
        "pcm16_input": bool(getattr(model, "pcm16_input", False)), "pad_samples": int(pad_samples),
        "window": [float(v) for v in fe.window.float().cpu().numpy()],
    }  # fmt: skip


def _metadata(model: nn.Module, sample_rate: int, pad_samples: int,
              spectrum: Optional[dict[str, Any]] = None) -> dict[str, str]:
    import espnet_cls
    from espnet_cls.spectrum import META_KEY

    inputs = "speech [B, T] float32 mono at sample_rate (resampled with libsoxr HQ); speech_lengths [B] int64"
    if spectrum is not None:
        inputs = (f"power [B, T', F] float32: espnet_cls.spectrum.power_spectrum(speech, speech_lengths, {META_KEY}) "
                  "of that speech; speech_lengths [B] int64")
    meta = {
        "classes": json.dumps(list(model.token_list[: model.n_classes])),
        "sample_rate": str(int(sample_rate)),
        "classification_type": model.classification_type,
        "pad_samples": str(int(pad_samples)),
        "inputs": inputs,
        "outputs": "probs [B, n_classes]; logits [B, n_classes]",
        "espnet_cls_version": espnet_cls.__version__,
    }
    if spectrum is not None:
        meta[META_KEY] = json.dumps(spectrum)
    return meta


def _example(sample_rate: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = int(sample_rate)
    x = torch.randn(2, n, generator=g) * 0.1
    return x, torch.tensor([n, (2 * n) // 3], dtype=torch.long)


#: ``export_onnx(exporter=...)``: ``dynamo`` (``torch.onnx.export(dynamo=True)``, torch.export based) or
#: ``torchscript`` (the TorchScript-based exporter, ``dynamo=False``: ~1 s instead of ~30-60 s for the
#: repository's models, docs/benchmarks.md; deprecated by PyTorch, so callers check its output and fall back)
EXPORTERS = ("dynamo", "torchscript")


def export_onnx(model: nn.Module, output: PathLike, sample_rate: int, opset: Optional[int] = None,
                exporter: str = "dynamo", spectrum_input: bool = False) -> Path:
    """Write ``output`` (.onnx) for ``model`` (a CLSModel); atomic. Returns the path.

    ``spectrum_input``: the graph takes the STFT power spectrum instead of the waveform (see
    :class:`ExportWrapper`; its parameters go into the metadata); ValueError without a default frontend.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    output = Path(output)
    pad = default_pad_samples(model, sample_rate)
    wrapper = ExportWrapper(model, pad, spectrum_input=spectrum_input).eval()  # ValueError without the frontend
    spectrum = spectrum_input_params(model, pad) if spectrum_input else None
    example = _example(sample_rate)
    names = ["speech", "speech_lengths"]
    if spectrum_input:
        with torch.no_grad():
            speech = wrapper.padded_speech(*example)
            example = (model.frontend.power_spectrum(speech, example[1]).contiguous(), example[1])
        names = ["power", "speech_lengths"]
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=output.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            with torch.no_grad():
                if exporter == "dynamo":
                    batch = torch.export.Dim("batch", min=1)
                    samples = torch.export.Dim("frames" if spectrum_input else "samples", min=1)
                    torch.onnx.export(
                        wrapper,
                        example,
                        str(raw),
                        dynamo=True,
                        external_data=False,
                        opset_version=opset,
                        input_names=names,
                        output_names=["probs", "logits"],
                        dynamic_shapes={names[0]: {0: batch, 1: samples}, "speech_lengths": {0: batch}},
                        verbose=False,
                    )
                else:
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # its deprecation and TracerWarnings (pad_samples makes them moot)
                        torch.onnx.export(
                            wrapper,
                            example,
                            str(raw),
                            dynamo=False,
                            opset_version=opset or 18,  # >= 17: the STFT op
                            input_names=names,
                            output_names=["probs", "logits"],
                            dynamic_axes={names[0]: {0: "batch", 1: "frames" if spectrum_input else "samples"},
                                          "speech_lengths": {0: "batch"},
                                          "probs": {0: "batch"}, "logits": {0: "batch"}},
                        )
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise RuntimeError(f"ONNX export failed: {type(e).__name__}: {first}") from e
        proto = onnx.load(str(raw))
        for k, v in _metadata(model, sample_rate, pad, spectrum).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        final = Path(tmp) / "final.onnx"
        onnx.save(proto, str(final))
        os.replace(final, output)
    logger.info("wrote %s (%.1f MB, %s exporter)", output, output.stat().st_size / 1e6, exporter)
    return output


def export_torchscript(model: nn.Module, output: PathLike, sample_rate: int) -> Path:
    """Write ``output`` (TorchScript, ``torch.jit.load``-able) for ``model``; atomic."""
    import warnings

    output = Path(output)
    pad = default_pad_samples(model, sample_rate)
    wrapper = ExportWrapper(model, pad).eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for the short-input branches, made moot by pad_samples
        traced = torch.jit.trace(wrapper, _example(sample_rate), check_trace=False)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=output.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export
        tmp_out = Path(tmp) / "model.pt"
        torch.jit.save(traced, str(tmp_out), _extra_files={"meta.json": json.dumps(_metadata(model, sample_rate, pad))})
        os.replace(tmp_out, output)
    logger.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
    return output


def run_exported(path: PathLike, speech: np.ndarray, speech_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(probs, logits)`` from an exported file (ONNX via onnxruntime, else TorchScript)."""
    path = str(path)
    speech = np.ascontiguousarray(speech, dtype=np.float32)
    speech_lengths = np.ascontiguousarray(speech_lengths, dtype=np.int64)
    if path.endswith(".onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return onnx_run(sess, speech, speech_lengths, ["probs", "logits"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mod = torch.jit.load(path, map_location="cpu")
    with torch.no_grad():
        probs, logits = mod(torch.from_numpy(speech), torch.from_numpy(speech_lengths))
    return probs.numpy(), logits.numpy()


def check_export(model: nn.Module, path: PathLike, sample_rate: int, atol: float = 1e-4,
                 seconds: tuple[float, ...] = (1.5, 0.05, 0.7)) -> float:
    """Max |difference| of probs and logits between ``path`` and PyTorch on a batch of
    clips of different lengths (``seconds``: 0.05 s to 1.5 s), each scored alone by PyTorch.

    Raises RuntimeError when it exceeds ``atol``.
    """
    g = torch.Generator().manual_seed(1)
    lens = [max(1, int(sample_rate * s)) for s in seconds]
    batch = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        batch[i, :n] = torch.randn(n, generator=g) * 0.1
    lengths = torch.tensor(lens, dtype=torch.long)
    with torch.no_grad():
        ref_logits = torch.cat([model.forward_logits(batch[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lens)])
        ref_probs = model.logits_to_proba(ref_logits)
    probs, logits = run_exported(path, batch.numpy(), lengths.numpy())
    diff = float(max(np.abs(probs - ref_probs.numpy()).max(), np.abs(logits - ref_logits.numpy()).max()))
    if not diff <= atol:
        raise RuntimeError(f"exported model differs from PyTorch by {diff:.3g} (> {atol})")
    return diff


def export_onnx_checked(model: nn.Module, output: PathLike, sample_rate: int, atol: float = 1e-4,
                        exporter: str = "auto", opset: Optional[int] = None,
                        spectrum_input: bool = False) -> tuple[Path, str, float, list[str]]:
    """Export and check (:func:`check_export` on a batch of 3 lengths, then one clip alone); atomic.

    ``exporter="auto"``: the TorchScript-based exporter first (~1 s), ``dynamo`` when it fails or its
    file differs from PyTorch by more than ``atol``. Returns ``(path, exporter used, max |diff|,
    failures of the exporters tried before)``; raises RuntimeError (every failure) when none works.
    """
    output = Path(output)
    order = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    failures: list[str] = []
    for name in order:
        try:
            with tempfile.TemporaryDirectory(prefix=".export_check.", dir=output.parent if output.parent.exists() else None) as tmp:
                tmp_out = Path(tmp) / output.name
                export_onnx(model, tmp_out, sample_rate, opset=opset, exporter=name, spectrum_input=spectrum_input)
                diff = max(check_export(model, tmp_out, sample_rate, atol=atol),
                           check_export(model, tmp_out, sample_rate, atol=atol, seconds=(2.3,)))
                output.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_out, output)
            return output, name, diff, failures
        except Exception as e:  # noqa: BLE001 - any exporter problem: try the next one
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # torch.export's messages carry colour codes
            failures.append(f"{name}: {type(e).__name__}: {text.splitlines()[0] if text else ''}")
    raise RuntimeError("; ".join(failures))


def default_output(source: str, fmt: str) -> Path:
    """``X.zip`` -> ``X.onnx``; folder -> ``<folder>/model.onnx``; ``user/name`` -> ``./name.onnx``."""
    suffix = SUFFIX[fmt]
    if os.path.isfile(source):
        return Path(source).with_suffix(suffix)
    if os.path.isdir(source):
        return Path(source) / f"model{suffix}"
    return Path(source.rstrip("/").split("/")[-1] + suffix)


def export(
    source: PathLike,
    fmt: str = "onnx",
    output: Optional[PathLike] = None,
    model_file: Optional[PathLike] = None,
    check: bool = True,
    opset: Optional[int] = None,
    exporter: str = "auto",
) -> dict[str, Any]:
    """Load ``source`` (as :meth:`Classifier.from_pretrained` does) and export it.

    Returns ``{"output": path, "max_abs_diff": float or None}``; with ``check`` the file
    is run (onnxruntime / TorchScript) against PyTorch (:func:`check_export`). ONNX with
    ``exporter="auto"`` is always checked (:func:`export_onnx_checked`: the fast TorchScript-based
    exporter, dynamo if that fails).
    """
    from espnet_cls.classifier import Classifier

    if fmt not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    clf = Classifier.from_pretrained(source, model_file=model_file)
    out = Path(output) if output else default_output(str(source), fmt)
    model = clf.model.cpu().eval()
    if fmt == "onnx" and exporter == "auto":
        _path, used, diff, _failed = export_onnx_checked(model, out, clf.sample_rate, opset=opset)
        logger.info("ONNX through the %s exporter", used)
    else:
        if fmt == "onnx":
            export_onnx(model, out, clf.sample_rate, opset=opset, exporter=exporter)
        else:
            export_torchscript(model, out, clf.sample_rate)
        diff = check_export(model, out, clf.sample_rate) if check else None
    if diff is not None:
        logger.info("check: max |exported - PyTorch| = %.3g on clips of 0.05-1.5 s", diff)
    return {"output": str(out), "max_abs_diff": diff}
