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
    """Prints CPU timings (1 thread, best of 3, alternating): ours vs the reference on one 10 s
    clip, and ours on a batch of 4 x 10 s vs the same 4 clips one by one."""
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
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
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
    print(f"\nBEATs-base (90 M params), CPU 1 thread, best of 3: one 10 s clip: ours {o:.2f} s, reference {r:.2f} s "
          f"(ratio ref/ours {r / o:.2f}); 4 x 10 s: batched {b:.2f} s, one by one {lo:.2f} s (ratio {lo / b:.2f})")
    assert o > 0 and r > 0
