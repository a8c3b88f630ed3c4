"""Default frontend: waveform -> log-mel filterbank features.

ESPnet's ``DefaultFrontend`` (STFT power spectrum, librosa-style Slaney mel filters,
``log(clamp(x, 1e-10))``) with one deliberate difference: the STFT is centred with
**zero** padding instead of reflect padding. With zero padding a clip's frames only see
its own samples and zeros, so a clip padded inside a batch gives exactly the frames it
gives alone ("padding must not change a result"). Frame count per clip:
``num_samples // hop_length + 1`` (centred STFT), as ESPnet.

The default ``hop_length`` is 160 (10 ms at 16 kHz); ESPnet's is 128.

The log floor stays ESPnet's ``1e-10``. In empty mel bands (band-limited audio) it sits
below the 16-bit quantisation noise (~5e-10), so a float clip and its 16-bit dump would
give different features; that is handled before the frontend, not by a higher floor:
:meth:`espnet_cls.models.cls_model.CLSModel.prepare_input` puts every input on the dump's
16-bit grid (docs/design.md, "Train/serve parity").
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from espnet_cls.contract import parse_fs
from espnet_cls.models.utils import make_pad_mask


class DefaultFrontend(nn.Module):
    """Log-mel frontend.

    Args:
        fs: sampling rate (int or ``"16k"``).
        n_fft: FFT size. win_length: window length (default ``n_fft``). hop_length: hop in samples.
        window: ``hann`` | ``hamming``. n_mels: mel bands. fmin, fmax: mel band edges (Hz; fmax default fs/2).
        htk: HTK mel scale instead of Slaney's (filters are Slaney-normalised either way, as librosa).
        center: centred frames (``n_fft // 2`` samples of padding on each side), as ESPnet's default.
        pad_mode: the centring padding: ``zero`` (default) or ``reflect`` (ESPnet's / librosa's
            ``torch.stft`` padding; used for models trained by ESPnet). Either is applied per clip,
            at the clip's own ends, so a clip gives the same frames alone or padded in a batch.
    """

    def __init__(
        self,
        fs: int | str = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 160,
        window: str = "hann",
        n_mels: int = 80,
        fmin: float | None = None,
        fmax: float | None = None,
        htk: bool = False,
        center: bool = True,
        pad_mode: str = "zero",
    ) -> None:
        super().__init__()
        if pad_mode not in ("zero", "reflect"):
            raise ValueError(f"frontend_conf: pad_mode must be zero or reflect, got {pad_mode!r}")
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.fs = parse_fs(fs)
        self.n_fft = int(n_fft)
        self.win_length = int(win_length) if win_length else self.n_fft
        if self.win_length > self.n_fft:
            raise ValueError(f"frontend_conf: win_length ({self.win_length}) > n_fft ({self.n_fft})")
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        fmin = 0.0 if fmin is None else float(fmin)
        fmax = self.fs / 2 if fmax is None else float(fmax)
        if not 0 <= fmin < fmax <= self.fs / 2:
            raise ValueError(f"frontend_conf: need 0 <= fmin < fmax <= fs/2, got fmin={fmin} fmax={fmax} fs={self.fs}")
        if window == "hann":
            win = torch.hann_window(self.win_length)
        elif window == "hamming":
            win = torch.hamming_window(self.win_length)
        else:
            raise ValueError(f"frontend_conf: window must be hann or hamming, got {window!r}")
        if self.win_length < self.n_fft:  # centre the window in n_fft, as torch.stft does
            left = (self.n_fft - self.win_length) // 2
            win = torch.nn.functional.pad(win, (left, self.n_fft - self.win_length - left))
        self.register_buffer("window", win, persistent=False)
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=self.n_fft // 2 + 1,
            f_min=fmin,
            f_max=fmax,
            n_mels=self.n_mels,
            sample_rate=self.fs,
            norm="slaney",
            mel_scale="htk" if htk else "slaney",
        )
        self.register_buffer("mel_fb", fb, persistent=False)  # [n_freqs, n_mels]

    def output_size(self) -> int:
        """Feature dimension (n_mels)."""
        return self.n_mels

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of a clip of ``lengths`` samples (``lengths // hop + 1`` for a centred STFT, even n_fft)."""
        pad = 2 * (self.n_fft // 2) if self.center else 0
        return (torch.div(lengths + pad - self.n_fft, self.hop_length, rounding_mode="floor") + 1).clamp(min=0)

    def forward(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """speech [B, T] float (zero-padded), lengths [B] -> feats [B, T', n_mels], frame lengths [B].

        Padded frames of the output are set to 0. ``log_mel(power_spectrum(speech, lengths), lengths)``.
        """
        return self.log_mel(self.power_spectrum(speech, lengths), lengths)

    def power_spectrum(self, speech: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """speech [B, T] float (zero-padded), lengths [B] -> STFT power [B, T', n_fft // 2 + 1] (a view).

        :func:`espnet_cls.spectrum.power_spectrum` is the same in numpy (stage 7's ONNX jobs).
        """
        speech = speech.masked_fill(make_pad_mask(lengths, speech.size(1)), 0.0)
        # centred frames (padding explicit, so that ONNX export sees a plain STFT)
        half = self.n_fft // 2 if self.center else 0
        if self.pad_mode == "reflect" and half > 0:
            # reflect at each clip's own ends: index p -> |p|, and p >= L -> 2(L-1) - p
            t = speech.size(1)
            pos = torch.arange(-half, t + half, device=speech.device).abs().unsqueeze(0)
            last = (lengths.to(speech.device).long() - 1).unsqueeze(1)
            idx = torch.where(pos > last, 2 * last - pos, pos).clamp(0, max(t - 1, 0))
            padded = torch.gather(speech.float(), 1, idx.expand(speech.size(0), -1))
        else:
            padded = torch.nn.functional.pad(speech.float(), (half, half))
        kw = dict(n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.n_fft, window=self.window, center=False, normalized=False, onesided=True)
        if torch.onnx.is_in_onnx_export():  # the ONNX STFT has no complex output
            spec = torch.stft(padded, return_complex=False, **kw)  # [B, F, T', 2]
            # one ReduceSum over (re, im), not two Gathers: the Gathers took 2.1-2.4 ms per clip in
            # onnxruntime against 0.4-0.6 ms (docs/benchmarks.md, stage-7 section); same sum, same scores
            power = spec.pow(2).sum(-1)
        else:
            spec = torch.stft(padded, return_complex=True, **kw)  # [B, F, T']
            power = spec.real.pow(2) + spec.imag.pow(2)
        return power.transpose(1, 2)

    def log_mel(self, power: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """STFT power [B, T', n_fft // 2 + 1], lengths [B] (samples) -> feats [B, T', n_mels], frame lengths [B]."""
        mel = torch.matmul(power, self.mel_fb)  # [B, T', n_mels]
        feats = torch.log(torch.clamp(mel, min=1e-10))
        flens = self.num_frames(lengths)
        feats = feats.masked_fill(make_pad_mask(flens, feats.size(1)).unsqueeze(-1), 0.0)
        return feats, flens
