"""Full-size BEATs check (slow): the released architecture with random weights.

Run with ``python -m pytest -q -m slow -s tests/test_beats_slow.py``. It writes an
official-format checkpoint of the BEATs-base architecture (12 layers, 768 dims, 512-dim patch
embedding, conv_pos 128/16, gated relative position bias with 320 buckets / max distance 800,
deep norm), loads it, and compares our batched forward on clips of different lengths with
the independent single-clip reference of the official maths. It prints the CPU time of both
(the reference runs clip by clip, as the official ``BEATs.extract_features`` on unpadded
input) and their ratio.
"""

from __future__ import annotations

import time

import pytest
import torch
from test_beats_reference import TINY_CFG, random_official_state, ref_forward

from espnet_cls.models.encoders import get_encoder_class

BASE_CFG = dict(
    TINY_CFG,
    embed_dim=512,
    encoder_layers=12,
    encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12,
    conv_pos=128,
    conv_pos_groups=16,
    num_buckets=320,
    max_distance=800,
    layer_wise_gradient_decay_ratio=0.6,
)


@pytest.mark.slow
def test_base_size_matches_reference(tmp_path):
    torch.set_num_threads(2)
    state = random_official_state(BASE_CFG, seed=11)
    path = tmp_path / "BEATs_base_random.pt"
    torch.save({"cfg": dict(BASE_CFG), "model": state}, path)
    enc = get_encoder_class("beats")(1, beats_ckpt_path=str(path)).eval()
    g = torch.Generator().manual_seed(0)
    lens = [160000, 117000, 80000, 33600]  # 10 s, 7.3 s, 5 s, 2.1 s
    wavs = [0.1 * torch.randn(n, generator=g) for n in lens]
    batch = torch.zeros(len(lens), max(lens), 1)
    for i, w in enumerate(wavs):
        batch[i, : len(w), 0] = w
    with torch.no_grad():
        enc(batch[:1, :16000], torch.tensor([16000]))  # warm-up
        t0 = time.perf_counter()
        hs, out_lens = enc(batch, torch.tensor(lens))
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        refs = [ref_forward(state, BASE_CFG, w) for w in wavs]
        t_ref = time.perf_counter() - t0
    worst = 0.0
    for i, ref in enumerate(refs):
        assert out_lens[i].item() == ref.shape[0]
        worst = max(worst, float((hs[i, : ref.shape[0]] - ref).abs().max()))
    print(f"\nBEATs-base random weights, {len(lens)} clips ({sum(lens) / 16000:.1f} s audio), CPU "
          f"{torch.get_num_threads()} threads: ours (batched) {t_ours:.2f} s, reference (clip by clip) "
          f"{t_ref:.2f} s, ratio ref/ours {t_ref / t_ours:.2f}; max |diff| {worst:.2e}; tokens {out_lens.tolist()}")
    assert worst < 1e-3


@pytest.mark.slow
def test_base_size_cpu_timing(tmp_path):
    """Prints CPU seconds (process time, 1 thread, best of 3, alternating runs; process time stays
    meaningful on a shared machine): ours vs the reference on one 10 s clip, and ours on a batch of
    4 x 10 s vs the same 4 clips one by one."""
    torch.set_num_threads(1)
    state = random_official_state(BASE_CFG, seed=12)
    path = tmp_path / "BEATs_base_random.pt"
    torch.save({"cfg": dict(BASE_CFG), "model": state}, path)
    enc = get_encoder_class("beats")(1, beats_ckpt_path=str(path)).eval()
    g = torch.Generator().manual_seed(1)
    wavs = 0.1 * torch.randn(4, 160000, generator=g)
    n1 = torch.tensor([160000])

    def best(fn, reps=3):
        times = []
        for _ in range(reps):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return min(times)

    with torch.no_grad():
        enc(wavs[:1, :16000, None], torch.tensor([16000]))  # warm-up
        t_ours, t_ref, t_batch, t_loop = [], [], [], []
        for _ in range(3):
            t_ours.append(best(lambda: enc(wavs[:1, :, None], n1), 1))
            t_ref.append(best(lambda: ref_forward(state, BASE_CFG, wavs[0]), 1))
            t_batch.append(best(lambda: enc(wavs[:, :, None], torch.full((4,), 160000)), 1))
            t_loop.append(best(lambda: [enc(wavs[i : i + 1, :, None], n1) for i in range(4)], 1))
    o, r, b, lo = min(t_ours), min(t_ref), min(t_batch), min(t_loop)
    print(f"\nBEATs-base (90 M params), CPU seconds, 1 thread, best of 3: one 10 s clip: ours {o:.2f} s, reference {r:.2f} s "
          f"(ratio ref/ours {r / o:.2f}); 4 x 10 s: batched {b:.2f} s, one by one {lo:.2f} s (ratio {lo / b:.2f})")
    assert o > 0 and r > 0


_STUBS = {
    "espnet2/asr/encoder/abs_encoder.py": "import torch\n\n\nclass AbsEncoder(torch.nn.Module):\n    pass\n",
    "espnet2/asr/specaug/specaug.py": "class SpecAug:\n    def __init__(self, **kw):\n        raise RuntimeError('stub')\n",
    "espnet/nets/pytorch_backend/nets_utils.py": (
        "import torch\n\n\n"
        "def make_pad_mask(lengths, xs=None, length_dim=-1, maxlen=None, traceable=True):\n"
        "    lengths = torch.as_tensor(lengths)\n"
        "    return torch.arange(int(lengths.max()))[None, :] >= lengths[:, None]\n\n\n"
        "def roll_tensor(*a, **k):\n    raise RuntimeError('stub')\n"
    ),
}


