"""Feature-domain augmentation (specaug: augment): shapes, padding, each operation, train/eval use."""

from __future__ import annotations

import math

import pytest
import torch

from espnet_cls.models.augment import DB, Augment
from espnet_cls.tasks.cls import build_model


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(4, 40, 16) - 4.0
    lens = torch.tensor([40, 25, 10, 1])
    for i, n in enumerate(lens.tolist()):
        x[i, n:] = 0.0
    return x, lens


def test_identity_when_nothing_is_on():
    x, lens = batch()
    y, l2 = Augment(prob=1.0)(x, lens)
    assert torch.equal(y, x) and torch.equal(l2, lens)


def test_padding_untouched_and_shapes_kept():
    x, lens = batch()
    aug = Augment(gain_db=6, eq_db=10, snr_db=[5, 30], freq_shift=3, time_shift=True, prob=1.0,
                  apply_freq_mask=True, freq_mask_width_range=[0, 4], apply_time_mask=True,
                  time_mask_width_ratio_range=[0, 0.2])  # fmt: skip
    for _ in range(5):
        y, l2 = aug(x, lens)
        assert y.shape == x.shape and torch.equal(l2, lens) and torch.isfinite(y).all()
        for i, n in enumerate(lens.tolist()):
            assert torch.equal(y[i, n:], x[i, n:])
        assert not torch.equal(y[0], x[0])


def test_gain_is_a_constant_offset_within_range():
    x, lens = batch()
    y, _ = Augment(gain_db=6, prob=1.0)(x, lens)
    for i, n in enumerate(lens.tolist()):
        d = y[i, :n] - x[i, :n]
        assert torch.allclose(d, d[0, 0].expand_as(d), atol=1e-5)
        assert abs(float(d[0, 0])) <= 6 * DB + 1e-6


def test_eq_is_a_smooth_curve_over_frequency_same_for_all_frames():
    x, lens = batch()
    y, _ = Augment(eq_db=10, prob=1.0)(x, lens)
    d = y[0] - x[0]
    assert torch.allclose(d, d[0].expand_as(d), atol=1e-5)  # same for every frame
    assert float(d.abs().max()) <= 10 * DB + 1e-5 and float(d.abs().max()) > 0
    assert float((d[0, 1:] - d[0, :-1]).abs().max()) < 0.5 * 10 * DB  # smooth


def test_noise_only_raises_energy():
    x, lens = batch()
    y, _ = Augment(snr_db=[0, 0], prob=1.0)(x, lens)
    assert bool((y[0] >= x[0] - 1e-5).all())  # log(exp(x) + n) >= x
    assert float((y[0] - x[0]).mean()) > 0.05


def test_freq_shift_moves_the_spectrum():
    x = torch.zeros(1, 5, 16)
    x[0, :, 8] = 1.0
    ys = {int(Augment(freq_shift=2, prob=1.0)(x, torch.tensor([5]))[0][0, 0].argmax()) for _ in range(60)}
    assert ys <= {6, 7, 8, 9, 10} and len(ys) >= 3


def test_time_shift_permutes_valid_frames_only():
    x, lens = batch()
    y, _ = Augment(time_shift=True, prob=1.0)(x, lens)
    for i, n in enumerate(lens.tolist()):
        a = sorted(map(tuple, x[i, :n].tolist()))
        b = sorted(map(tuple, y[i, :n].tolist()))
        assert a == b  # same frames, circularly shifted


def test_mix_style_mixes_per_bin_statistics_between_clips():
    x, lens = batch()
    valid = (torch.arange(40).view(1, 40, 1) < lens.view(4, 1, 1)).float()
    n = valid.sum(1, keepdim=True)
    mu = (x * valid).sum(1, keepdim=True) / n  # [B, 1, D]
    for _ in range(5):
        y, l2 = Augment(mix_style=1.0)(x, lens)
        assert torch.equal(l2, lens) and torch.isfinite(y).all()
        for i, k in enumerate(lens.tolist()):
            assert torch.equal(y[i, k:], x[i, k:])  # padding untouched
        mu_y = (y * valid).sum(1, keepdim=True) / n
        # every clip's per-bin mean is a convex mix of two clips' means: within the batch's range
        assert (mu_y >= mu.amin(0, keepdim=True) - 1e-4).all() and (mu_y <= mu.amax(0, keepdim=True) + 1e-4).all()
    assert not torch.equal(Augment(mix_style=1.0)(x, lens)[0], x)
    y, _ = Augment(mix_style=0.0)(x, lens)
    assert torch.equal(y, x)


def test_bad_options():
    with pytest.raises(ValueError, match="gain_db"):
        Augment(gain_db=-1)
    with pytest.raises(ValueError, match="prob"):
        Augment(prob=2)
    with pytest.raises(ValueError, match="snr_db"):
        Augment(snr_db=[30, 5])
    with pytest.raises(ValueError, match="mix_style"):
        Augment(mix_style=1.5)


