"""The jit inference backend (traced + frozen model) gives the eager model's scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espnet_cls import inference as I
from espnet_cls.tasks.cls import build_model

torch.set_num_threads(1)
FS = 16000
ENCODERS = {
    "cnn": {"channels": [8, 16, 16]},
    "transformer": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2},
    "conformer": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 1, "cnn_module_kernel": 7},
}


def model_for(encoder: str, ctype: str = "multi-class"):
    torch.manual_seed(0)
    config = {
        "token_list": ["a", "b", "c", "<blank>", "<unk>"],
        "frontend": "default",
        "frontend_conf": {"fs": "16k", "n_mels": 32},
        "normalize": "utterance_mvn",
        "encoder": encoder,
        "encoder_conf": dict(ENCODERS[encoder]),
        "decoder": "linear",
        "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": ctype},
    }
    return build_model(config).eval()


def clips(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lens = list(rng.integers(800, 40000, size=n - 1)) + [200]  # one clip shorter than the conv2d input layer needs
    return [(0.1 * rng.standard_normal(int(k))).astype(np.float32) for k in lens]


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("batch_size", [1, 4])
def test_jit_scores_equal_eager(encoder, batch_size):
    model = model_for(encoder, "multi-label" if encoder == "cnn" else "multi-class")
    waves = clips(7)
    eager = I.BatchInference(model, FS, batch_size=1, backend="eager").predict(waves)
    engine = I.BatchInference(model, FS, batch_size=batch_size, backend="jit")
    jit = engine.predict(waves)
    assert engine._jit is not False and engine._jit is not None  # it really ran traced
    np.testing.assert_allclose(jit, eager, atol=1e-5, rtol=0)


def test_jit_falls_back_to_eager_for_long_batches_and_untraceable_models():
    model = model_for("cnn")
    waves = clips(3)
    eager = I.BatchInference(model, FS, batch_size=1, backend="eager").predict(waves)
    short = I.BatchInference(model, FS, batch_size=2, backend="jit", jit_max_sec=0.01)
    np.testing.assert_allclose(short.predict(waves), eager, atol=1e-5, rtol=0)

    class Untraceable(torch.nn.Module):  # lacks the CLSModel parts ExportWrapper traces: tracing fails, eager runs
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.frontend, self.encoder = inner.frontend, inner.encoder

        def predict_proba(self, speech, lengths):
            return self.inner.predict_proba(speech, lengths)

    assert I.trace_for_inference(Untraceable(model), FS) is False
    with pytest.raises(ValueError, match="backend"):
        I.BatchInference(model, FS, backend="onnx-gpu")
