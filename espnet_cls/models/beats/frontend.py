"""BEATs input pipeline: waveform roll augmentation and the Kaldi fbank of the official code."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torchaudio.compliance.kaldi as ta_kaldi
from torch import Tensor

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
WIN_SAMPLES = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)  # 400
HOP_SAMPLES = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)  # 160
DEFAULT_FBANK_MEAN = 15.41663
DEFAULT_FBANK_STD = 6.55582


def num_frames(num_samples: int) -> int:
    """Frames of Kaldi's fbank with ``snip_edges=True`` (0 when shorter than one window)."""
    return 0 if num_samples < WIN_SAMPLES else 1 + (num_samples - WIN_SAMPLES) // HOP_SAMPLES


def min_samples_for_frames(frames: int) -> int:
    """Fewest samples that give ``frames`` fbank frames."""
    return WIN_SAMPLES + (frames - 1) * HOP_SAMPLES


def beats_fbank(
    wavs: Tensor,
    lengths: Tensor,
    fbank_mean: float = DEFAULT_FBANK_MEAN,
    fbank_std: float = DEFAULT_FBANK_STD,
    min_frames: int = 16,
) -> Tuple[Tensor, Tensor]:
    """Normalised 128-bin log-mel fbank of every clip, computed on its valid samples only.

    Args:
        wavs: ``[B, T]`` float waveforms in [-1, 1] at 16 kHz (padding after ``lengths``).
        lengths: ``[B]`` valid samples per clip.
        fbank_mean, fbank_std: the output is ``(fbank - mean) / (2 * std)`` (official BEATs).
        min_frames: clips giving fewer frames (shorter than one patch) are right-padded with
            digital silence up to this many frames first, so every clip yields a token.

    Returns:
        ``fbank [B, F_max, 128]`` (zeros after each clip's frames) and ``frames [B]`` (long).

    The waveform is scaled by 2**15 (int16 range) and Kaldi's defaults are used otherwise
    (povey window, pre-emphasis 0.97, DC removal, no dither, ``snip_edges``), in float32.
    """
    feats = []
    with torch.autocast(device_type=wavs.device.type, enabled=False):
        for wav, n in zip(wavs, lengths.tolist()):
            w = wav[: int(n)].float()
            need = min_samples_for_frames(min_frames)
            if w.numel() < need:
                w = torch.cat([w, w.new_zeros(need - w.numel())])
            fb = ta_kaldi.fbank(
                w.unsqueeze(0) * 2**15,
                num_mel_bins=NUM_MEL_BINS,
                sample_frequency=SAMPLE_RATE,
                frame_length=FRAME_LENGTH_MS,
                frame_shift=FRAME_SHIFT_MS,
            )
            feats.append((fb - fbank_mean) / (2 * fbank_std))
    frames = torch.tensor([f.shape[0] for f in feats], dtype=torch.long, device=wavs.device)
    out = wavs.new_zeros(len(feats), int(frames.max()), NUM_MEL_BINS, dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, frames


def roll_waveforms(
    wavs: Tensor, lengths: Tensor, interval: int, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Circularly roll every clip left within its valid samples by a random multiple of ``interval``.

    For a clip of ``n`` samples the shift is ``k * interval`` with ``k`` uniform in
    ``[0, n // interval)`` (no shift when ``n < interval``); padding stays in place.
    Returns a new tensor ``[B, T]``.
    """
    if interval < 1:
        raise ValueError(f"roll_interval must be >= 1 sample, got {interval}")
    out = wavs.clone()
    for i, n in enumerate(lengths.tolist()):
        n = int(n)
        steps = n // interval
        if steps <= 1:
            continue
        shift = int(torch.randint(steps, (1,), generator=generator)) * interval
        if shift:
            out[i, :n] = torch.roll(wavs[i, :n], -shift, dims=0)
    return out