@pytest.mark.slow
def test_against_espnet_beats_encoder(tmp_path, monkeypatch):
    """Cross-check with ESPnet's own ``espnet2/asr/encoder/beats_encoder.py`` (adapted from the official
    code). Not downloaded here: set ``ESPNET_BEATS_ENCODER`` to that file, e.g. extracted from the
    espnet wheel (``pip download espnet==202511 --no-deps``; ``unzip`` it). Its espnet imports are
    stubbed; only eval-mode inference is compared (the 202511 version takes ``xs [B, T]``)."""
    import importlib
    import os
    import shutil
    import sys

    src = os.environ.get("ESPNET_BEATS_ENCODER")
    if not src:
        pytest.skip("set ESPNET_BEATS_ENCODER=/path/to/espnet2/asr/encoder/beats_encoder.py")
    for rel, text in _STUBS.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for pkg in ("espnet2", "espnet2/asr", "espnet2/asr/encoder", "espnet2/asr/specaug", "espnet", "espnet/nets",
                "espnet/nets/pytorch_backend"):
        (tmp_path / pkg / "__init__.py").touch()
    shutil.copy(src, tmp_path / "espnet2/asr/encoder/beats_encoder.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in [m for m in sys.modules if m == "espnet" or m.startswith(("espnet.", "espnet2"))]:
        monkeypatch.delitem(sys.modules, mod)
    EspnetBeats = importlib.import_module("espnet2.asr.encoder.beats_encoder").BeatsEncoder
    torch.set_num_threads(2)
    for name, cfg, n in (("tiny", TINY_CFG, 8000), ("base", BASE_CFG, 160000)):
        path = tmp_path / f"{name}.pt"
        torch.save({"cfg": dict(cfg), "model": random_official_state(cfg, seed=3)}, path)
        esp = EspnetBeats(1, beats_ckpt_path=str(path))
        esp.reload_pretrained_parameters()
        esp.eval()
        ours = get_encoder_class("beats")(1, beats_ckpt_path=str(path)).eval()
        wav = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
        m = int(n * 0.63)
        batch = wav.repeat(2, 1)
        batch[1, m:] = 0
        with torch.no_grad():
            a, la, _ = esp(wav, torch.tensor([n]))
            b, lb = ours(wav[..., None], torch.tensor([n]))
            a2, la2, _ = esp(batch, torch.tensor([n, m]))
            b2, lb2 = ours(batch[..., None], torch.tensor([n, m]))
            alone, la1 = ours(wav[:, :m, None], torch.tensor([m]))
        k = int(lb2[1])
        diff = float((a - b).abs().max())
        print(f"\n{name}: single clip max|diff| ours vs ESPnet {diff:.2e}; padded batch, clip of {m} samples: "
              f"ESPnet {int(la2[1])} tokens, ours {k} (alone {int(la1[0])}); batch vs alone max|diff|: ours "
              f"{float((b2[1, :k] - alone[0]).abs().max()):.2e}, ESPnet {float((a2[1, :k] - alone[0]).abs().max()):.2e}")
        assert la.tolist() == lb.tolist() and diff < 1e-4
        torch.testing.assert_close(b2[1, :k], alone[0], rtol=1e-4, atol=1e-4)
    # training: same gradients (tiny config, dropouts 0). k_proj.bias is left out: its true gradient
    # is 0 (a per-query constant under softmax), so both hold only rounding noise there.
    cfg = dict(TINY_CFG, encoder_layers=3)
    path = tmp_path / "tiny3.pt"
    torch.save({"cfg": cfg, "model": random_official_state(cfg, seed=5)}, path)
    wav = 0.1 * torch.randn(2, 9000, generator=torch.Generator().manual_seed(0))
    n = torch.tensor([9000, 9000])
    for ratio in (1.0, 0.3):
        over = {"layer_wise_gradient_decay_ratio": ratio}
        esp = EspnetBeats(1, beats_ckpt_path=str(path), beats_config=over)
        esp.reload_pretrained_parameters()
        ours = get_encoder_class("beats")(1, beats_ckpt_path=str(path), beats_config=over)
        esp.train()
        ours.train()
        esp(wav, n)[0].pow(2).sum().backward()
        ours(wav[..., None], n)[0].pow(2).sum().backward()
        theirs = dict(esp.named_parameters())
        no_grad = [k for k, _ in ours.named_parameters() if theirs[k].grad is None]
        assert all(p.grad is not None for p in ours.parameters())
        if ratio == 1.0:
            assert not no_grad
            for k, p in ours.named_parameters():
                if not k.endswith("k_proj.bias"):
                    torch.testing.assert_close(p.grad, theirs[k].grad, rtol=1e-3, atol=1e-5, msg=k)
        print(f"layer_wise_gradient_decay_ratio {ratio}: ESPnet leaves {len(no_grad)} of "
              f"{len(list(ours.parameters()))} BEATs parameter tensors without gradient")
