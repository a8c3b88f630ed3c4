"""SpecAugment (ESPnet's ``specaug`` option): time warp, frequency masks, time masks.

Applied by the model in training mode only. Every operation works per clip inside its
valid length (``lengths``), so padding is never warped into a clip and time masks never
land in the padding. Masked values are 0 (or the clip mean), as ESPnet's (before normalization).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _range(value: Sequence[float] | None, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (0, value)
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"specaug_conf: {name} must be [low, high] with low <= high, got {value!r}")
    return (value[0], value[1])


class SpecAug(nn.Module):
    """SpecAugment with ESPnet's option names and defaults.

    Args:
        apply_time_warp, time_warp_window (frames), time_warp_mode (``bicubic``|``bilinear``|``nearest``...).
        apply_freq_mask, freq_mask_width_range ([low, high] bins), num_freq_mask.
        apply_time_mask, time_mask_width_range ([low, high] frames) or time_mask_width_ratio_range
        ([low, high] fractions of each clip's length; default width range [0, 30]), num_time_mask.
        replace_with_zero: masked values are 0 (default), else the clip's mean over its valid frames.
    """

    def __init__(
        self,
        apply_time_warp: bool = True,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: Sequence[int] = (0, 20),
        num_freq_mask: int = 2,
        apply_time_mask: bool = True,
        time_mask_width_range: Sequence[int] | None = None,
        time_mask_width_ratio_range: Sequence[float] | None = None,
        num_time_mask: int = 2,
        replace_with_zero: bool = True,
    ) -> None:
        super().__init__()
        if not (apply_time_warp or apply_freq_mask or apply_time_mask):
            raise ValueError("specaug_conf: at least one of apply_time_warp/apply_freq_mask/apply_time_mask must be true")
        if apply_time_mask and time_mask_width_range is not None and time_mask_width_ratio_range is not None:
            raise ValueError("specaug_conf: give time_mask_width_range or time_mask_width_ratio_range, not both")
        self.apply_time_warp = bool(apply_time_warp)
        self.time_warp_window = int(time_warp_window)
        self.time_warp_mode = str(time_warp_mode)
        self.apply_freq_mask = bool(apply_freq_mask)
        self.freq_mask_width_range = _range(freq_mask_width_range, "freq_mask_width_range")
        self.num_freq_mask = int(num_freq_mask)
        self.apply_time_mask = bool(apply_time_mask)
        self.time_mask_width_range = _range(time_mask_width_range, "time_mask_width_range")
        self.time_mask_width_ratio_range = _range(time_mask_width_ratio_range, "time_mask_width_ratio_range")
        if self.apply_time_mask and self.time_mask_width_range is None and self.time_mask_width_ratio_range is None:
            self.time_mask_width_range = (0, 30)  # ESPnet's MaskAlongAxis default width
        self.num_time_mask = int(num_time_mask)
        self.replace_with_zero = bool(replace_with_zero)

    def _warp_one(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, D] (valid part of one clip) -> time-warped [T, D]."""
        t = x.size(0)
        w = self.time_warp_window
        if w <= 0 or t - w <= w + 1:
            return x
        center = int(torch.randint(w, t - w, (1,)))
        warped = int(torch.randint(center - w, center + w, (1,))) + 1
        img = x.t().unsqueeze(0).unsqueeze(0)  # [1, 1, D, T] -> interpolate along T
        kw = {} if self.time_warp_mode == "nearest" else {"align_corners": False}
        left = F.interpolate(img[..., :center], size=(x.size(1), warped), mode=self.time_warp_mode, **kw)
        right = F.interpolate(img[..., center:], size=(x.size(1), t - warped), mode=self.time_warp_mode, **kw)
        return torch.cat([left, right], dim=-1)[0, 0].t()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], lengths [B] -> augmented x (same shape), lengths (unchanged)."""
        x = x.clone()
        b, _, d = x.shape
        if self.replace_with_zero:
            fill = [0.0] * b
        else:
            fill = [float(x[i, : max(int(lengths[i]), 1)].mean()) for i in range(b)]
        if self.apply_time_warp:
            for i in range(b):
                n = int(lengths[i])
                x[i, :n] = self._warp_one(x[i, :n])
        if self.apply_freq_mask and self.freq_mask_width_range is not None:
            lo, hi = self.freq_mask_width_range
            hi = min(int(hi), d)
            lo = min(int(lo), hi)
            for i in range(b):
                for _ in range(self.num_freq_mask):
                    width = int(torch.randint(lo, hi + 1, (1,)))
                    if width <= 0:
                        continue
                    start = int(torch.randint(0, d - width + 1, (1,)))
                    x[i, : int(lengths[i]), start : start + width] = fill[i]
        if self.apply_time_mask:
            for i in range(b):
                n = int(lengths[i])
                if self.time_mask_width_ratio_range is not None:
                    lo = int(self.time_mask_width_ratio_range[0] * n)
                    hi = int(self.time_mask_width_ratio_range[1] * n)
                else:
                    lo, hi = int(self.time_mask_width_range[0]), int(self.time_mask_width_range[1])
                hi = min(hi, n)
                lo = min(lo, hi)
                for _ in range(self.num_time_mask):
                    width = int(torch.randint(lo, hi + 1, (1,)))
                    if width <= 0:
                        continue
                    start = int(torch.randint(0, n - width + 1, (1,)))
                    x[i, start : start + width, :] = fill[i]
        return x, lengths
