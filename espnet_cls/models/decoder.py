"""Linear decoder (``decoder: linear``): pooling over the valid frames, dropout, Linear."""

from __future__ import annotations

import torch
from torch import nn

from espnet_cls.models.utils import make_pad_mask

POOLINGS = ("mean", "max", "meanmax", "meanstd", "cls", "attention")


class LinearDecoder(nn.Module):
    """Pool encoder frames to one vector per clip, then ``Linear(encoder_output_size, n_classes)``.

    Args:
        n_classes: number of output classes.
        encoder_output_size: frame dimension D.
        pooling: ``mean`` (masked mean), ``max`` (masked max), ``meanmax`` (their sum, as PANNs),
            ``meanstd`` (mean and standard deviation over the valid frames, concatenated: the
            x-vector's statistics pooling; the Linear then takes 2 * encoder_output_size inputs),
            ``cls`` (frame 0: the CLS token of
            encoders that prepend one, else the first frame), ``attention`` (learned attention
            weights, softmax over the valid frames). ESPnet's ``CLS`` spelling is accepted.
        dropout: dropout on the pooled vector (training only).
    """

    def __init__(self, n_classes: int, encoder_output_size: int, pooling: str = "mean", dropout: float = 0.0) -> None:
        super().__init__()
        pooling = "cls" if pooling == "CLS" else pooling
        if pooling not in POOLINGS:
            raise ValueError(f"decoder_conf.pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.attention = nn.Linear(encoder_output_size, 1) if pooling == "attention" else None
        self.dropout = nn.Dropout(float(dropout))
        self.linear = nn.Linear(encoder_output_size * (2 if pooling == "meanstd" else 1), n_classes)

    def pool(self, hs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """hs [B, T, D], lengths [B] -> [B, D] ([B, 2D] for ``meanstd``) using only the valid frames."""
        pad = make_pad_mask(lengths, hs.size(1)).unsqueeze(-1)  # [B, T, 1]
        if self.pooling == "meanstd":
            n = lengths.clamp(min=1).to(hs.dtype).unsqueeze(-1)  # [B, 1]
            mean = hs.masked_fill(pad, 0.0).sum(dim=1) / n
            var = (hs - mean.unsqueeze(1)).pow(2).masked_fill(pad, 0.0).sum(dim=1) / n
            return torch.cat([mean, var.clamp(min=1e-8).sqrt()], dim=-1)
        if self.pooling in ("mean", "max", "meanmax"):
            out = 0.0
            if self.pooling != "max":
                out = hs.masked_fill(pad, 0.0).sum(dim=1) / lengths.clamp(min=1).to(hs.dtype).unsqueeze(-1)
            if self.pooling != "mean":
                out = out + hs.masked_fill(pad, float("-inf")).max(dim=1).values
            return out
        if self.pooling == "cls":
            return hs[:, 0]
        scores = self.attention(hs).masked_fill(pad, float("-inf"))  # [B, T, 1]
        weights = torch.softmax(scores, dim=1)
        return (weights * hs.masked_fill(pad, 0.0)).sum(dim=1)

    def forward(self, hs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """hs [B, T, D], lengths [B] -> logits [B, n_classes]."""
        return self.linear(self.dropout(self.pool(hs, lengths)))
