"""Small tensor helpers shared by the model components."""

from __future__ import annotations

import torch


def make_pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask [B, max_len], True at padded positions (index >= length)."""
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() > 0 else 0
    idx = torch.arange(max_len, device=lengths.device)
    return idx.unsqueeze(0) >= lengths.unsqueeze(1)


def make_valid_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask [B, max_len], True at valid positions (index < length)."""
    return ~make_pad_mask(lengths, max_len)
