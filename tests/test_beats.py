"""BEATs encoder: official checkpoint loading, equivalence with the official maths, padding, hooks."""

from __future__ import annotations

import logging

import pytest
import torch
from test_beats_reference import (
    TINY_CFG,
    official_shapes,
    random_official_state,
    ref_bucket,
    ref_forward,
    to_new_weight_norm_names,
)

from espnet_cls.models.beats import BeatsCheckpointError, relative_position_bucket
from espnet_cls.models.encoders import get_encoder_class

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def Enc():
    return get_encoder_class("beats")


def _wav(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * torch.pi * (300 + 200 * seed) * t) + 0.05 * torch.randn(n, generator=g)).float()


def _write(tmp_path, cfg, state, name="ckpt.pt", **extra):
    path = tmp_path / name
    torch.save({"cfg": dict(cfg), "model": state, **extra}, path)
    return path


def test_bucket_matches_formula():
    rel = torch.arange(-1000, 1001)
    for nb, md in ((320, 800), (320, 1280), (32, 40)):
        ours = relative_position_bucket(rel, nb, md).tolist()
        ref = [ref_bucket(int(r), nb, md) for r in rel]
        assert ours == ref
        assert min(ours) == 0 and max(ours) <= nb - 1
        if md <= 1000:  # offsets beyond max_distance share the last bucket of each half
            assert ours[0] == nb // 2 - 1 and ours[-1] == nb - 1


def test_state_dict_names_are_official(Enc):
    enc = Enc(1, beats_config=TINY_CFG)
    want = official_shapes(TINY_CFG)
    got = {k: tuple(v.shape) for k, v in enc.beats_state_dict().items()}
    assert got == want


@pytest.mark.parametrize("naming", ["weight_g/weight_v", "parametrizations"])
def test_official_checkpoint_round_trip_matches_reference(tmp_path, Enc, naming):
    state = random_official_state(TINY_CFG, seed=1)
    saved = state if naming == "weight_g/weight_v" else to_new_weight_norm_names(state)
    if naming == "parametrizations":
        # what torch itself writes for a weight-normed conv (dim=2): original0 = g, original1 = v
        d, k, g = TINY_CFG["encoder_embed_dim"], TINY_CFG["conv_pos"], TINY_CFG["conv_pos_groups"]
        conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(d, d, k, padding=k // 2, groups=g), dim=2)
        with torch.no_grad():
            conv.parametrizations.weight.original0.copy_(state["encoder.pos_conv.0.weight_g"])
            conv.parametrizations.weight.original1.copy_(state["encoder.pos_conv.0.weight_v"])
            conv.bias.copy_(state["encoder.pos_conv.0.bias"])
        torch_sd = {f"encoder.pos_conv.0.{k}": v for k, v in conv.state_dict().items()}
        assert set(torch_sd) == {k for k in saved if k.startswith("encoder.pos_conv.0.")}
        saved = {**{k: v for k, v in saved.items() if not k.startswith("encoder.pos_conv.0.")}, **torch_sd}
    path = _write(tmp_path, TINY_CFG, saved)
    enc = Enc(1, beats_ckpt_path=str(path)).eval()
    rep = enc.load_report
    assert rep.ok and not rep.unused_predictor
    for k, v in enc.beats_state_dict().items():
        assert torch.equal(v, state[k]), k
    wav = _wav(8000, 0)  # 0.5 s -> 48 frames -> 3 time patches x 8 = 24 tokens
    with torch.no_grad():
        hs, lens = enc(wav[None, :, None], torch.tensor([8000]))
        ref = ref_forward(state, TINY_CFG, wav)
    assert hs.shape == (1, 24, 32) and lens.tolist() == [24]
    torch.testing.assert_close(hs[0], ref, rtol=1e-4, atol=1e-4)


def test_max_layer_and_weighted(tmp_path, Enc):
    state = random_official_state(TINY_CFG, seed=2)
    path = _write(tmp_path, TINY_CFG, state)
    wav = _wav(6400, 1)
    x, n = wav[None, :, None], torch.tensor([6400])
    enc1 = Enc(1, beats_ckpt_path=str(path), max_layer=1).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc1(x, n)[0][0], ref_forward(state, TINY_CFG, wav, num_layers=1), rtol=1e-4, atol=1e-4)
    encw = Enc(1, beats_ckpt_path=str(path), use_weighted_representation=True).eval()
    assert encw.max_layer == 2 and encw.layer_weights.shape == (3, 1)
    with torch.no_grad():
        encw.layer_weights.copy_(torch.tensor([[-50.0], [-50.0], [50.0]]))  # softmax -> all weight on the top layer
        torch.testing.assert_close(encw(x, n)[0][0], ref_forward(state, TINY_CFG, wav), rtol=1e-4, atol=1e-4)
    # the weights train
    encw.train()
    encw(x, n)[0].sum().backward()
    assert encw.layer_weights.grad is not None


