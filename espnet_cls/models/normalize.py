"""Feature normalization: global MVN from ``feats_stats.npz`` and per-utterance MVN.

Both use only the valid frames (``lengths``) and set padded frames to 0, so padding never
changes a clip's features.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from espnet_cls.models.utils import make_pad_mask


def stats_from_npz(stats_file: str | os.PathLike, eps: float = 1e-20) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std [D] from an ESPnet ``feats_stats.npz`` (keys ``count``, ``sum``, ``sum_square``)."""
    with np.load(stats_file) as st:
        missing = [k for k in ("count", "sum", "sum_square") if k not in st.files]
        if missing:
            raise ValueError(f"{stats_file}: missing keys {missing} (has {st.files})")
        count = float(np.asarray(st["count"]).sum())
        s = np.asarray(st["sum"], dtype=np.float64)
        ss = np.asarray(st["sum_square"], dtype=np.float64)
    if count <= 0:
        raise ValueError(f"{stats_file}: count is {count}")
    mean = s / count
    var = ss / count - mean * mean
    std = np.sqrt(np.maximum(var, eps))
    return mean, std


class GlobalMVN(nn.Module):
    """(x - mean) / std with corpus statistics.

    The mean and std are buffers, so they are saved in the model's ``state_dict``: a model
    loaded from its weights does not need the stats file any more (``stats_file`` may then be
    missing; pass ``allow_missing=True`` — :func:`espnet_cls.tasks.cls.load_model` does).
    """

    def __init__(
        self,
        stats_file: str | os.PathLike | None = None,
        norm_means: bool = True,
        norm_vars: bool = True,
        eps: float = 1e-20,
        allow_missing: bool = False,
    ) -> None:
        super().__init__()
        self.stats_file = None if stats_file is None else str(stats_file)
        self.norm_means = bool(norm_means)
        self.norm_vars = bool(norm_vars)
        self.eps = float(eps)
        if self.stats_file is not None and Path(self.stats_file).is_file():
            mean, std = stats_from_npz(self.stats_file, self.eps)
            self.register_buffer("mean", torch.from_numpy(mean).float())
            self.register_buffer("std", torch.from_numpy(std).float())
        elif allow_missing:
            self.register_buffer("mean", torch.empty(0))
            self.register_buffer("std", torch.empty(0))
        else:
            raise ValueError(
                f"normalize_conf.stats_file: {self.stats_file!r} not found (global_mvn needs the feats_stats.npz of stage 5)"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: D401 - torch hook
        # Stats unknown at build time (file missing): take the shapes from the checkpoint.
        for name in ("mean", "std"):
            key = prefix + name
            if key in state_dict and getattr(self, name).shape != state_dict[key].shape:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"stats_file={self.stats_file}, norm_means={self.norm_means}, norm_vars={self.norm_vars}"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], lengths [B] -> normalized x (padded frames 0), lengths."""
        if self.mean.numel() == 0:
            raise RuntimeError("GlobalMVN: no statistics (stats_file missing and no weights loaded)")
        if self.mean.numel() != x.size(-1):
            raise ValueError(f"GlobalMVN: stats have dim {self.mean.numel()}, features have {x.size(-1)}")
        if self.norm_means:
            x = x - self.mean
        if self.norm_vars:
            x = x / self.std
        x = x.masked_fill(make_pad_mask(lengths, x.size(1)).unsqueeze(-1), 0.0)
        return x, lengths


class UtteranceMVN(nn.Module):
    """Per-utterance mean (and optionally variance) normalization over the valid frames only.

    ESPnet's defaults: ``norm_means=True``, ``norm_vars=False``.
    """

    def __init__(self, norm_means: bool = True, norm_vars: bool = False, eps: float = 1e-20) -> None:
        super().__init__()
        self.norm_means = bool(norm_means)
        self.norm_vars = bool(norm_vars)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"norm_means={self.norm_means}, norm_vars={self.norm_vars}"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D], lengths [B] -> normalized x (padded frames 0), lengths."""
        valid = (~make_pad_mask(lengths, x.size(1))).unsqueeze(-1).to(x.dtype)  # [B, T, 1]
        n = lengths.clamp(min=1).to(x.dtype).view(-1, 1, 1)
        x = x * valid
        mean = x.sum(dim=1, keepdim=True) / n
        if self.norm_means:
            x = (x - mean) * valid
        if self.norm_vars:
            centered = (x - mean) * valid if not self.norm_means else x
            var = centered.pow(2).sum(dim=1, keepdim=True) / n
            x = x / torch.sqrt(var.clamp(min=self.eps))
        return x * valid, lengths
