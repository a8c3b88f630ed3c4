"""BEATs architecture configuration (the ``cfg`` dict of an official checkpoint).

The official checkpoints of microsoft/unilm store ``{"cfg": dict, "model": state_dict}``;
``cfg`` holds the keys below. Defaults are those of the official ``BEATsConfig`` except
``input_patch_size`` (the official default ``-1`` is a placeholder; every released
checkpoint uses 16, as ESPnet's default does).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional

logger = logging.getLogger(__name__)

#: Architecture and regularisation keys understood by :mod:`espnet_cls.models.beats`.
BEATS_DEFAULTS: Dict[str, Any] = {
    "input_patch_size": 16,  # side of the square fbank patch (frames x mel bins)
    "embed_dim": 512,  # patch embedding dimension
    "conv_bias": False,  # bias in the patch-embedding conv
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,  # gradient scale applied before every layer
    "layer_norm_first": False,  # pre-LN instead of post-LN
    "deep_norm": False,  # DeepNet residual scaling (post-LN only)
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "conv_pos": 128,  # kernel of the convolutional positional embedding
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,  # gate the relative position bias by the query
    "finetuned_model": False,  # the checkpoint carries a predictor head
    "predictor_dropout": 0.1,
    "predictor_class": 527,
}

#: Keys found in ESPnet/OpenBEATs pre-training configs that do not change the encoder.
IGNORED_KEYS = frozenset(
    {
        "decoder_embed_dim",
        "decoder_pos_trainable",
        "decoder_attention_heads",
        "decoder_mlp_ratio",
        "decoder_layers",
        "codebook_vocab_size",
        "mask_ratio",
        "use_flash_attn",
    }
)


class BEATsConfig:
    """Attribute view over :data:`BEATS_DEFAULTS` updated with a checkpoint cfg and user overrides.

    ``BEATsConfig(cfg).update(overrides)``: later values win, as in the official code.
    Unknown keys are kept (so a round trip preserves them) and logged once.
    """

    def __init__(self, cfg: Optional[Mapping[str, Any]] = None) -> None:
        self.__dict__.update(BEATS_DEFAULTS)
        if cfg:
            self.update(cfg)

    def update(self, cfg: Mapping[str, Any]) -> BEATsConfig:
        """Override keys from ``cfg`` (a dict); returns ``self``."""
        unknown = sorted(k for k in cfg if k not in BEATS_DEFAULTS and k not in IGNORED_KEYS)
        if unknown:
            logger.info("BEATs config: keys without effect on the encoder: %s", unknown)
        self.__dict__.update(dict(cfg))
        return self

    def to_dict(self) -> Dict[str, Any]:
        """A plain dict copy (what a checkpoint's ``cfg`` holds)."""
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"BEATsConfig({self.to_dict()!r})"