def test_predictor_reported_and_strict_accounting(tmp_path, Enc, caplog):
    cfg = dict(TINY_CFG, finetuned_model=True)
    state = random_official_state(cfg, seed=3)
    path = _write(tmp_path, cfg, state, label_dict={"a": 0})
    with caplog.at_level(logging.INFO):
        enc = Enc(1, beats_ckpt_path=str(path))
    assert sorted(enc.load_report.unused_predictor) == ["predictor.bias", "predictor.weight"]
    assert "predictor" in caplog.text

    missing = dict(state)
    del missing["encoder.layers.1.fc2.bias"]
    with pytest.raises(BeatsCheckpointError, match="encoder.layers.1.fc2.bias"):
        Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, missing, "m.pt")))
    enc = Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, missing, "m.pt")), strict_ckpt_loading=False)
    assert enc.load_report.missing == ["encoder.layers.1.fc2.bias"]

    extra = dict(state, **{"encoder.bogus.weight": torch.zeros(3)})
    with pytest.raises(BeatsCheckpointError, match="encoder.bogus.weight"):
        Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, extra, "u.pt")))

    bad_shape = dict(state, **{"encoder.layers.0.fc1.bias": torch.zeros(7)})
    with pytest.raises(BeatsCheckpointError, match="shape"):
        Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, bad_shape, "s.pt")))

    # checkpoints may list the shared relative bias once (layer 0) only
    only0 = {k: v for k, v in state.items() if not (k.endswith("relative_attention_bias.weight") and ".layers.0." not in k)}
    enc = Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, only0, "r.pt")))
    assert enc.load_report.ok
    assert enc.encoder.layers[1].self_attn.relative_attention_bias is enc.encoder.layers[0].self_attn.relative_attention_bias

    differ = dict(state)
    differ["encoder.layers.1.self_attn.relative_attention_bias.weight"] = differ[
        "encoder.layers.1.self_attn.relative_attention_bias.weight"] + 1.0
    with pytest.raises(BeatsCheckpointError, match="differs from encoder.layers.0"):
        Enc(1, beats_ckpt_path=str(_write(tmp_path, cfg, differ, "d.pt")))

    with pytest.raises(BeatsCheckpointError, match="not a BEATs checkpoint"):
        torch.save({"state": {}}, tmp_path / "x.pt")
        Enc(1, beats_ckpt_path=str(tmp_path / "x.pt"))
    with pytest.raises(BeatsCheckpointError, match="absent.pt: BEATs checkpoint not found.*docs/beats.md"):
        Enc(1, beats_ckpt_path=str(tmp_path / "absent.pt"))


def test_beats_config_overrides_checkpoint(tmp_path, Enc):
    state = random_official_state(TINY_CFG, seed=4)
    path = _write(tmp_path, TINY_CFG, state)
    enc = Enc(1, beats_ckpt_path=str(path), beats_config={"dropout": 0.3, "encoder_layerdrop": 0.1,
                                                          "layer_wise_gradient_decay_ratio": 0.5})
    assert enc.cfg.dropout == 0.3 and enc.encoder.layerdrop == 0.1
    assert enc.encoder.layers[0].dropout1.p == 0.3
    assert enc.encoder.layer_wise_gradient_decay_ratio == 0.5
    assert enc.cfg.encoder_embed_dim == 32  # from the checkpoint
    over = {"dropout": 0.3, "encoder_layerdrop": 0.1, "layer_wise_gradient_decay_ratio": 0.5}
    conf = Enc.inference_conf({"beats_ckpt_path": str(path), "beats_config": over})
    assert conf["beats_ckpt_path"] is None and conf["beats_config"]["encoder_layers"] == 2
    assert conf["beats_config"]["dropout"] == 0.3
    assert Enc(1, **conf).cfg.to_dict() == enc.cfg.to_dict()


def test_padded_batch_matches_single_clips(Enc):
    torch.manual_seed(0)
    enc = Enc(1, beats_config=TINY_CFG).eval()
    lens = [8000, 6000, 3100, 1000]  # the last is shorter than one patch (padded to 16 frames)
    wavs = [_wav(n, i) for i, n in enumerate(lens)]
    batch = torch.zeros(len(lens), max(lens), 1)
    for i, w in enumerate(wavs):
        batch[i, : len(w), 0] = w
        batch[i, len(w):, 0] = 0.7  # junk padding must not matter
    with torch.no_grad():
        hs, out_lens = enc(batch, torch.tensor(lens))
        assert out_lens.tolist() == [24, 16, 8, 8]
        for i, w in enumerate(wavs):
            single, sl = enc(w[None, :, None], torch.tensor([len(w)]))
            assert sl.tolist() == [out_lens[i].item()]
            torch.testing.assert_close(hs[i, : out_lens[i]], single[0], rtol=1e-4, atol=1e-4)
            assert torch.all(hs[i, out_lens[i]:] == 0)


