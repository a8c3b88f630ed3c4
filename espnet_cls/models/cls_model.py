"""The classification model: frontend -> specaug (training) -> normalize -> encoder -> decoder.

Labels follow ESPnet: ``label [B, L]`` holds token-list indices padded with -1. Indices
``>= n_classes`` are the special tokens: ``<blank>`` ("this clip has no label": all-zero
multi-label target) and ``<unk>`` (ignored: dropped from the targets; a multi-class clip
whose label is ``<unk>`` or ``<blank>`` contributes no loss).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from espnet_cls.contract import (
    BLANK,
    DEFAULT_CLASSIFICATION_TYPE,
    MULTI_CLASS,
    MULTI_LABEL,
    PCM_MAX,
    PCM_MIN,
    PCM_SCALE,
    UNK,
    check_classification_type,
)
from espnet_cls.models.encoders import AbsEncoder
from espnet_cls.models.utils import make_pad_mask

MIXUP_TYPES = ("soft", "hard")
#: ESPnet's mixup draws lambda ~ Beta(0.8, 0.8) (espnet2/layers/mixup_augmentation.py): the default of
#: ``model_conf.mixup_alpha`` here too.
ESPNET_MIXUP_ALPHA = 0.8


class CLSModel(nn.Module):
    """Audio classifier with ESPnet's training interface.

    Args:
        n_classes: number of real classes (token list without ``<blank>``/``<unk>``).
        token_list: the full token list (classes, then ``<blank>`` and/or ``<unk>``).
        frontend: waveform -> features module with ``forward(speech, lengths)``, or None
            (the encoder gets raw samples ``[B, T, 1]``).
        specaug, normalize: optional ``(x, lengths) -> (x, lengths)`` modules.
        encoder: an :class:`AbsEncoder`. decoder: pooling + linear, ``(hs, lens) -> logits``.
        classification_type: ``multi-class`` (softmax, cross-entropy, exactly one label) or
            ``multi-label`` (sigmoid, BCE over multi-hot targets).
        lsm_weight: label smoothing (multi-class: ``t*(1-e) + e/K``; multi-label: ``t*(1-2e) + e``).
        mixup_probability: per-clip probability of mixing its waveform with a random clip of the
            batch during training; mixup_alpha: λ ~ Beta(alpha, alpha) (ESPnet's 0.8). Targets are mixed with
            the same λ (soft targets for multi-class). mixup_type: ``soft`` (that convex mix of the
            targets) or ``hard`` (multi-label only: the union of both clips' labels, as DCASE's DESED
            baseline's hard mixup; both sources are in the mixed audio).
    """

    def __init__(
        self,
        n_classes: int,
        token_list: Sequence[str],
        frontend: nn.Module | None,
        specaug: nn.Module | None,
        normalize: nn.Module | None,
        encoder: AbsEncoder,
        decoder: nn.Module,
        classification_type: str = DEFAULT_CLASSIFICATION_TYPE,
        lsm_weight: float = 0.0,
        mixup_probability: float = 0.0,
        mixup_alpha: float = ESPNET_MIXUP_ALPHA,
        mixup_type: str = "soft",
        pcm16_input: bool = True,
    ) -> None:
        super().__init__()
        check_classification_type(classification_type, "model_conf.classification_type")
        if not 0.0 <= lsm_weight < 1.0:
            raise ValueError(f"model_conf.lsm_weight must be in [0, 1), got {lsm_weight}")
        if not 0.0 <= mixup_probability <= 1.0:
            raise ValueError(f"model_conf.mixup_probability must be in [0, 1], got {mixup_probability}")
        if mixup_alpha <= 0:
            raise ValueError(f"model_conf.mixup_alpha must be > 0, got {mixup_alpha}")
        if mixup_type not in MIXUP_TYPES:
            raise ValueError(f"model_conf.mixup_type must be one of {', '.join(MIXUP_TYPES)}, got {mixup_type!r}")
        if mixup_type == "hard" and classification_type == MULTI_CLASS:
            raise ValueError("model_conf.mixup_type: hard (the union of the labels) needs classification_type: multi-label")
        self.n_classes = int(n_classes)
        self.token_list = list(token_list)
        self.classification_type = classification_type
        self.lsm_weight = float(lsm_weight)
        self.mixup_probability = float(mixup_probability)
        self.mixup_alpha = float(mixup_alpha)
        self.mixup_type = mixup_type
        self.pcm16_input = bool(pcm16_input)
        self.blank_id = self.token_list.index(BLANK) if BLANK in self.token_list else None
        self.unk_id = self.token_list.index(UNK) if UNK in self.token_list else None
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.encoder = encoder
        self.decoder = decoder

    # ------------------------------------------------------------------ features / inference
    def prepare_input(self, speech: torch.Tensor) -> torch.Tensor:
        """The waveform the features see: on the 16-bit grid when ``pcm16_input`` (see the class doc).

        Only a waveform ``[B, T]`` is rounded (precomputed features ``[B, T, D]`` pass through).
        """
        if not self.pcm16_input or speech.dim() != 2:
            return speech
        return torch.clamp(torch.round(speech * PCM_SCALE), PCM_MIN, PCM_MAX) / PCM_SCALE

    def extract_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frontend only (no specaug, no normalization): speech [B, T] -> feats [B, T', D], lengths [B].

        With ``frontend: none`` the features are the raw samples ``[B, T, 1]`` (or, for a
        ``[B, T, D]`` input, ESPnet's precomputed features ``input_size: D``). This is what
        the statistics stage accumulates into ``feats_stats.npz``.
        """
        speech_lengths = speech_lengths.to(speech.device).long()
        speech = self.prepare_input(speech)
        if self.frontend is None:
            # raw samples [B, T] -> [B, T, 1]; precomputed features [B, T, D] pass through
            feats = speech.unsqueeze(-1) if speech.dim() == 2 else speech
            feats = feats.masked_fill(make_pad_mask(speech_lengths, feats.size(1)).unsqueeze(-1), 0.0)
            return feats, speech_lengths
        with torch.autocast(device_type=speech.device.type, enabled=False):  # STFT/log in float32 under AMP
            return self.frontend(speech.float(), speech_lengths)

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """speech [B, T], lengths [B] -> encoder output [B, T', D'], lengths' [B]."""
        feats, lens = self.extract_feats(speech, speech_lengths)
        if self.specaug is not None and self.training:
            feats, lens = self.specaug(feats, lens)
        if self.normalize is not None:
            feats, lens = self.normalize(feats, lens)
        return self.encoder(feats, lens)

    def forward_logits(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """speech [B, T] float, speech_lengths [B] long -> logits [B, n_classes]."""
        hs, lens = self.encode(speech, speech_lengths)
        return self.decoder(hs, lens)

    def logits_to_proba(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (multi-class) or sigmoid (multi-label)."""
        return torch.softmax(logits, dim=-1) if self.classification_type == MULTI_CLASS else torch.sigmoid(logits)

    def predict_proba(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """speech [B, T], speech_lengths [B] -> class probabilities [B, n_classes]."""
        return self.logits_to_proba(self.forward_logits(speech, speech_lengths))

    # ------------------------------------------------------------------ targets
    def label_to_target(self, label: torch.Tensor, label_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """label [B, L] (indices, -1 padding) -> (targets [B, n_classes] float, valid [B] bool).

        Multi-label: multi-hot over the real classes; ``<blank>`` / ``<unk>`` / padding add
        nothing (so a ``<blank>`` clip has an all-zero target). Every clip is valid.
        Multi-class: one-hot; a clip without a real class (``<unk>``/``<blank>``) is not valid
        (no loss). More than one real label in a multi-class clip is a ValueError.
        """
        if label.dim() == 1:
            label = label.unsqueeze(1)
        label = label.long()
        if label_lengths is not None:
            label = label.masked_fill(make_pad_mask(label_lengths.to(label.device).long(), label.size(1)), -1)
        real = (label >= 0) & (label < self.n_classes)
        idx = torch.where(real, label, torch.full_like(label, self.n_classes))
        onehot = F.one_hot(idx, self.n_classes + 1)[..., : self.n_classes].sum(dim=1).clamp(max=1).float()
        if self.classification_type == MULTI_LABEL:
            return onehot, torch.ones(label.size(0), dtype=torch.bool, device=label.device)
        n_real = real.sum(dim=1)
        if bool((n_real > 1).any()):
            bad = int(torch.nonzero(n_real > 1)[0, 0])
            raise ValueError(
                f"multi-class model got {int(n_real[bad])} labels for batch item {bad}; "
                "use model_conf.classification_type: multi-label"
            )
        return onehot, n_real == 1

    # ------------------------------------------------------------------ training
    def _mixup(
        self, speech: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mix each clip (with probability mixup_probability) with a random valid clip of the batch."""
        b = speech.size(0)
        apply = torch.rand(b, device=speech.device) < self.mixup_probability
        perm = torch.randperm(b, device=speech.device)
        apply = apply & valid & valid[perm] & (perm != torch.arange(b, device=speech.device))
        if not bool(apply.any()):
            return speech, lengths, target
        lam = torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample((b,)).to(speech.device, speech.dtype)
        lam = torch.where(apply, lam, torch.ones_like(lam))
        speech = speech.masked_fill(make_pad_mask(lengths, speech.size(1)), 0.0)
        mixed = lam.unsqueeze(1) * speech + (1 - lam.unsqueeze(1)) * speech[perm]
        new_lengths = torch.where(apply, torch.maximum(lengths, lengths[perm]), lengths)
        if self.mixup_type == "hard":
            mixed_target = torch.where(apply.unsqueeze(1), torch.maximum(target, target[perm]), target)
        else:
            w = lam.unsqueeze(1).to(target.dtype)
            mixed_target = w * target + (1 - w) * target[perm]
        return mixed, new_lengths, mixed_target

    def compute_loss(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean loss over valid clips (soft targets allowed); 0 (with a graph) if none is valid."""
        e = self.lsm_weight if self.training else 0.0
        if self.classification_type == MULTI_CLASS:
            t = target * (1 - e) + e / self.n_classes if e > 0 else target
            per_clip = -(t * F.log_softmax(logits, dim=-1)).sum(dim=-1)
        else:
            t = target * (1 - 2 * e) + e if e > 0 else target
            per_clip = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean(dim=-1)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return per_clip[valid].mean()

    def forward_with_logits(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        label: torch.Tensor,
        label_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float], int, torch.Tensor, torch.Tensor]:
        """Training/validation forward that also returns the logits and the (possibly mixed) targets.

        Returns ``(loss, stats, weight, logits [B, n_classes] (detached), target [B, n_classes])``.
        Mixup happens in training mode only.
        """
        target, valid = self.label_to_target(label.to(speech.device), label_lengths)
        if self.training and self.mixup_probability > 0:
            speech, speech_lengths, target = self._mixup(speech, speech_lengths.to(speech.device).long(), target, valid)
        logits = self.forward_logits(speech, speech_lengths)
        loss = self.compute_loss(logits, target, valid)
        stats: dict[str, float] = {"loss": float(loss.detach())}
        with torch.no_grad():
            if self.classification_type == MULTI_CLASS:
                if bool(valid.any()):
                    hit = logits.argmax(-1) == target.argmax(-1)
                    stats["acc"] = float(hit[valid].float().mean())
            else:
                has = target.sum(-1) > 0
                if bool(has.any()):  # top-1 hit rate over clips with at least one label
                    top = logits.argmax(-1)
                    hit = target.gather(1, top.unsqueeze(1)).squeeze(1) > 0
                    stats["acc"] = float(hit[has].float().mean())
        return loss, stats, int(speech.size(0)), logits.detach(), target

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        label: torch.Tensor,
        label_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float], int]:
        """ESPnet-style training forward -> (loss, stats (floats: loss, acc), weight = batch size)."""
        loss, stats, weight, _, _ = self.forward_with_logits(speech, speech_lengths, label, label_lengths)
        return loss, stats, weight

    # ------------------------------------------------------------------ trainer hooks
    def param_groups(self, base_lr: float) -> list[dict]:
        """Optimizer parameter groups: the encoder's own (if it defines ``param_groups``) plus one
        group at ``base_lr`` for every other trainable parameter."""
        groups: list[dict] = []
        seen: set[int] = set()
        enc_hook = getattr(self.encoder, "param_groups", None)
        if callable(enc_hook):
            for g in enc_hook(base_lr):
                params = [p for p in g["params"] if p.requires_grad and id(p) not in seen]
                seen.update(id(p) for p in params)
                if params:
                    groups.append({**g, "params": params})
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in seen]
        if rest:
            groups.append({"params": rest, "lr": base_lr})
        return groups

    def on_train_step(self, step: int) -> None:
        """Forward the trainer's step count to the encoder's ``on_train_step`` hook, if any."""
        hook = getattr(self.encoder, "on_train_step", None)
        if callable(hook):
            hook(step)
