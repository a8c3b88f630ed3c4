"""``encoder: beats`` — the BEATs audio transformer on raw 16 kHz waveforms.

Use with ``frontend: none`` and ``input_size: 1``: the encoder computes the official Kaldi
fbank itself (per clip, on its valid samples), embeds 16x16 fbank patches and runs the
BEATs transformer. Official checkpoints of microsoft/unilm load through ``beats_ckpt_path``.
See docs/beats.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from espnet_cls.models.beats.checkpoint import LoadReport, load_beats_state_dict, read_beats_checkpoint
from espnet_cls.models.beats.config import BEATS_DEFAULTS, IGNORED_KEYS, BEATsConfig
from espnet_cls.models.beats.frontend import DEFAULT_FBANK_MEAN, DEFAULT_FBANK_STD, beats_fbank, roll_waveforms
from espnet_cls.models.beats.layers import TransformerEncoder
from espnet_cls.models.encoders import AbsEncoder, register_encoder
from espnet_cls.models.specaug import SpecAug

logger = logging.getLogger(__name__)


@register_encoder("beats")
class BeatsEncoder(AbsEncoder):
    """BEATs encoder (Chen et al., 2022) with ESPnet's ``BeatsEncoder`` options.

    Args:
        input_size: must be 1 (raw samples, ``frontend: none``).
        beats_ckpt_path: official checkpoint ``{"cfg", "model"}`` (``BEATs_iter3.pt``, ...). Its
            ``cfg`` defines the architecture and its weights are loaded (strictly, see
            ``strict_ckpt_loading``). None: random initialisation from ``beats_config``.
        beats_config: dict overriding the checkpoint cfg (dropouts, ``encoder_layerdrop``,
            ``layer_wise_gradient_decay_ratio``, or the whole architecture without checkpoint).
        max_layer: use the hidden state after this many transformer layers (0 = the input of
            the first layer); layers above it are not run. None: all layers.
        use_weighted_representation: output a softmax-weighted sum of the hidden states
            0..max_layer (learned weights; max_layer defaults to all layers).
        specaug_config: SpecAugment options (ESPnet's keys) applied to the fbank in training.
        fbank_mean, fbank_std: fbank normalisation ``(x - mean) / (2 * std)``.
        roll_augment, roll_interval: in training, circularly roll each clip by a random multiple
            of ``roll_interval`` samples.
        layer_wise_lr_decay: ``param_groups`` gives layer ``i`` (of N) the learning rate
            ``base_lr * decay**(N - i)`` and the patch embedding ``base_lr * decay**(N + 1)``;
            1.0 = one group.
        freeze_steps: keep the pretrained BEATs weights frozen (no gradient) for this many
            optimizer steps (see ``on_train_step``); the weighted-sum weights still train.
        strict_ckpt_loading: missing/unexpected/mis-shaped checkpoint tensors are an error
            (true) or a logged warning (false). The ``predictor.*`` head of fine-tuned
            checkpoints is always just reported as unused.
        downsampling_rate, adapter_config, add_positional_information, max_positions,
            is_pretraining: ESPnet options accepted at their defaults only (not implemented).
    """

    def __init__(
        self,
        input_size: int = 1,
        beats_ckpt_path: Optional[str] = None,
        beats_config: Optional[Dict[str, Any]] = None,
        max_layer: Optional[int] = None,
        use_weighted_representation: bool = False,
        specaug_config: Optional[Dict[str, Any]] = None,
        fbank_mean: float = DEFAULT_FBANK_MEAN,
        fbank_std: float = DEFAULT_FBANK_STD,
        roll_augment: bool = False,
        roll_interval: int = 1600,
        layer_wise_lr_decay: float = 1.0,
        freeze_steps: int = 0,
        strict_ckpt_loading: bool = True,
        downsampling_rate: int = 1,
        adapter_config: str = "",
        add_positional_information: bool = False,
        max_positions: Optional[int] = None,
        is_pretraining: bool = False,
    ) -> None:
        super().__init__()
        if input_size != 1:
            raise ValueError(f"encoder beats takes raw samples: use frontend: none and input_size: 1 (got input_size={input_size})")
        unsupported = {
            "downsampling_rate": (downsampling_rate, 1),
            "adapter_config": (adapter_config or "", ""),
            "add_positional_information": (bool(add_positional_information), False),
            "max_positions": (max_positions, None),
            "is_pretraining": (bool(is_pretraining), False),
        }
        bad = [f"{k}={v!r}" for k, (v, default) in unsupported.items() if v != default]
        if bad:
            raise ValueError(f"encoder_conf: ESPnet BEATs options not supported by espnet_cls: {', '.join(bad)}")
        if fbank_std <= 0:
            raise ValueError(f"encoder_conf.fbank_std must be > 0, got {fbank_std}")
        if int(roll_interval) < 1:
            raise ValueError(f"encoder_conf.roll_interval must be >= 1 sample, got {roll_interval}")
        if int(freeze_steps) < 0:
            raise ValueError(f"encoder_conf.freeze_steps must be >= 0, got {freeze_steps}")
        if not 0.0 < layer_wise_lr_decay <= 1.0:
            raise ValueError(f"encoder_conf.layer_wise_lr_decay must be in (0, 1], got {layer_wise_lr_decay}")

        ckpt = None
        cfg = BEATsConfig()
        if beats_ckpt_path:
            ckpt = read_beats_checkpoint(beats_ckpt_path)
            cfg.update(ckpt["cfg"])
            logger.info("BEATs: architecture from %s", beats_ckpt_path)
        if beats_config:
            unknown = sorted(k for k in beats_config if k not in BEATS_DEFAULTS and k not in IGNORED_KEYS)
            if unknown:
                raise ValueError(f"encoder_conf.beats_config: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(BEATS_DEFAULTS)}")
            cfg.update(beats_config)
            if ckpt is not None:
                logger.info("BEATs: checkpoint cfg overridden by beats_config %s", dict(beats_config))
        if cfg.deep_norm and cfg.layer_norm_first:
            raise ValueError("BEATs config: deep_norm and layer_norm_first cannot both be true")
        self.cfg = cfg
        n_layers = int(cfg.encoder_layers)
        if max_layer is not None and not 0 <= int(max_layer) <= n_layers:
            raise ValueError(f"encoder_conf.max_layer must be in [0, {n_layers}], got {max_layer}")
        if use_weighted_representation and max_layer is None:
            max_layer = n_layers
        self.max_layer = None if max_layer is None else int(max_layer)

        self.beats_ckpt_path = beats_ckpt_path
        self.strict_ckpt_loading = bool(strict_ckpt_loading)
        self.fbank_mean = float(fbank_mean)
        self.fbank_std = float(fbank_std)
        self.roll_augment = bool(roll_augment)
        self.roll_interval = int(roll_interval)
        self.layer_wise_lr_decay = float(layer_wise_lr_decay)
        self.freeze_steps = int(freeze_steps)
        self._frozen = self.freeze_steps > 0
        self.specaug = SpecAug(**specaug_config) if specaug_config else None

        # --- the official BEATs modules (names = checkpoint keys) ---
        self.patch_size = int(cfg.input_patch_size)
        if self.patch_size < 1:
            raise ValueError(f"BEATs config: input_patch_size must be >= 1, got {cfg.input_patch_size}")
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=bool(cfg.conv_bias))
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = TransformerEncoder(cfg)
        self.use_weighted_representation = bool(use_weighted_representation)
        if self.use_weighted_representation:
            self.layer_weights = nn.Parameter(torch.ones(self.max_layer + 1, 1))
        self._output_size = int(cfg.encoder_embed_dim)

        self.load_report: Optional[LoadReport] = None
        if ckpt is not None:
            self._load(ckpt["model"])

    # ------------------------------------------------------------------ checkpoint
    def _load(self, state: Dict[str, Tensor]) -> LoadReport:
        self.load_report = load_beats_state_dict(
            self, state, strict=self.strict_ckpt_loading, source=str(self.beats_ckpt_path), skip_prefixes=("layer_weights", "specaug")
        )
        return self.load_report

    def reload_pretrained_parameters(self) -> Optional[LoadReport]:
        """Load the checkpoint weights again (call after a generic ``init`` overwrote them)."""
        if not self.beats_ckpt_path:
            return None
        return self._load(read_beats_checkpoint(self.beats_ckpt_path)["model"])

    def beats_state_dict(self) -> Dict[str, Tensor]:
        """The BEATs weights under the official names (what a checkpoint's ``model`` holds)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("layer_weights", "specaug"))}

    # ------------------------------------------------------------------ API
    def output_size(self) -> int:
        """Model dimension (``encoder_embed_dim``, 768 for the released checkpoints)."""
        return self._output_size

    def features(self, xs: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Raw samples ``[B, T, 1]`` or ``[B, T]`` -> normalised fbank ``[B, F, 128]``, frames ``[B]``.

        Applies roll augmentation and SpecAugment in training mode.
        """
        wav = xs.squeeze(-1) if xs.dim() == 3 else xs
        lengths = lengths.to(wav.device).long()
        if self.training and self.roll_augment:
            wav = roll_waveforms(wav, lengths, self.roll_interval)
        fbank, frames = beats_fbank(wav, lengths, self.fbank_mean, self.fbank_std, min_frames=self.patch_size)
        if self.training and self.specaug is not None:
            fbank, _ = self.specaug(fbank, frames)
        return fbank, frames

    def forward(self, xs: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """xs ``[B, T, 1]`` raw 16 kHz samples, lengths ``[B]`` -> hs ``[B, T', D]``, lengths' ``[B]``.

        ``T'`` = (fbank frames // 16) time patches x 8 frequency patches, time-major (the
        official token order). Outputs at padded tokens are zero.
        """
        fbank, frames = self.features(xs, lengths)
        return self.forward_fbank(fbank, frames)

    def forward_fbank(self, fbank: Tensor, frames: Tensor) -> Tuple[Tensor, Tensor]:
        """Normalised fbank ``[B, F, 128]`` with valid frames ``[B]`` -> hs ``[B, T', D]``, lengths' ``[B]``."""
        grad = torch.is_grad_enabled() and not self._frozen
        with torch.set_grad_enabled(grad):
            x = self.patch_embedding(fbank.unsqueeze(1).to(self.patch_embedding.weight.dtype))  # [B, E, Tp, Fp]
            bsz, emb, t_patches, f_patches = x.shape
            x = x.reshape(bsz, emb, t_patches * f_patches).transpose(1, 2)
            x = self.layer_norm(x)
            out_lens = (frames.to(x.device) // self.patch_size).clamp(max=t_patches) * f_patches
            pad = torch.arange(x.size(1), device=x.device)[None, :] >= out_lens[:, None]
            mask = pad if bool(pad.any()) else None
            if self.post_extract_proj is not None:
                x = self.post_extract_proj(x)
            x = self.dropout_input(x)
            x, hidden = self.encoder(x, mask, num_layers=self.max_layer)
        if self.use_weighted_representation:
            w = torch.softmax(self.layer_weights, dim=0)  # [L+1, 1]
            x = (torch.stack(hidden, dim=-2) * w).sum(dim=-2)
        if mask is not None:
            x = x.masked_fill(mask.unsqueeze(-1), 0.0)
        return x, out_lens

    # ------------------------------------------------------------------ trainer hooks
    def on_train_step(self, step: int) -> None:
        """Trainer hook: the BEATs weights stay frozen while ``step < freeze_steps``."""
        frozen = step < self.freeze_steps
        if frozen != self._frozen:
            logger.info("BEATs encoder %s at step %d", "frozen" if frozen else "unfrozen", step)
        self._frozen = frozen

    def _depth(self, name: str) -> int:
        """Layer-wise lr depth of a parameter: 0 embedding, i+1 layer i, N+1 top."""
        n = len(self.encoder.layers)
        if name.startswith("encoder.layers."):
            return int(name.split(".")[2]) + 1
        if name.startswith("layer_weights") or (name.startswith("encoder.layer_norm.") and self.encoder.layer_norm_first):
            return n + 1
        return 0

    def param_groups(self, base_lr: float) -> List[Dict[str, Any]]:
        """Optimizer groups with layer-wise lr decay.

        Each group is ``{"params", "lr", "lr_scale", "name"}``; ``lr = base_lr * lr_scale``
        (schedulers should scale each group's lr, keeping these ratios). With
        ``layer_wise_lr_decay: 1.0`` a single group at ``base_lr``.
        """
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if self.layer_wise_lr_decay == 1.0:
            return [{"params": [p for _, p in params], "lr": base_lr, "lr_scale": 1.0, "name": "encoder"}]
        n = len(self.encoder.layers)
        by_depth: Dict[int, List[nn.Parameter]] = {}
        for name, p in params:
            by_depth.setdefault(self._depth(name), []).append(p)
        groups = []
        for depth in sorted(by_depth):
            scale = self.layer_wise_lr_decay ** (n + 1 - depth)
            groups.append({"params": by_depth[depth], "lr": base_lr * scale, "lr_scale": scale, "name": f"encoder.depth{depth}"})
        return groups

    @staticmethod
    def inference_conf(encoder_conf: Dict[str, Any]) -> Dict[str, Any]:
        """An ``encoder_conf`` that rebuilds the same architecture without the checkpoint file.

        The checkpoint cfg is merged into ``beats_config`` and ``beats_ckpt_path`` set to None;
        useful for a packed model whose trained weights come from its own ``.pth``.
        """
        conf = dict(encoder_conf)
        path = conf.get("beats_ckpt_path")
        merged: Dict[str, Any] = {}
        if path:
            merged.update(read_beats_checkpoint(Path(path))["cfg"])
        merged.update(conf.get("beats_config") or {})
        conf["beats_config"] = merged
        conf["beats_ckpt_path"] = None
        return conf

    def extra_repr(self) -> str:
        return f"ckpt={self.beats_ckpt_path}, layers={len(self.encoder.layers)}, max_layer={self.max_layer}, frozen={self._frozen}"