def test_param_groups_layer_wise_decay(Enc):
    enc = Enc(1, beats_config=TINY_CFG, layer_wise_lr_decay=0.5, use_weighted_representation=True)
    groups = enc.param_groups(1e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(enc.parameters()))
    lr = {g["name"]: g["lr"] for g in groups}
    # depth 0 = embedding, 1..2 = layers, 3 = top (layer weights)
    assert lr == pytest.approx({"encoder.depth0": 1e-3 * 0.125, "encoder.depth1": 1e-3 * 0.25,
                                "encoder.depth2": 1e-3 * 0.5, "encoder.depth3": 1e-3})
    one = Enc(1, beats_config=TINY_CFG).param_groups(1e-3)
    assert len(one) == 1 and one[0]["lr"] == 1e-3


def test_freeze_steps(Enc):
    torch.manual_seed(0)
    enc = Enc(1, beats_config=TINY_CFG, freeze_steps=2).train()
    x, n = _wav(4000, 0)[None, :, None], torch.tensor([4000])
    for step, frozen in ((0, True), (1, True), (2, False)):
        enc.zero_grad()
        enc.on_train_step(step)
        out = enc(x, n)[0]
        assert out.requires_grad is (not frozen)
        if not frozen:
            out.sum().backward()
            assert enc.patch_embedding.weight.grad is not None


def test_layer_wise_gradient_decay(Enc):
    torch.manual_seed(0)
    cfg = dict(TINY_CFG)
    x, n = _wav(4000, 0)[None, :, None], torch.tensor([4000])
    grads = {}
    for ratio in (1.0, 0.5):
        torch.manual_seed(0)
        enc = Enc(1, beats_config=dict(cfg, layer_wise_gradient_decay_ratio=ratio)).eval()
        enc(x, n)[0].pow(2).sum().backward()
        grads[ratio] = (enc.encoder.layers[1].fc1.weight.grad.clone(), enc.encoder.layers[0].fc1.weight.grad.clone(),
                        enc.patch_embedding.weight.grad.clone())
    # the gradient is scaled at the input of every layer: the top layer keeps its gradient,
    # layer i (of 2) gets ratio ** (1 - i), the patch embedding ratio ** 2
    torch.testing.assert_close(grads[0.5][0], grads[1.0][0])
    torch.testing.assert_close(grads[0.5][1], grads[1.0][1] * 0.5)
    torch.testing.assert_close(grads[0.5][2], grads[1.0][2] * 0.25)


def test_rejects_bad_options(Enc):
    with pytest.raises(ValueError, match="input_size"):
        Enc(80, beats_config=TINY_CFG)
    with pytest.raises(ValueError, match="adapter_config"):
        Enc(1, beats_config=TINY_CFG, adapter_config="a.json")
    with pytest.raises(ValueError, match="max_layer"):
        Enc(1, beats_config=TINY_CFG, max_layer=5)
    with pytest.raises(ValueError, match="encoder_layer_drop"):
        Enc(1, beats_config=dict(TINY_CFG, encoder_layer_drop=0.1))


def test_roll_waveforms_rotates_within_valid_samples():
    from espnet_cls.models.beats import roll_waveforms

    torch.manual_seed(0)
    x = torch.arange(1, 21, dtype=torch.float32).repeat(3, 1)
    lens = torch.tensor([20, 12, 3])
    x[1, 12:] = -1.0
    x[2, 3:] = -1.0
    seen = set()
    for _ in range(20):
        y = roll_waveforms(x, lens, interval=4)
        assert torch.equal(y[1, 12:], x[1, 12:]) and torch.equal(y[2], x[2])  # padding kept; 3 < interval: no roll
        for i, n in ((0, 20), (1, 12)):
            shift = int((y[i, 0] - 1).item())
            assert shift % 4 == 0 and torch.equal(y[i, :n], torch.roll(x[i, :n], -shift))
            seen.add((i, shift))
    assert {s for i, s in seen if i == 0} == {0, 4, 8, 12, 16}


def test_augmentation_only_in_training(Enc):
    enc = Enc(1, beats_config=TINY_CFG, roll_augment=True, roll_interval=160,
              specaug_config={"apply_time_warp": True, "apply_freq_mask": True, "apply_time_mask": True})
    plain = Enc(1, beats_config=TINY_CFG)
    plain.load_state_dict(enc.state_dict())
    x, n = _wav(6000, 3)[None, :, None], torch.tensor([6000])
    enc.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x, n)[0], plain(x, n)[0], rtol=0, atol=0)
        fb_eval, _ = enc.features(x, n)
        enc.train()
        torch.manual_seed(1)
        fb_train, _ = enc.features(x, n)
    assert not torch.equal(fb_eval, fb_train)
