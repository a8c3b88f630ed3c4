"""ESPnet config conversion and the ESPnet-exact module options, without real ESPnet (fast).

The oracle comparison against real ESPnet is tests/test_espnet_oracle.py (marker ``espnet``).
"""

from __future__ import annotations

import pytest
import torch

from espnet_cls.espnet import EspnetModelError, convert_config
from espnet_cls.models.encoders.conformer import ConformerEncoder
from espnet_cls.models.frontend import DefaultFrontend

TOKENS = ["a", "b", "c", "<unk>"]


def test_reflect_frontend_is_torch_stft_reflect_per_clip() -> None:
    torch.manual_seed(0)
    fe = DefaultFrontend(fs=16000, n_fft=512, hop_length=128, n_mels=40, pad_mode="reflect")
    clips = [torch.randn(3000), torch.randn(2101)]
    batch = torch.zeros(2, 3000)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    feats, flens = fe(batch, torch.tensor([3000, 2101]))
    for i, c in enumerate(clips):
        spec = torch.stft(c, 512, 128, window=torch.hann_window(512), center=True, pad_mode="reflect", return_complex=True)
        ref = torch.log(torch.clamp(spec.abs().pow(2).T @ fe.mel_fb, min=1e-10))
        assert int(flens[i]) == ref.size(0) == len(c) // 128 + 1
        torch.testing.assert_close(feats[i, : ref.size(0)], ref, atol=1e-4, rtol=1e-5)
        assert torch.all(feats[i, ref.size(0):] == 0)


def test_convert_fills_espnet_defaults() -> None:
    ours = convert_config({"token_list": TOKENS, "frontend": "default", "frontend_conf": {"fs": "16k"},
                           "normalize": "utterance_mvn", "encoder": "conformer", "encoder_conf": {"output_size": 64},
                           "decoder": "linear", "decoder_conf": {"pooling": "CLS"}, "model_conf": {}})
    assert ours["frontend_conf"]["hop_length"] == 128 and ours["frontend_conf"]["pad_mode"] == "reflect"
    enc = ours["encoder_conf"]
    assert enc["linear_units"] == 2048 and enc["macaron_style"] is False
    assert (enc["pos_enc_layer_type"], enc["selfattn_layer_type"]) == ("legacy_rel_pos", "legacy_rel_selfattn")
    assert enc["after_norm"] is True and enc["layer_norm_eps"] == 1e-12
    assert ours["decoder_conf"]["pooling"] == "cls"
    assert ours["model_conf"]["classification_type"] == "multi-class"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"encoder": "e_branchformer"}, r"encoder: 'e_branchformer' is not implemented"),
        ({"preencoder": "sinc"}, r"preencoder: 'sinc' is not implemented"),
        ({"frontend": "s3prl"}, r"frontend: 's3prl' is not implemented"),
        ({"encoder_conf": {"input_layer": "conv1d2"}}, r"input_layer='conv1d2' is not implemented"),
        ({"encoder_conf": {"normalize_before": False}}, r"normalize_before=False is not implemented"),
        ({"encoder_conf": {"no_such_option": 1}}, r"no_such_option not supported"),
    ],
)
def test_unsupported_part_named(change: dict, message: str) -> None:
    config = {"token_list": TOKENS, "encoder": "transformer", "encoder_conf": {}, **change}
    with pytest.raises(EspnetModelError, match=message):
        convert_config(config)


def test_legacy_rel_pos_conformer_padding_invariant() -> None:
    torch.manual_seed(0)
    kw = dict(output_size=16, attention_heads=2, linear_units=24, num_blocks=2, cnn_module_kernel=5,
              pos_enc_layer_type="rel_pos", selfattn_layer_type="rel_selfattn", after_norm=True, norm_final_without_cnn=False)
    legacy = ConformerEncoder(20, rel_pos_type="legacy", **kw).eval()
    latest = ConformerEncoder(20, rel_pos_type="latest", **kw).eval()
    latest.load_state_dict(legacy.state_dict())
    x = torch.randn(2, 40, 20)
    lens = torch.tensor([40, 29])
    with torch.no_grad():
        h, hl = legacy(x, lens)
        alone, _ = legacy(x[1:, :29], lens[1:])
        other, _ = latest(x, lens)
    torch.testing.assert_close(h[1, : int(hl[1])], alone[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(h, other, atol=1e-3)  # legacy is a different function


def test_beats_gets_espnet_fbank_defaults() -> None:
    ours = convert_config({"token_list": TOKENS, "frontend": None, "input_size": 1, "encoder": "beats",
                           "encoder_conf": {"beats_ckpt_path": "x.pt"}})
    assert ours["frontend"] is None and ours["input_size"] == 1
    assert (ours["encoder_conf"]["fbank_mean"], ours["encoder_conf"]["fbank_std"]) == (15.29130, 5.90532)


@pytest.mark.parametrize("encoder, conf", [
    ("transformer", {"output_size": 16, "attention_heads": 2, "linear_units": 24, "num_blocks": 2, "input_layer": "conv2d"}),
    ("conformer", {"output_size": 16, "attention_heads": 2, "linear_units": 24, "num_blocks": 2, "macaron_style": True,
                   "cnn_module_kernel": 5, "input_layer": "linear"}),
])
def test_espnet_names_round_trip(tmp_path, encoder: str, conf: dict) -> None:
    """Our model -> ESPnet's names (export) -> ours (loader) gives back every tensor, and the
    ESPnet-side config converts back to a model with the same weights and outputs."""
    from espnet_cls.espnet.export import export_espnet
    from espnet_cls.espnet.loader import load_espnet_model
    from espnet_cls.tasks.cls import build_model

    config = convert_config({"token_list": TOKENS, "frontend": "default", "frontend_conf": {"n_mels": 20},
                             "normalize": "utterance_mvn", "encoder": encoder, "encoder_conf": conf})
    torch.manual_seed(0)
    model = build_model(config).eval()
    info = export_espnet(model, config, tmp_path / "esp")
    assert not info["notes"]
    back, _ = load_espnet_model(tmp_path / "esp")
    a, b = model.state_dict(), back.state_dict()
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    x = torch.randn(2, 4000)
    lens = torch.tensor([4000, 3100])
    with torch.no_grad():
        torch.testing.assert_close(model.predict_proba(x, lens), back.predict_proba(x, lens))