def test_model_uses_it_in_training_only():
    cfg = {"token_list": ["a", "b", "<blank>", "<unk>"], "frontend_conf": {"n_fft": 256, "hop_length": 160, "n_mels": 32},
           "normalize": None, "encoder": "cnn", "encoder_conf": {"channels": [8, 16], "convs_per_block": 2},
           "specaug": "augment", "specaug_conf": {"gain_db": 6, "eq_db": 6, "prob": 1.0}}  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model.specaug, Augment)
    speech = torch.randn(2, 4000)
    lens = torch.tensor([4000, 3000])
    model.eval()
    with torch.no_grad():
        p1, p2 = model.predict_proba(speech, lens), model.predict_proba(speech, lens)
    assert torch.equal(p1, p2)
    model.train()
    loss, stats, _ = model(speech, lens, torch.tensor([[0], [1]]))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and "acc" in stats


@pytest.mark.parametrize("mode", ["cmn", "instance"])
def test_cnn_input_norm_removes_channel_and_ignores_padding(mode):
    from espnet_cls.models.encoders.cnn import CNNEncoder, clip_normalize

    x, lens = batch()
    offset = torch.linspace(-3, 3, 16).view(1, 1, 16) if mode == "cmn" else torch.tensor(2.5)
    shifted = x + offset
    for i, n in enumerate(lens.tolist()):
        shifted[i, n:] = 0.0
    a, b = clip_normalize(x, lens, mode), clip_normalize(shifted, lens, mode)
    for i, n in enumerate(lens.tolist()[:3]):
        assert torch.allclose(a[i, :n], b[i, :n], atol=1e-4)  # a per-bin (cmn) or level (instance) offset is gone
        assert bool((a[i, n:] == 0).all())
    enc = CNNEncoder(16, channels=[4, 8], input_norm=mode).eval()
    long = torch.cat([x[1:2, :24], torch.full((1, 16, 16), 7.0)], dim=1)  # padding content must not matter
    h1, l1 = enc(x[1:2, :24], torch.tensor([24]))
    h2, l2 = enc(long, torch.tensor([24]))
    assert int(l1) == int(l2) == 6
    assert torch.allclose(h1, h2[:, :6], atol=1e-5)
    with pytest.raises(ValueError, match="input_norm"):
        CNNEncoder(16, channels=[4, 8], input_norm="pcen")


def test_reverb_adds_a_causal_decaying_tail_in_the_power_domain():
    t, d = 30, 3
    x = torch.full((2, t, d), -200.0)  # exp() underflows: silence
    x[:, 5] = 0.0  # one loud frame
    lens = torch.tensor([t, 20])
    x[1, 20:] = 0.0  # padding
    aug = Augment(reverb_frames=[3, 3], reverb_wet_db=[0, 0], prob=1.0)
    y, l2 = aug(x, lens)
    assert torch.equal(l2, lens) and torch.isfinite(y).all()
    assert torch.equal(y[:, :6], x[:, :6])  # nothing before the onset moves, the onset itself neither
    p = y[0, :, 0].exp()
    tail = p[6:20]
    assert (tail > 0).all() and (tail[1:] < tail[:-1]).all()  # a decaying tail after the onset
    assert tail[1] / tail[0] == pytest.approx(math.exp(-1 / 3), rel=1e-3)  # time constant 3 frames
    assert float(tail.sum()) == pytest.approx(1.0, rel=0.02)  # 0 dB wet: the tail carries the onset's energy
    assert torch.equal(y[1, 20:], x[1, 20:])  # padding untouched
    quiet, _ = Augment(reverb_frames=[3, 3], reverb_wet_db=[-10, -10], prob=1.0)(x, lens)
    assert float(quiet[0, 6:20, 0].exp().sum()) == pytest.approx(0.1, rel=0.02)
    assert torch.equal(quiet[:, :6], x[:, :6])
    same, _ = Augment(reverb_frames=[3, 3], prob=0.0)(x, lens)
    assert torch.equal(same, x)
    with pytest.raises(ValueError, match="reverb_frames"):
        Augment(reverb_frames=[0, 3])


