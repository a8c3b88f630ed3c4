"""A small PANN-style CNN encoder (``encoder: cnn``).

Blocks of ``convs_per_block`` × (3×3 conv, BatchNorm, ReLU) followed by 2×2 average pooling
over (time, frequency) give a feature map per 2**n_blocks-subsampled frame. Its frequency axis
is then flattened (``freq_pooling: flatten``, the default: keeps where in the spectrum a pattern
is, which a shallow CNN needs) and projected by Linear + ReLU, or averaged (``mean``, PANN's)
or maxed (``max``). Padded frames are zeroed before every convolution, so a clip's outputs do
not depend on the padding of its batch (in eval mode, where BatchNorm uses its running
statistics); in training, BatchNorm statistics are taken over the valid frames only.

``input_norm`` normalises each clip before the first block, over its valid frames: ``cmn``
subtracts the clip's mean of every feature bin (cepstral-mean-style channel normalisation: a
fixed microphone/room/codec colouring is an additive per-bin offset of log-mel features), and
``instance`` subtracts the clip's mean and divides by its standard deviation over all bins
(level only). ``none`` (default) keeps the input.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from espnet_cls.models.encoders import AbsEncoder, register_encoder
from espnet_cls.models.encoders._layers import conv2d_channels_last, masked_batch_norm
from espnet_cls.models.utils import make_pad_mask


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, n_convs: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for k in range(n_convs):
            self.convs.append(nn.Conv2d(cin if k == 0 else cout, cout, kernel_size=3, padding=1, bias=False))
            self.norms.append(nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, T, F]; mask [B, 1, T, 1] float, 1 on valid frames."""
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(masked_batch_norm(norm, conv2d_channels_last(x * mask, conv), mask))
        return x


INPUT_NORMS = ("none", "cmn", "instance")


def clip_normalize(xs: torch.Tensor, lengths: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-clip normalisation of xs [B, T, D] over the valid frames (``cmn`` or ``instance``); padding stays 0."""
    if mode == "none":
        return xs
    valid = (~make_pad_mask(lengths, xs.size(1))).to(xs.dtype).unsqueeze(-1)  # [B, T, 1]
    n = valid.sum(dim=1, keepdim=True).clamp(min=1)  # [B, 1, 1]
    if mode == "cmn":
        mean = (xs * valid).sum(dim=1, keepdim=True) / n  # [B, 1, D]
        return (xs - mean) * valid
    d = xs.size(2)
    mean = (xs * valid).sum(dim=(1, 2), keepdim=True) / (n * d)
    var = ((xs - mean).pow(2) * valid).sum(dim=(1, 2), keepdim=True) / (n * d)
    return (xs - mean) / var.clamp(min=1e-8).sqrt() * valid


@register_encoder("cnn")
class CNNEncoder(AbsEncoder):
    """PANN-style CNN.

    Args:
        input_size: feature bins (e.g. n_mels); must be >= 2**len(channels).
        channels: output channels of each block (each block halves time and frequency).
        convs_per_block: 3×3 convolutions per block (PANN: 2).
        dropout: dropout after each block (training only).
        freq_pooling: ``flatten`` (channels × remaining bins -> Linear + ReLU), ``mean`` or ``max``
            over the remaining frequency bins.
        output_size: output dimension; default channels[-1]. With ``mean``/``max`` pooling and
            output_size set, a Linear(channels[-1], output_size) + ReLU is added.
        input_norm: ``none``, ``cmn`` (per-clip mean of each bin removed) or ``instance``
            (per-clip mean and variance over all bins).
    """

    def __init__(
        self,
        input_size: int,
        channels: Sequence[int] = (32, 64, 128, 256),
        convs_per_block: int = 2,
        dropout: float = 0.1,
        freq_pooling: str = "flatten",
        output_size: int | None = None,
        input_norm: str = "none",
    ) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"encoder_conf.input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
        self.input_norm = input_norm
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("encoder_conf.channels: need at least one block")
        if input_size < 2 ** len(channels):
            raise ValueError(
                f"cnn encoder: input_size {input_size} is too small for {len(channels)} blocks "
                f"(needs >= {2 ** len(channels)} feature bins; use the default frontend, not raw samples)"
            )
        self.input_size = int(input_size)
        self.blocks = nn.ModuleList()
        cin = 1
        for c in channels:
            self.blocks.append(_ConvBlock(cin, c, int(convs_per_block)))
            cin = c
        self.dropout = nn.Dropout(float(dropout))
        if freq_pooling not in ("flatten", "mean", "max"):
            raise ValueError(f"encoder_conf.freq_pooling must be flatten, mean or max, got {freq_pooling!r}")
        self.freq_pooling = freq_pooling
        freq_bins = self.input_size // 2 ** len(channels)
        self._output_size = int(output_size) if output_size else cin
        if freq_pooling == "flatten":
            self.proj = nn.Linear(cin * freq_bins, self._output_size)
        else:
            self.proj = nn.Linear(cin, self._output_size) if output_size else None
        self.subsampling = 2 ** len(channels)

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs [B, T, D], lengths [B] -> hs [B, T // 2**n_blocks, output_size()], lengths'."""
        xs = clip_normalize(xs, lengths.to(xs.device), self.input_norm)
        if xs.size(1) < self.subsampling:  # very short input: pad so that one frame survives
            xs = F.pad(xs, (0, 0, 0, self.subsampling - xs.size(1)))
        x = xs.unsqueeze(1)  # [B, 1, T, D]
        lens = lengths
        for block in self.blocks:
            mask = (~make_pad_mask(lens, x.size(2))).to(x.dtype)[:, None, :, None]
            x = block(x, mask)
            x = F.avg_pool2d(x, kernel_size=2)
            x = self.dropout(x)
            lens = torch.div(lens, 2, rounding_mode="floor").clamp(min=1)
        if self.freq_pooling == "flatten":
            hs = x.permute(0, 2, 1, 3).reshape(x.size(0), x.size(2), x.size(1) * x.size(3))  # [B, T', C * F']
        elif self.freq_pooling == "mean":
            hs = x.mean(dim=3).transpose(1, 2)  # [B, T', C]
        else:
            hs = x.amax(dim=3).transpose(1, 2)
        if self.proj is not None:
            hs = F.relu(self.proj(hs))
        hs = hs.masked_fill(make_pad_mask(lens, hs.size(1)).unsqueeze(-1), 0.0)
        return hs, lens
