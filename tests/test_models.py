"""Tests of espnet_cls.models and espnet_cls.tasks.cls (tiny tensors, CPU, fast)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from espnet_cls.models.cls_model import ESPNET_MIXUP_ALPHA, CLSModel
from espnet_cls.models.normalize import GlobalMVN, UtteranceMVN
from espnet_cls.models.specaug import SpecAug
from espnet_cls.tasks.cls import MODEL_DEFAULTS, build_model, load_model

torch.set_num_threads(1)

TOKENS = ["dog", "cat", "bird", "<blank>", "<unk>"]
SMALL_ENCODERS = {
    "cnn": {"channels": [8, 16, 16]},
    "transformer": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2},
    "conformer": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2, "cnn_module_kernel": 7},
}


def small_config(encoder: str = "cnn", **over) -> dict:
    cfg = {
        "token_list": list(TOKENS),
        "frontend": "default",
        "frontend_conf": {"fs": "16k", "n_mels": 32},
        "normalize": "utterance_mvn",
        "encoder": encoder,
        "encoder_conf": dict(SMALL_ENCODERS[encoder]),
        "decoder": "linear",
        "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": "multi-class"},
    }
    cfg.update(over)
    return cfg


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), generator=g) * 0.1
    # non-zero junk in the padding: the model must ignore it
    x = torch.where(torch.arange(max(lengths))[None] < lens[:, None], x, torch.full_like(x, 0.7))
    return x, lens


@pytest.mark.parametrize("encoder", ["cnn", "transformer", "conformer"])
@pytest.mark.parametrize("pooling", ["mean", "max", "meanmax", "meanstd", "attention"])
def test_padding_does_not_change_outputs(encoder, pooling):
    torch.manual_seed(0)
    model = build_model(small_config(encoder, decoder_conf={"pooling": pooling}))
    model.eval()
    x, lens = padded_batch([8000, 5123, 1700, 2400])
    with torch.no_grad():
        logits = model.forward_logits(x, lens)
        probs = model.predict_proba(x, lens)
        for i, n in enumerate(lens.tolist()):
            alone_logits = model.forward_logits(x[i : i + 1, :n], lens[i : i + 1])
            alone_probs = model.predict_proba(x[i : i + 1, :n], lens[i : i + 1])
            torch.testing.assert_close(logits[i : i + 1], alone_logits, atol=1e-5, rtol=0)
            torch.testing.assert_close(probs[i : i + 1], alone_probs, atol=1e-5, rtol=0)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))


def test_meanstd_pooling_is_mean_and_std_of_valid_frames():
    from espnet_cls.models.decoder import LinearDecoder

    dec = LinearDecoder(n_classes=2, encoder_output_size=3, pooling="meanstd")
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(2, 7, 3, generator=g)
    hs[1, 4:] = 100.0  # padding of clip 1: must not count
    pooled = dec.pool(hs, torch.tensor([7, 4]))
    assert pooled.shape == (2, 6)
    for i, n in enumerate([7, 4]):
        torch.testing.assert_close(pooled[i, :3], hs[i, :n].mean(0))
        torch.testing.assert_close(pooled[i, 3:], hs[i, :n].std(0, unbiased=False))
    assert dec.linear.in_features == 6


def test_global_mvn_from_npz(tmp_path):
    feats = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4))
    stats = tmp_path / "feats_stats.npz"
    np.savez(stats, count=np.array(50), sum=feats.sum(0), sum_square=(feats**2).sum(0))
    mvn = GlobalMVN(stats)
    x = torch.tensor(feats, dtype=torch.float32).unsqueeze(0)
    y, _ = mvn(x, torch.tensor([50]))
    torch.testing.assert_close(y[0].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[0].std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    # padded frames are zeroed
    y2, _ = mvn(x, torch.tensor([30]))
    assert torch.all(y2[0, 30:] == 0)
    torch.testing.assert_close(y2[0, :30], y[0, :30])
    with pytest.raises(ValueError, match="stats_file"):
        GlobalMVN(tmp_path / "missing.npz")


def test_utterance_mvn_uses_valid_frames_only():
    x = torch.randn(2, 10, 3) + 5
    x[1, 6:] = 1000.0  # padding junk
    y, _ = UtteranceMVN(norm_means=True, norm_vars=True)(x, torch.tensor([10, 6]))
    torch.testing.assert_close(y[1, :6].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, :6].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.all(y[1, 6:] == 0)
    alone, _ = UtteranceMVN(norm_means=True, norm_vars=True)(x[1:, :6], torch.tensor([6]))
    torch.testing.assert_close(y[1:, :6], alone)


def test_specaug_only_in_training_and_respects_lengths():
    torch.manual_seed(0)
    cfg = small_config(
        "cnn",
        normalize=None,
        specaug="specaug",
        specaug_conf={"apply_time_warp": True, "freq_mask_width_range": [5, 10], "time_mask_width_range": [5, 10]},
    )
    model = build_model(cfg)
    x, lens = padded_batch([8000, 4000])
    model.eval()
    with torch.no_grad():
        a = model.forward_logits(x, lens)
        b = model.forward_logits(x, lens)
    torch.testing.assert_close(a, b)  # eval: deterministic, no augmentation
    feats, flens = model.extract_feats(x, lens)
    aug, _ = model.specaug(feats, flens)
    assert not torch.equal(aug, feats)
    assert torch.all(aug[1, int(flens[1]) :] == 0)  # nothing leaks into the padding
    model.train()
    with torch.no_grad():
        c = model.forward_logits(x, lens)
    model.eval()
    assert not torch.allclose(a, c)


def test_specaug_time_mask_ratio():
    torch.manual_seed(0)
    aug = SpecAug(apply_time_warp=False, apply_freq_mask=False, time_mask_width_ratio_range=[0.2, 0.2], num_time_mask=1)
    x = torch.ones(2, 100, 4)
    y, _ = aug(x, torch.tensor([100, 50]))
    assert int((y[0, :, 0] == 0).sum()) == 20
    assert int((y[1, :50, 0] == 0).sum()) == 10
    assert torch.all(y[1, 50:] == 1)


def test_blank_and_unk_targets():
    ml = build_model(small_config("cnn", model_conf={"classification_type": "multi-label"}))
    label = torch.tensor([[0, 2, -1], [3, -1, -1], [1, 4, -1], [4, -1, -1]])
    target, valid = ml.label_to_target(label, torch.tensor([2, 1, 2, 1]))
    expected = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(target, expected)
    assert valid.all()
    mc = build_model(small_config("cnn"))
    target, valid = mc.label_to_target(torch.tensor([[1], [4], [3]]), torch.tensor([1, 1, 1]))
    torch.testing.assert_close(target, torch.tensor([[0.0, 1, 0], [0, 0, 0], [0, 0, 0]]))
    assert valid.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="multi-label"):
        mc.label_to_target(torch.tensor([[0, 1]]), torch.tensor([2]))


def test_unk_clip_contributes_no_loss():
    torch.manual_seed(0)
    model = build_model(small_config("cnn"))
    model.eval()
    x, lens = padded_batch([4000, 4000])
    loss_both, stats, weight = model(x, lens, torch.tensor([[1], [4]]), torch.tensor([1, 1]))
    loss_one, _, _ = model(x[:1], lens[:1], torch.tensor([[1]]), torch.tensor([1]))
    torch.testing.assert_close(loss_both, loss_one)
    assert weight == 2 and set(stats) >= {"loss", "acc"}
    loss_none, stats, _ = model(x[1:], lens[1:], torch.tensor([[4]]), torch.tensor([1]))
    assert float(loss_none.detach()) == 0.0 and "acc" not in stats


def test_multilabel_loss_is_bce():
    torch.manual_seed(0)
    model = build_model(small_config("cnn", model_conf={"classification_type": "multi-label"}))
    model.eval()
    x, lens = padded_batch([4000, 3000])
    label = torch.tensor([[0, 2], [3, -1]])
    loss, stats, _ = model(x, lens, label, torch.tensor([2, 1]))
    logits = model.forward_logits(x, lens)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0, 0, 1], [0, 0, 0]]))
    torch.testing.assert_close(loss, ref)
    probs = model.predict_proba(x, lens)
    torch.testing.assert_close(probs, torch.sigmoid(logits))


def test_label_smoothing_multiclass():
    model = build_model(small_config("cnn", model_conf={"lsm_weight": 0.1}))
    model.train()
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    loss = model.compute_loss(logits, target, torch.tensor([True]))
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
    torch.testing.assert_close(loss, ref)


def test_mixup_alpha_defaults_to_espnets_in_the_model_and_the_task():
    # one home for the default: a config without mixup_alpha and a bare CLSModel both draw Beta(0.8, 0.8)
    model = build_model(small_config("cnn", model_conf={"classification_type": "multi-class", "mixup_probability": 0.5}))
    assert model.mixup_alpha == ESPNET_MIXUP_ALPHA == 0.8
    assert inspect.signature(CLSModel).parameters["mixup_alpha"].default == ESPNET_MIXUP_ALPHA


def test_hard_mixup_targets_are_the_union_of_the_labels():
    torch.manual_seed(0)
    model = build_model(small_config("cnn", model_conf={"classification_type": "multi-label",
                                                        "mixup_probability": 1.0, "mixup_type": "hard"}))
    speech = torch.stack([torch.full((100,), float(i + 1)) for i in range(4)])
    lens = torch.tensor([100, 100, 100, 100])
    target = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    valid = torch.tensor([True, True, True, True])
    mixed, _, mixed_t = model._mixup(speech, lens, target, valid)
    changed = [i for i in range(4) if not torch.equal(mixed[i], speech[i])]
    assert changed, "with probability 1 some clip must be mixed"
    for i in changed:
        # the partner clip p is the one whose level the mixed waveform lies towards: lam*(i+1) + (1-lam)*(p+1)
        v = float(mixed[i, 0])
        partners = [p for p in range(4) if p != i and torch.equal(mixed_t[i], torch.maximum(target[i], target[p]))]
        assert partners, f"clip {i}: targets {mixed_t[i].tolist()} are not the union with any other clip"
        assert set(mixed_t[i].unique().tolist()) <= {0.0, 1.0}  # hard labels, no soft weights
        assert min(float(speech[p, 0]) for p in partners + [i]) <= v <= max(float(speech[p, 0]) for p in partners + [i])
    with pytest.raises(ValueError, match="mixup_type: hard.*multi-label"):
        build_model(small_config("cnn", model_conf={"classification_type": "multi-class", "mixup_type": "hard"}))
    with pytest.raises(ValueError, match="mixup_type must be one of soft, hard"):
        build_model(small_config("cnn", model_conf={"classification_type": "multi-label", "mixup_type": "union"}))


def test_mixup_targets_are_mixed():
    torch.manual_seed(0)
    model = build_model(small_config("cnn", model_conf={"mixup_probability": 1.0, "mixup_alpha": 0.5}))
    speech = torch.zeros(4, 100)
    for i in range(4):
        speech[i] = float(i + 1)
    lens = torch.tensor([100, 100, 60, 100])
    target = torch.eye(3)[[0, 1, 2, 0]]
    valid = torch.tensor([True, True, True, False])
    mixed, new_lens, mixed_t = model._mixup(speech, lens, target, valid)
    torch.testing.assert_close(mixed_t.sum(-1), torch.ones(4))  # soft targets stay distributions
    assert torch.equal(mixed[3], speech[3]) and torch.equal(mixed_t[3], target[3])  # invalid clip untouched
    changed = [i for i in range(4) if not torch.equal(mixed_t[i], target[i])]
    assert changed, "with probability 1 some valid clip must be mixed"
    for i in changed:
        # clips 0..2 have classes 0..2: the partner's class names the partner clip
        classes = torch.nonzero(mixed_t[i] > 0).flatten().tolist()
        assert len(classes) == 2 and i in classes
        p = [c for c in classes if c != i][0]
        lam = float(mixed_t[i, i])
        assert 0.0 < lam < 1.0
        # waveform mixed with the same lambda as the target
        assert float(mixed[i, 0]) == pytest.approx(lam * (i + 1) + (1 - lam) * (p + 1), abs=1e-5)
        assert int(new_lens[i]) == max(int(lens[i]), int(lens[p]))
        if p == 2:  # the partner's padding (beyond 60 samples) is zero, not mixed in
            assert float(mixed[i, 80]) == pytest.approx(lam * (i + 1), abs=1e-5)
    model.train()
    loss, stats, _ = model(speech, lens, torch.tensor([[0], [1], [2], [4]]), torch.tensor([1, 1, 1, 1]))
    assert math.isfinite(float(loss.detach()))


def test_unknown_names_and_keys():
    with pytest.raises(ValueError, match="registered encoders: .*cnn.*conformer.*transformer"):
        build_model({**small_config("cnn"), "encoder": "nope"})
    with pytest.raises(ValueError, match="bogus.*valid keys: .*channels"):
        build_model(small_config("cnn", encoder_conf={"bogus": 1}))
    with pytest.raises(ValueError, match="frontend_conf.*n_melz"):
        build_model(small_config("cnn", frontend_conf={"n_melz": 3}))
    with pytest.raises(ValueError, match="model_conf.*foo"):
        build_model(small_config("cnn", model_conf={"foo": 1}))
    with pytest.raises(ValueError, match="pooling"):
        build_model(small_config("cnn", decoder_conf={"pooling": "median"}))
    assert set(MODEL_DEFAULTS) >= {"frontend", "normalize", "specaug", "encoder", "decoder", "model_conf", "input_size"}


def test_n_classes_and_token_list_file(tmp_path):
    tl = tmp_path / "token_list"
    tl.write_text("a\nb\n<unk>\n")
    model = build_model(small_config("cnn", token_list=str(tl)))
    assert model.n_classes == 2 and model.token_list == ["a", "b", "<unk>"]
    model = build_model(small_config("cnn"))
    assert model.n_classes == 3 and model.classification_type == "multi-class"


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_load_model_round_trip(tmp_path, fmt):
    torch.manual_seed(0)
    feats = np.random.default_rng(0).normal(-5.0, 3.0, size=(200, 32))
    stats = tmp_path / "feats_stats.npz"
    np.savez(stats, count=np.array(200), sum=feats.sum(0), sum_square=(feats**2).sum(0))
    cfg = small_config("transformer", normalize="global_mvn", normalize_conf={"stats_file": str(stats)})
    model = build_model(cfg)
    model.eval()
    if fmt == "pth":
        path = tmp_path / "valid.acc.best.pth"
        torch.save(model.state_dict(), path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file(model.state_dict(), str(path))
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    stats.unlink()  # the statistics travel with the weights
    loaded, config = load_model(tmp_path / "config.yaml", path)
    assert not loaded.training and config["encoder"] == "transformer"
    x, lens = padded_batch([4000, 2500])
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_proba(x, lens), model.predict_proba(x, lens))
    assert torch.load(tmp_path / "valid.acc.best.pth", weights_only=True) if fmt == "pth" else True


def test_frontend_none_raw_samples():
    from espnet_cls.models.encoders import AbsEncoder

    model = build_model(small_config("transformer", frontend="none", encoder_conf={**SMALL_ENCODERS["transformer"], "input_layer": "linear"}))
    assert model.frontend is None and model.normalize is None
    feats, flens = model.extract_feats(torch.randn(2, 50), torch.tensor([50, 30]))
    assert feats.shape == (2, 50, 1) and flens.tolist() == [50, 30]
    assert isinstance(model.encoder, AbsEncoder)


def test_cnn_learns_two_sines():
    torch.manual_seed(0)
    fs, n = 16000, 4000
    t = torch.arange(n) / fs

    def batch(k: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (k,), generator=g)
        f = torch.where(y == 0, 440.0, 1760.0) * (1 + 0.05 * torch.rand(k, generator=g))
        x = 0.5 * torch.sin(2 * math.pi * f[:, None] * t[None] + torch.rand(k, 1, generator=g) * 6.28)
        x = x + 0.05 * torch.randn(k, n, generator=g)
        return x, torch.full((k,), n), y

    cfg = small_config("cnn", token_list=["low", "high", "<blank>", "<unk>"], encoder_conf={"channels": [8, 16]})
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(25):
        x, lens, y = batch(16, g)
        loss, _, _ = model(x, lens, y[:, None], torch.ones(16, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, lens, y = batch(64, g)
    with torch.no_grad():
        acc = float((model.predict_proba(x, lens).argmax(-1) == y).float().mean())
    assert acc >= 0.95, acc


def test_precomputed_features_input():
    model = build_model(small_config("cnn", frontend="none", input_size=32, normalize="utterance_mvn"))
    model.eval()
    feats = torch.randn(2, 40, 32)
    lens = torch.tensor([40, 25])
    with torch.no_grad():
        out = model.forward_logits(feats, lens)
        alone = model.forward_logits(feats[1:, :25], lens[1:])
    torch.testing.assert_close(out[1:], alone, atol=1e-5, rtol=0)


def test_param_groups_and_train_step_hooks():
    model = build_model(small_config("cnn"))
    calls = []
    enc_params = list(model.encoder.parameters())
    model.encoder.param_groups = lambda base_lr: [{"params": enc_params, "lr": base_lr * 0.1}]
    model.encoder.on_train_step = calls.append
    groups = model.param_groups(1.0)
    assert [g["lr"] for g in groups] == [0.1, 1.0]
    n_all = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_all
    model.on_train_step(7)
    assert calls == [7]
    plain = build_model(small_config("cnn"))
    assert len(plain.param_groups(1e-3)) == 1


def test_specaug_replace_with_mean():
    torch.manual_seed(0)
    aug = SpecAug(apply_time_warp=False, apply_freq_mask=False, time_mask_width_range=[10, 10], num_time_mask=1, replace_with_zero=False)
    x = torch.arange(40.0).view(1, 20, 2).repeat(2, 1, 1)
    y, _ = aug(x, torch.tensor([20, 15]))
    changed = (y != x).any(-1)
    assert int(changed[0].sum()) > 0
    assert torch.all(y[1, 15:] == x[1, 15:])  # padding untouched
    masked_vals = y[0][changed[0]].unique()
    assert masked_vals.numel() == 1 and float(masked_vals) == pytest.approx(float(x[0].mean()))


def test_init_and_raw_frontend_ignores_normalize():
    model = build_model(small_config("cnn", init="xavier_uniform"))
    w = model.decoder.linear.weight.detach()
    bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
    assert float(w.abs().max()) <= bound and float(model.decoder.linear.bias.detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="init"):
        build_model(small_config("cnn", init="orthogonal"))
    raw = build_model(
        small_config(
            "transformer",
            frontend="none",
            normalize="global_mvn",
            normalize_conf={"stats_file": "/nonexistent.npz"},
            specaug="specaug",
            encoder_conf={**SMALL_ENCODERS["transformer"], "input_layer": "linear"},
        )
    )
    assert raw.normalize is None and raw.specaug is None and raw.frontend is None


def test_frontend_matches_torchaudio_melspectrogram():
    import torchaudio

    from espnet_cls.models.frontend import DefaultFrontend

    fe = DefaultFrontend(fs="16k", n_fft=512, hop_length=160, n_mels=40, fmin=20, fmax=7600)
    x = torch.randn(1, 8000)
    feats, flens = fe(x, torch.tensor([8000]))
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, hop_length=160, f_min=20, f_max=7600, n_mels=40, pad_mode="constant",
        norm="slaney", mel_scale="slaney", power=2.0, center=True,
    )(x)
    assert feats.shape == (1, 8000 // 160 + 1, 40) and int(flens[0]) == 51
    torch.testing.assert_close(feats[0], torch.log(ref[0].clamp(min=1e-10)).t(), atol=1e-4, rtol=1e-4)


def test_masked_batch_norm_ignores_padding_in_training():
    from espnet_cls.models.encoders._layers import masked_batch_norm

    torch.manual_seed(0)
    bn_masked = torch.nn.BatchNorm2d(3)
    bn_ref = torch.nn.BatchNorm2d(3)
    x = torch.randn(2, 3, 10, 4)
    mask = torch.ones(2, 1, 10, 1)
    mask[1, :, 6:] = 0  # clip 1 has 6 valid frames
    x_pad = x.clone()
    x_pad[1, :, 6:] = 123.0
    y = masked_batch_norm(bn_masked, x_pad, mask)
    # reference: native BatchNorm over exactly the valid frames (clip 0 all, clip 1 first 6)
    valid = torch.cat([x[0].flatten(1), x[1, :, :6].flatten(1)], dim=1)  # [C, N]
    y_ref = bn_ref(valid.t().reshape(-1, 3, 1, 1)).reshape(-1, 3).t()
    torch.testing.assert_close(torch.cat([y[0].flatten(1), y[1, :, :6].flatten(1)], dim=1), y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn_masked.running_mean, bn_ref.running_mean)
    torch.testing.assert_close(bn_masked.running_var, bn_ref.running_var)
    bn_masked.eval()
    torch.testing.assert_close(masked_batch_norm(bn_masked, x_pad, mask), bn_masked(x_pad))


@pytest.mark.parametrize("input_layer,factor", [("conv2d2", 2), ("conv2d", 4), ("conv2d6", 6), ("conv2d8", 8), ("linear", 1)])
def test_transformer_input_layers(input_layer, factor):
    torch.manual_seed(0)
    conf = {**SMALL_ENCODERS["transformer"], "num_blocks": 1, "input_layer": input_layer}
    model = build_model(small_config("transformer", encoder_conf=conf))
    model.eval()
    x, lens = padded_batch([8000, 3000, 400])
    with torch.no_grad():
        feats, flens = model.extract_feats(x, lens)
        hs, hlens = model.encoder(feats, flens)
        logits = model.forward_logits(x, lens)
        for i, n in enumerate(lens.tolist()):
            torch.testing.assert_close(logits[i : i + 1], model.forward_logits(x[i : i + 1, :n], lens[i : i + 1]), atol=1e-5, rtol=0)
    assert abs(int(hlens[0]) - int(flens[0]) / factor) <= 3 and int(hlens.min()) >= 1
    assert hs.size(1) == int(hlens.max())


def test_espnet_encoder_options():
    conf = {**SMALL_ENCODERS["conformer"], "normalize_before": True, "activation_type": "swish", "rel_pos_type": "latest"}
    build_model(small_config("conformer", encoder_conf=conf))
    with pytest.raises(ValueError, match="rel_pos/rel_selfattn"):
        build_model(small_config("conformer", encoder_conf={**SMALL_ENCODERS["conformer"], "pos_enc_layer_type": "rel_pos"}))
    with pytest.raises(ValueError, match="concat_after"):
        build_model(small_config("transformer", encoder_conf={**SMALL_ENCODERS["transformer"], "concat_after": True}))
    # ESPnet's key name selfattention_layer_type (its conformer configs) means selfattn_layer_type
    from espnet_cls.models.encoders._layers import RelPositionSelfAttention

    esp = {**SMALL_ENCODERS["conformer"], "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn"}
    assert isinstance(build_model(small_config("conformer", encoder_conf=esp)).encoder.layers[0].attn, RelPositionSelfAttention)
    with pytest.raises(ValueError, match="not both"):
        build_model(small_config("conformer", encoder_conf={**esp, "selfattn_layer_type": "legacy_rel_selfattn"}))


def test_conformer_rel_pos_padding_invariance_and_shift():
    from espnet_cls.models.encoders._layers import RelPositionSelfAttention

    torch.manual_seed(0)
    conf = {**SMALL_ENCODERS["conformer"], "pos_enc_layer_type": "rel_pos", "selfattn_layer_type": "rel_selfattn"}
    model = build_model(small_config("conformer", encoder_conf=conf))
    assert isinstance(model.encoder.layers[0].attn, RelPositionSelfAttention)
    model.eval()
    x, lens = padded_batch([8000, 5123, 1700])
    with torch.no_grad():
        logits = model.forward_logits(x, lens)
        for i, n in enumerate(lens.tolist()):
            torch.testing.assert_close(logits[i : i + 1], model.forward_logits(x[i : i + 1, :n], lens[i : i + 1]), atol=1e-5, rtol=0)
    # against a naive per-pair computation of score(i, j) = ((q_i + u).k_j + (q_i + v).W p(i - j)) / sqrt(dk)
    attn = model.encoder.layers[0].attn.eval()
    t, d = 5, 32
    xin = torch.randn(1, t, d)
    pad = torch.tensor([[False, False, False, False, True]])
    _, pos_emb = model.encoder.pos(xin)
    with torch.no_grad():
        out = attn(xin, pad, pos_emb)
        q = attn.linear_q(xin)[0].view(t, attn.h, attn.d_k)
        k = attn.linear_k(xin)[0].view(t, attn.h, attn.d_k)
        v = attn.linear_v(xin)[0].view(t, attn.h, attn.d_k)
        div = torch.exp(torch.arange(0, d, 2).float() * -(math.log(10000.0) / d))
        ref = torch.zeros(t, attn.h, attn.d_k)
        for i in range(t):
            scores = torch.full((attn.h, t), float("-inf"))
            for j in range(4):  # 4 valid keys
                pe = torch.zeros(d)
                pe[0::2] = torch.sin((i - j) * div)
                pe[1::2] = torch.cos((i - j) * div)
                pj = attn.linear_pos(pe).view(attn.h, attn.d_k)
                scores[:, j] = (((q[i] + attn.pos_bias_u) * k[j]).sum(-1) + ((q[i] + attn.pos_bias_v) * pj).sum(-1)) / math.sqrt(attn.d_k)
            w = torch.softmax(scores, dim=-1)  # [H, T]
            ref[i] = torch.einsum("ht,thd->hd", w, v)
        ref = attn.linear_out(ref.reshape(t, d))
    torch.testing.assert_close(out[0], ref, atol=1e-5, rtol=1e-5)
