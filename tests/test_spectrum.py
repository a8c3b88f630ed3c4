"""espnet_cls.spectrum (numpy, stage 7's ONNX jobs) against the PyTorch frontend it stands in for.

For every frontend option that changes the STFT (n_fft, win_length < n_fft, hop, window, centring,
zero / reflect padding, the 16-bit grid on or off), on a batch of clips of different lengths padded
together: the numpy power spectrum equals ``DefaultFrontend.power_spectrum`` of what ExportWrapper
feeds it; the spectrum-input ONNX graph plus this code score like the PyTorch model (1e-5); a model
without the default frontend keeps the waveform-input graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espnet_cls.export import ExportWrapper, check_export, default_pad_samples, export_onnx, spectrum_input_params
from espnet_cls.spectrum import power_spectrum, spectrum_params
from espnet_cls.tasks.cls import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
FS = 16000


def _model(frontend_conf: dict, pcm16: bool = True):
    torch.manual_seed(0)
    config = {
        "token_list": ["a", "b", "c", "<unk>"],
        "frontend": "default", "frontend_conf": {"fs": FS, "n_mels": 24, **frontend_conf},
        "normalize": "utterance_mvn", "encoder": "cnn", "encoder_conf": {"channels": [4, 8]},
        "decoder": "linear", "model_conf": {"classification_type": "multi-class", "pcm16_input": pcm16},
    }  # fmt: skip
    return build_model(config).eval()


def _batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        t = torch.arange(n) / FS
        x[i, :n] = 0.4 * torch.sin(2 * torch.pi * (300 + 150 * i) * t) + 0.05 * torch.randn(n, generator=g)
    x[:, -3:] += 0.5  # garbage past the shorter clips' ends: must be ignored
    return x, torch.tensor(lengths)


CASES = [
    ({"n_fft": 512, "hop_length": 160}, True),
    ({"n_fft": 1024, "hop_length": 320}, True),
    ({"n_fft": 512, "hop_length": 128, "pad_mode": "reflect"}, True),
    ({"n_fft": 400, "win_length": 320, "hop_length": 160, "window": "hamming"}, True),
    ({"n_fft": 256, "hop_length": 100, "center": False}, True),
    ({"n_fft": 512, "hop_length": 160}, False),
]


@pytest.mark.parametrize("frontend_conf,pcm16", CASES)
def test_numpy_power_spectrum_equals_the_frontend(frontend_conf, pcm16):
    model = _model(frontend_conf, pcm16)
    pad = default_pad_samples(model, FS)
    x, lens = _batch([9000, 16000, 3100])
    with torch.no_grad():
        want = model.frontend.power_spectrum(ExportWrapper(model, pad).padded_speech(x, lens), lens).numpy()
    params = spectrum_input_params(model, pad)
    assert params["pcm16_input"] is pcm16 and len(params["window"]) == model.frontend.n_fft
    got = power_spectrum(x.numpy(), lens.numpy(), params)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.max()))
    # each clip alone gives its frames of the batch (padding changes nothing)
    for i, n in enumerate(lens.tolist()):
        alone = power_spectrum(x[i : i + 1, :n].numpy(), lens[i : i + 1].numpy(), params)
        nf = int(model.frontend.num_frames(torch.tensor([n]))[0])
        np.testing.assert_allclose(alone[0, :nf], got[i, :nf], rtol=1e-4, atol=1e-6 * float(want.max()))


@pytest.mark.parametrize("frontend_conf", [CASES[2][0], CASES[3][0]])
def test_spectrum_input_graph_scores_like_pytorch(frontend_conf, tmp_path):
    import onnxruntime as ort

    model = _model(frontend_conf)
    path = export_onnx(model, tmp_path / "m.onnx", FS, exporter="torchscript", spectrum_input=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["power", "speech_lengths"]
    params = spectrum_params(dict(sess.get_modelmeta().custom_metadata_map))
    np.testing.assert_array_equal(params["window"], model.frontend.window.numpy())
    assert check_export(model, path, FS, atol=1e-5) <= 1e-5  # numpy spectrum + graph vs the PyTorch model
    wave = export_onnx(model, tmp_path / "w.onnx", FS, exporter="torchscript")  # the user-facing export
    sess = ort.InferenceSession(str(wave), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["speech", "speech_lengths"]
    assert spectrum_params(dict(sess.get_modelmeta().custom_metadata_map)) is None


def test_spectrum_input_needs_the_default_frontend(tmp_path):
    model = _model({"n_fft": 256, "hop_length": 100})
    model.frontend = None
    assert spectrum_input_params(model, 0) is None
    with pytest.raises(ValueError, match="default frontend"):
        export_onnx(model, tmp_path / "m.onnx", FS, exporter="torchscript", spectrum_input=True)