def test_time_stretch_resamples_each_clip_and_changes_its_length():
    t, d = 20, 3
    ramp = torch.arange(t, dtype=torch.float32).view(1, t, 1).expand(2, t, d).clone()
    lens = torch.tensor([20, 11])
    ramp[1, 11:] = 0.0
    y, l2 = Augment(time_stretch=[1.5, 1.5], prob=1.0)(ramp, lens)
    assert l2.tolist() == [30, 16] and y.shape == (2, 30, d)
    # a linear ramp stays a ramp from the first to the last valid value, stretched over the new length
    assert torch.allclose(y[0, :, 0], torch.linspace(0, 19, 30), atol=1e-5)
    assert torch.allclose(y[1, :16, 0], torch.linspace(0, 10, 16), atol=1e-5)
    assert torch.equal(y[1, 16:], torch.zeros(14, d))  # new padding is 0, as the frontend's
    shrunk, l3 = Augment(time_stretch=[0.5, 0.5], prob=1.0)(ramp, lens)
    assert l3.tolist() == [10, 6] and shrunk.shape == (2, 10, d)
    assert torch.allclose(shrunk[0, :, 0], torch.linspace(0, 19, 10), atol=1e-5)
    same, l4 = Augment(time_stretch=[0.5, 2.0], prob=0.0)(ramp, lens)
    assert torch.equal(same, ramp) and torch.equal(l4, lens)
    torch.manual_seed(0)
    lo_hi = [Augment(time_stretch=[0.8, 1.25], prob=1.0)(ramp[:1], lens[:1])[1].item() for _ in range(50)]
    assert min(lo_hi) >= 16 and max(lo_hi) <= 25 and len(set(lo_hi)) > 3  # round(20 * r), r in [0.8, 1.25]
    with pytest.raises(ValueError, match="time_stretch"):
        Augment(time_stretch=[0.0, 1.2])
    with pytest.raises(ValueError, match="time_stretch"):
        Augment(time_stretch=[1.2, 0.8])


def test_time_stretch_trains_through_the_model():
    cfg = {"token_list": ["a", "b", "<blank>", "<unk>"], "frontend_conf": {"n_fft": 256, "hop_length": 80, "n_mels": 16},
           "normalize": None, "encoder": "cnn", "encoder_conf": {"channels": [4, 8]},
           "specaug": "augment", "specaug_conf": {"time_stretch": [0.8, 1.25], "prob": 1.0}}  # fmt: skip
    model = build_model(cfg)
    model.train()
    torch.manual_seed(0)
    loss, stats, _ = model(torch.randn(3, 8000) * 0.1, torch.tensor([8000, 6000, 4000]), torch.tensor([[0], [1], [0]]))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and "acc" in stats


def test_pcen_normalises_level_and_channel_and_ignores_padding():
    from espnet_cls.models.normalize import PCEN

    torch.manual_seed(0)
    t, d = 120, 6
    x = torch.randn(2, t, d) * 0.5 + 2.0  # log energies
    lens = torch.tensor([t, 70])
    pcen = PCEN(smooth=0.1, trainable=False)
    y, l2 = pcen(x, lens)
    assert torch.equal(l2, lens) and torch.isfinite(y).all() and bool((y[1, 70:] == 0).all())
    # a clip alone equals the same clip inside a padded batch, whatever the padding holds
    alone, _ = pcen(x[1:2, :70], torch.tensor([70]))
    assert torch.allclose(alone, y[1:2, :70], atol=1e-6)
    # the reference recursion: M[t] = (1 - s) M[t-1] + s E[t], M[-1] = E[0]
    e = x[0].exp().double()
    m = torch.empty_like(e)
    prev = e[0]
    for i in range(t):
        prev = 0.9 * prev + 0.1 * e[i]
        m[i] = prev
    ref = (e / (1e-6 + m) ** 0.98 + 2.0) ** 0.5 - 2.0**0.5
    assert torch.allclose(y[0].double(), ref, atol=2e-3)
    # energy x100 (+20 dB) and a fixed channel colouring of -8.7..+8.7 dB move the settled output by
    # ~E**(1 - alpha): at most 15 %, where log-mel features move by up to 6.6 nats
    colour = torch.linspace(-2.0, 2.0, d)
    y2, _ = pcen(x + 20 * DB + colour, lens)
    assert float((y2[0, 60:] / y[0, 60:] - 1).abs().max()) < 0.15
    # trainable: gradients reach its three parameters
    tp = PCEN()
    out, _ = tp(x, lens)
    out.sum().backward()
    assert tp.log_params.grad is not None and bool((tp.log_params.grad != 0).all())
    for bad in ({"smooth": 0.0}, {"alpha": -1.0}, {"root": 2.0}):
        with pytest.raises(ValueError, match="normalize_conf"):
            PCEN(**bad)


def test_pcen_as_the_models_normalize_trains_and_exports_refused_to_espnet(tmp_path):
    from espnet_cls.espnet.config import EspnetModelError
    from espnet_cls.espnet.export import export_espnet
    from espnet_cls.models.normalize import PCEN

    cfg = {"token_list": ["a", "b", "<unk>"], "frontend_conf": {"n_fft": 256, "hop_length": 80, "n_mels": 16},
           "normalize": "pcen", "normalize_conf": {"smooth": 0.05}, "encoder": "transformer",
           "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 16, "num_blocks": 1}}  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model.normalize, PCEN) and model.normalize.smooth == 0.05
    model.train()
    loss, stats, _ = model(torch.randn(2, 4000) * 0.1, torch.tensor([4000, 3000]), torch.tensor([[0], [1]]))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and model.normalize.log_params.grad is not None
    with pytest.raises(EspnetModelError, match="pcen"):
        export_espnet(model.eval(), cfg, tmp_path / "esp")
