"""Feature normalization: global MVN from ``feats_stats.npz``, per-utterance MVN, and PCEN.

Each uses only the valid frames (``lengths``) and sets padded frames to 0, so padding never
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


class PCEN(nn.Module):
    """Per-channel energy normalization (PCEN; Wang et al., ICASSP 2017) of log-mel features.

    Takes the frontend's ``x = log(E)`` [B, T, D] and returns, per mel bin,
    ``(E / (eps + M)**alpha + delta)**root - delta**root``, where ``M`` is ``E`` smoothed over time
    by the first-order filter ``M[t] = (1 - smooth) * M[t-1] + smooth * E[t]`` started at the first
    frame (``M[-1] = E[0]``, librosa's initial state). The filter runs as a causal FIR of the
    ``(1 - smooth)**k`` weights over the frames whose weight is at least ``1e-3`` of the first (normalised
    to sum 1), so a clip's valid frames depend only on earlier frames of the same clip: padding never
    changes them, and the graph exports to ONNX. ``alpha`` near 1 divides out the slowly varying level of
    each bin (gain, channel colouring, stationary noise: an automatic gain control), ``root`` compresses
    like the log without its blow-up near 0.

    Args:
        smooth: the filter's coefficient per frame (0.04 at 20-ms frames: a ~0.5-s time constant).
        alpha, delta, root, eps: PCEN's constants (librosa's defaults 0.98, 2, 0.5, 1e-6).
        trainable: learn ``alpha``, ``delta`` and ``root`` (as logs, shared over bins; Wang et al.'s
            trainable PCEN), starting from the values given; ``smooth`` stays fixed.
    """

    def __init__(
        self,
        smooth: float = 0.04,
        alpha: float = 0.98,
        delta: float = 2.0,
        root: float = 0.5,
        eps: float = 1e-6,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < smooth <= 1.0:
            raise ValueError(f"normalize_conf.smooth must be in (0, 1], got {smooth}")
        for name, v in (("alpha", alpha), ("delta", delta), ("root", root), ("eps", eps)):
            if v <= 0:
                raise ValueError(f"normalize_conf.{name} must be > 0, got {v}")
        if root > 1:
            raise ValueError(f"normalize_conf.root must be in (0, 1], got {root}")
        self.smooth = float(smooth)
        self.eps = float(eps)
        self.trainable = bool(trainable)
        logs = torch.log(torch.tensor([alpha, delta, root], dtype=torch.float32))
        if self.trainable:
            self.log_params = nn.Parameter(logs)
        else:
            self.register_buffer("log_params", logs)
        taps = 1 if smooth >= 1.0 else max(1, int(np.ceil(np.log(1e-3) / np.log(1.0 - smooth))) + 1)
        w = (1.0 - smooth) ** np.arange(taps, dtype=np.float64)  # weight of frame t - k
        self.register_buffer("kernel", torch.from_numpy((w / w.sum())[::-1].copy()).float().view(1, 1, taps), persistent=False)

    def extra_repr(self) -> str:
        a, d, r = self.log_params.detach().exp().tolist()
        return f"smooth={self.smooth}, alpha={a:.3g}, delta={d:.3g}, root={r:.3g}, eps={self.eps}, trainable={self.trainable}"

    def smoothed(self, energy: torch.Tensor) -> torch.Tensor:
        """energy [B, T, D] -> M [B, T, D] (the causal smoothing; the first frame repeated before the clip)."""
        b, t, d = energy.shape
        taps = self.kernel.size(-1)
        seq = energy.transpose(1, 2).reshape(b * d, 1, t)
        seq = torch.cat([seq[:, :, :1].expand(b * d, 1, taps - 1), seq], dim=2)
        return torch.nn.functional.conv1d(seq, self.kernel.to(seq.dtype)).reshape(b, d, t).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D] log energies, lengths [B] -> PCEN features (padded frames 0), lengths."""
        pad = make_pad_mask(lengths, x.size(1)).to(x.device).unsqueeze(-1)
        x = x.float().masked_fill(pad, -1e4)  # padding: zero energy (it cannot reach valid frames anyway)
        m = self.smoothed(torch.exp(x))
        alpha, delta, root = self.log_params.exp().unbind()
        gain = torch.exp(x - alpha * torch.log(self.eps + m))  # E / (eps + M)^alpha
        out = (gain + delta).pow(root) - delta.pow(root)
        return out.masked_fill(pad, 0.0), lengths
