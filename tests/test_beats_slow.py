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
