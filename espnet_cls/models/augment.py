"""Channel and speaker augmentation on log-mel features, with SpecAugment (``specaug: augment``).

It sits where ESPnet's ``specaug`` sits (after the frontend, before normalization, in training
mode only) and works on the log-mel energies ``log(power)``, where the usual waveform-level
augmentations are cheap:

* random gain: ``x + g`` with ``g`` uniform in ``+-gain_db`` dB (a level change);
* random channel / EQ: ``x + c(f)``, a smooth random curve over the mel bins (two to four
  cosines), at most ``eq_db`` dB (a microphone, room or codec colouring);
* additive noise: ``log(exp(x) + n)`` with a noise floor ``snr_db`` (uniform in the range) below
  the clip's mean energy, its spectrum tilted at random (white to pink-ish);
* frequency shift: the spectrum moved by up to ``freq_shift`` mel bins (edges repeated), a
  cheap vocal-tract-length / pitch perturbation (VTLP-like) for unseen speakers and instruments;
* time shift: a circular shift of each clip inside its valid frames (``time_shift: true``);
* time stretch (``time_stretch: [lo, hi]``): each clip's valid frames resampled (linear interpolation) to
  ``r`` times as many, ``r`` log-uniform in the range: a tempo / attack-and-decay perturbation (with
  ``freq_shift``, the feature-domain counterpart of ESPnet's speed perturbation); the clip's length changes;
* reverberation (``reverb_frames: [lo, hi]``): an exponentially decaying tail added in the power domain,
  ``P'(t) = P(t) + g * sum_k h(k) P(t - k)`` with ``h(k) ~ exp(-k / tau)`` (``tau`` uniform in the range, in
  frames; ``h`` sums to 1) and ``g`` at ``reverb_wet_db`` (uniform) below the direct sound: a room, or another
  sample bank's release times, smeared over the frames that follow;
* Freq-MixStyle (``mix_style``: probability per batch; Schmid et al., DCASE 2022): each mel bin's mean
  and std over time mixed with those of another clip of the batch (``Beta(mix_style_alpha, ...)``), a
  timbre and channel perturbation drawn from the data itself.

Each is applied to a clip with probability ``prob``; then SpecAugment's time warp and masks
(:class:`espnet_cls.models.specaug.SpecAug`, same option names; all off unless asked). Padded
frames are never touched, so outputs do not depend on the batch's padding.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from espnet_cls.models.specaug import SpecAug, _range
from espnet_cls.models.utils import make_pad_mask

DB = math.log(10.0) / 10.0  # 1 dB of power in natural-log units


class Augment(nn.Module):
    """Feature-domain augmentation + optional SpecAugment (training only; the model applies it).

    Args:
        gain_db: random gain range +-gain_db (0: off).
        eq_db: largest deviation of the random EQ curve in dB (0: off).
        snr_db: [low, high] noise floor below the clip's mean energy in dB (null: no noise).
        freq_shift: largest spectrum shift in mel bins (0: off).
        time_shift: circular time shift within the clip.
        prob: probability of each of the above per clip.
        mix_style: probability that a batch gets Freq-MixStyle (0: off); mix_style_alpha: its Beta parameter.
        reverb_frames: [low, high] decay time constant of the reverberant tail in frames (null: off);
            reverb_wet_db: [low, high] level of the tail relative to the direct sound in dB.
        time_stretch: [low, high] range of the duration factor (e.g. [0.8, 1.25]; null: off), drawn
            log-uniform per clip; a stretched clip's length becomes ``round(length * r)``.
        apply_time_warp, time_warp_window, time_warp_mode, apply_freq_mask, freq_mask_width_range,
        num_freq_mask, apply_time_mask, time_mask_width_range, time_mask_width_ratio_range,
        num_time_mask, replace_with_zero: SpecAugment's options (ESPnet names); masks are off by default.
    """

    def __init__(
        self,
        gain_db: float = 0.0,
        eq_db: float = 0.0,
        snr_db: Sequence[float] | None = None,
        freq_shift: int = 0,
        time_shift: bool = False,
        prob: float = 0.5,
        apply_time_warp: bool = False,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = False,
        freq_mask_width_range: Sequence[int] = (0, 20),
        num_freq_mask: int = 2,
        apply_time_mask: bool = False,
        time_mask_width_range: Sequence[int] | None = None,
        time_mask_width_ratio_range: Sequence[float] | None = None,
        num_time_mask: int = 2,
        replace_with_zero: bool = True,
        mix_style: float = 0.0,
        mix_style_alpha: float = 0.3,
        reverb_frames: Sequence[float] | None = None,
        reverb_wet_db: Sequence[float] = (-12.0, 0.0),
        time_stretch: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.time_stretch = _range(time_stretch, "time_stretch")
        if self.time_stretch is not None and self.time_stretch[0] <= 0:
            raise ValueError("specaug_conf: time_stretch factors must be > 0")
        self.reverb_frames = _range(reverb_frames, "reverb_frames")
        self.reverb_wet_db = _range(reverb_wet_db, "reverb_wet_db")
        if self.reverb_frames is not None and self.reverb_frames[0] <= 0:
            raise ValueError("specaug_conf: reverb_frames must be > 0 (decay time constant in frames)")
        if not 0.0 <= mix_style <= 1.0 or mix_style_alpha <= 0:
            raise ValueError("specaug_conf: mix_style must be in [0, 1] and mix_style_alpha > 0")
        self.mix_style = float(mix_style)
        self.mix_style_alpha = float(mix_style_alpha)
        if gain_db < 0 or eq_db < 0 or freq_shift < 0:
            raise ValueError("specaug_conf: gain_db, eq_db and freq_shift must be >= 0")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"specaug_conf: prob must be in [0, 1], got {prob}")
        self.gain_db = float(gain_db)
        self.eq_db = float(eq_db)
        self.snr_db = _range(snr_db, "snr_db")
        self.freq_shift = int(freq_shift)
        self.time_shift = bool(time_shift)
        self.prob = float(prob)
        self.specaug = None
        if apply_time_warp or apply_freq_mask or apply_time_mask:
            self.specaug = SpecAug(
                apply_time_warp, time_warp_window, time_warp_mode, apply_freq_mask, freq_mask_width_range,
                num_freq_mask, apply_time_mask, time_mask_width_range, time_mask_width_ratio_range,
                num_time_mask, replace_with_zero,
            )  # fmt: skip

    def _mix_style(self, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Each clip's per-bin mean/std over its valid frames mixed with another clip's."""
        b = y.size(0)
        n = valid.sum(dim=1, keepdim=True).clamp(min=1)  # [B, 1, 1]
        mu = (y * valid).sum(dim=1, keepdim=True) / n  # [B, 1, D]
        sd = ((((y - mu) * valid) ** 2).sum(dim=1, keepdim=True) / n + 1e-6).sqrt()
        lam = torch.distributions.Beta(self.mix_style_alpha, self.mix_style_alpha).sample((b, 1, 1)).to(y.device)
        perm = torch.randperm(b, device=y.device)
        mu2 = lam * mu + (1 - lam) * mu[perm]
        sd2 = lam * sd + (1 - lam) * sd[perm]
        return (y - mu) / sd * sd2 + mu2

    def _reverb(self, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """y [B, T, D] log power -> with a decaying tail added in the power domain (valid frames only)."""
        b, t, d = y.shape
        dev = y.device
        lo, hi = self.reverb_frames
        n_taps = max(1, min(t, int(math.ceil(5 * hi))))
        tau = lo + (hi - lo) * torch.rand(b, 1, device=dev)
        h = torch.exp(-torch.arange(1, n_taps + 1, device=dev).view(1, -1) / tau)  # [B, K], lags 1..K
        h = h / h.sum(dim=1, keepdim=True)
        wlo, whi = self.reverb_wet_db
        g = torch.exp((wlo + (whi - wlo) * torch.rand(b, 1, 1, device=dev)) * DB) * self._pick(b, dev).view(b, 1, 1)
        top = torch.where(valid, y, torch.full_like(y, -1e4)).amax(dim=(1, 2), keepdim=True).detach()
        power = torch.exp(y - top) * valid  # [B, T, D], padding 0
        seq = F.pad(power.transpose(1, 2).reshape(1, b * d, t), (n_taps, 0))  # causal: lags only
        kernel = torch.cat([h.flip(1), torch.zeros(b, 1, device=dev)], dim=1)  # conv1d correlates: lag K..1, then 0
        kernel = kernel.repeat_interleave(d, dim=0).unsqueeze(1)  # [B*D, 1, K+1]
        tail = F.conv1d(seq, kernel.to(power.dtype), groups=b * d)[:, :, :t].reshape(b, d, t).transpose(1, 2)
        return torch.logaddexp(y, torch.log(g * tail.clamp(min=0)) + top)  # log(0) = -inf: y unchanged

    def _time_stretch(self, y: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y [B, T, D] (padding 0), lengths [B] -> y [B, T', D] with each picked clip's frames resampled, lengths'."""
        b, _, d = y.shape
        lo, hi = self.time_stretch
        r = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(b))
        pick = (self._pick(b, y.device) > 0).cpu()
        lens = lengths.cpu().long()
        new = torch.where(pick & (lens > 1), (lens.double() * r).round().long().clamp(min=2), lens)
        if torch.equal(new, lens):
            return y, lengths
        out = y.new_zeros(b, int(new.max()), d)
        for i in range(b):
            n, m = int(lens[i]), int(new[i])
            seg = y[i, :n]
            if m != n:  # [n, D] -> [m, D], the first and last frames kept
                seg = F.interpolate(seg.t().unsqueeze(0), size=m, mode="linear", align_corners=True)[0].t()
            out[i, :m] = seg
        return out, new.to(lengths.device, lengths.dtype)

    def _pick(self, b: int, device: torch.device) -> torch.Tensor:
        return (torch.rand(b, device=device) < self.prob).float()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D] log-mel, lengths [B] -> augmented x, lengths (same shape and padding kept, except
        that ``time_stretch`` changes the stretched clips' lengths and T)."""
        b, t, d = x.shape
        dev = x.device
        valid = (~make_pad_mask(lengths, t)).to(dev).unsqueeze(-1)  # [B, T, 1]
        y = x
        if self.reverb_frames is not None:
            y = torch.where(valid, self._reverb(y, valid), y)
        if self.snr_db is not None:
            lo, hi = self.snr_db
            snr = lo + (hi - lo) * torch.rand(b, 1, 1, device=dev)
            n = valid.sum(dim=(1, 2), keepdim=True).clamp(min=1)
            mean_energy = (y.exp() * valid).sum(dim=(1, 2), keepdim=True) / (n * d)
            tilt = torch.rand(b, 1, 1, device=dev) * torch.linspace(0.0, -15.0 * DB, d, device=dev).view(1, 1, d)
            floor = torch.log(mean_energy.clamp(min=1e-10)) - snr * DB + tilt
            noise = floor + torch.randn(b, t, d, device=dev) * 0.5  # log-energy of a noisy floor
            noisy = torch.logaddexp(y, noise)
            y = torch.where(self._pick(b, dev).view(b, 1, 1) > 0, noisy, y)
        offset = torch.zeros(b, 1, d, device=dev)
        if self.gain_db > 0:
            g = (torch.rand(b, 1, 1, device=dev) * 2 - 1) * self.gain_db * DB
            offset = offset + g * self._pick(b, dev).view(b, 1, 1)
        if self.eq_db > 0:
            pos = torch.linspace(0.0, math.pi, d, device=dev).view(1, 1, d)
            curve = torch.zeros(b, 1, d, device=dev)
            for k in range(1, 5):
                amp = torch.randn(b, 1, 1, device=dev) / k
                phase = torch.rand(b, 1, 1, device=dev) * 2 * math.pi
                curve = curve + amp * torch.cos(k * pos + phase)
            curve = curve / curve.abs().amax(dim=2, keepdim=True).clamp(min=1e-6)
            scale = torch.rand(b, 1, 1, device=dev) * self.eq_db * DB
            offset = offset + curve * scale * self._pick(b, dev).view(b, 1, 1)
        y = y + offset
        if self.freq_shift > 0:
            shifts = torch.randint(-self.freq_shift, self.freq_shift + 1, (b,), device=dev)
            shifts = shifts * self._pick(b, dev).long()
            idx = (torch.arange(d, device=dev).view(1, d) - shifts.view(b, 1)).clamp(0, d - 1)  # [B, D]
            y = torch.gather(y, 2, idx.unsqueeze(1).expand(b, t, d))
        if self.time_shift:
            pick = self._pick(b, dev)
            lens = lengths.to(dev).clamp(min=1)
            shift = (torch.rand(b, device=dev) * lens.float()).long() * pick.long()
            src = (torch.arange(t, device=dev).view(1, t) - shift.view(b, 1)) % lens.view(b, 1)  # [B, T]
            src = torch.where(valid.squeeze(-1), src, torch.arange(t, device=dev).view(1, t).expand(b, t))
            y = torch.gather(y, 1, src.unsqueeze(-1).expand(b, t, d))
        if self.mix_style > 0 and b > 1 and float(torch.rand(())) < self.mix_style:
            y = self._mix_style(y, valid)
        y = torch.where(valid, y, x)  # padding untouched
        if self.time_stretch is not None:
            y, lengths = self._time_stretch(y, lengths)
        if self.specaug is not None:
            y, lengths = self.specaug(y, lengths)
        return y, lengths
